/// \file
/// \brief The tokenizer's exception type.
#pragma once

#include <stdexcept>

namespace hmoe::tokenizer {

/// Thrown for a tokenizer that cannot be loaded (the message names the file and key or JSON path), a
/// regular expression that does not compile, or an id outside the vocabulary.
struct Error : std::runtime_error {
  using runtime_error::runtime_error;
};

}  // namespace hmoe::tokenizer
