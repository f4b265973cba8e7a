/// \file
/// \brief The one exception type of the GGUF reader, and the message helpers it is built with.
///
/// Every message starts with the file's path and, where a position in the file is meaningful, "byte N", then
/// names the key or tensor concerned and the reason, so a user can locate the damage with a hex viewer.
#pragma once

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hmoe::gguf {

struct Error : std::runtime_error {
  using runtime_error::runtime_error;
};

namespace detail {

inline void append(std::string& out, std::string_view s) { out += s; }
inline void append(std::string& out, const char* s) { out += s; }
inline void append(std::string& out, const std::string& s) { out += s; }
inline void append(std::string& out, char c) { out += c; }
template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>)
void append(std::string& out, T v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// Concatenates strings and integers: the message builder (libstdc++ 12 has no std::format).
template <class... Args>
std::string cat(const Args&... args) {
  std::string out;
  (append(out, args), ...);
  return out;
}

/// "47 47 55 58": raw bytes for messages about bytes that are not what they should be.
inline std::string hex_bytes(std::span<const std::byte> bytes) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  for (std::byte b : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[std::to_integer<unsigned>(b) >> 4];
    out += digits[std::to_integer<unsigned>(b) & 15];
  }
  return out;
}

/// `s` quoted, with control characters escaped and at most `max_bytes` bytes shown, for messages that quote
/// file contents (which may be anything).
inline std::string quoted(std::string_view s, std::size_t max_bytes = 64) {
  std::string out = "\"";
  const bool cut = s.size() > max_bytes;
  for (char c : cut ? s.substr(0, max_bytes) : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += "0123456789abcdef"[u >> 4];
      out += "0123456789abcdef"[u & 15];
    } else {
      out += c;
    }
  }
  out += cut ? "\"..." : "\"";
  return out;
}

/// Throws "<file>: byte <offset>: <reason>".
[[noreturn]] inline void fail_at(std::string_view file, std::uint64_t offset, std::string_view reason) {
  throw Error(cat(file, ": byte ", offset, ": ", reason));
}

}  // namespace detail
}  // namespace hmoe::gguf
