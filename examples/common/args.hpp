/// \file
/// \brief Small command-line helpers the examples share.
#pragma once

#include <cstddef>
#include <string>

namespace hmoe::examples {

/// The positive whole number `s` given to `flag`; otherwise calls `fail` (which does not return) with a message.
template <class Fail>
long long parse_count(const std::string& flag, const std::string& s, Fail&& fail) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used == s.size() && v > 0) return v;
  } catch (...) {
  }
  fail(flag + " needs a positive whole number, got '" + s + "'");
  return 0;  // not reached: fail does not return
}

}  // namespace hmoe::examples
