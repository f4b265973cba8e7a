/// \file
/// \brief The message of the exception a callable throws, or "(no exception)".
#pragma once

#include <exception>
#include <string>

namespace hmoe::test {

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace hmoe::test
