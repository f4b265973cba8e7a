/// \file
/// \brief A small JSON codec for strings and integer arrays: what hmoe-tokenize reads and writes one per line,
///        and what the tokenizer.json reader is built on.
///
/// Reading follows RFC 8259: `\uXXXX` escapes (a surrogate pair makes one code point; a lone surrogate is an
/// error), no raw control characters, and the string must be valid UTF-8. Writing matches Python's
/// `json.dumps(s, ensure_ascii=False)` byte for byte (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control
/// characters as `\u00xx`, everything else raw) or, with `ascii_only`, `ensure_ascii=True` (also DEL and all
/// non-ASCII as `\uxxxx`, with surrogate pairs). A JSON string holds
/// text, not bytes: invalid UTF-8 given to the writer comes out as U+FFFD.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hmoe/tokenizer/utf8.hpp"

namespace hmoe::tokenizer::json {

/// A JSON syntax error; the message says at which byte of the input.
struct ParseError : std::runtime_error {
  using runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] inline void fail(std::size_t pos, std::string_view what) {
  throw ParseError("byte " + std::to_string(pos) + ": " + std::string(what));
}
inline void append_u_escape(std::string& out, unsigned v) {
  constexpr char hex[] = "0123456789abcdef";
  out += "\\u";
  out += hex[(v >> 12) & 15];
  out += hex[(v >> 8) & 15];
  out += hex[(v >> 4) & 15];
  out += hex[v & 15];
}
}  // namespace detail

/// Skips JSON whitespace (space, tab, LF, CR).
inline void skip_ws(std::string_view in, std::size_t& pos) noexcept {
  while (pos < in.size() && (in[pos] == ' ' || in[pos] == '\t' || in[pos] == '\n' || in[pos] == '\r')) ++pos;
}

/// Appends `s` as a quoted JSON string.
inline void write_string(std::string& out, std::string_view s, bool ascii_only = false) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    // DEL is written raw, except with ascii_only (Python escapes everything outside ' '..'~' then).
    const unsigned char end = ascii_only ? 0x7F : 0x80;
    if (c >= 0x20 && c < end && c != '"' && c != '\\') {
      // Runs of plain ASCII go out in one append.
      std::size_t j = i + 1;
      while (j < s.size()) {
        const auto d = static_cast<unsigned char>(s[j]);
        if (d < 0x20 || d >= end || d == '"' || d == '\\') break;
        ++j;
      }
      out.append(s.substr(i, j - i));
      i = j;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\b': out += "\\b"; ++i; continue;
      case '\f': out += "\\f"; ++i; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7F) {
      detail::append_u_escape(out, c);
      ++i;
      continue;
    }
    const utf8::Step st = utf8::step(s, i);
    const char32_t cp = st.kind == utf8::Step::Valid ? st.code_point : utf8::replacement;
    if (!ascii_only) {
      if (st.kind == utf8::Step::Valid)
        out.append(s.substr(i, st.length));
      else
        utf8::append(out, utf8::replacement);
    } else if (cp < 0x10000) {
      detail::append_u_escape(out, static_cast<unsigned>(cp));
    } else {
      const unsigned v = static_cast<unsigned>(cp) - 0x10000;
      detail::append_u_escape(out, 0xD800 + (v >> 10));
      detail::append_u_escape(out, 0xDC00 + (v & 0x3FF));
    }
    i += st.length;
  }
  out += '"';
}

/// `s` as a quoted JSON string.
inline std::string quote(std::string_view s, bool ascii_only = false) {
  std::string out;
  out.reserve(s.size() + 2);
  write_string(out, s, ascii_only);
  return out;
}

/// Reads the JSON string that starts at in[pos] (which must be '"'), appending its value to `out`; `pos` ends
/// just past the closing quote. Throws ParseError.
inline void read_string(std::string_view in, std::size_t& pos, std::string& out) {
  if (pos >= in.size() || in[pos] != '"') detail::fail(pos, "expected a string");
  const std::size_t open = pos++;
  const auto hex4 = [&](std::size_t at) -> unsigned {
    if (at + 4 > in.size()) detail::fail(at, "truncated \\u escape");
    unsigned v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char h = in[at + k];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f') v |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= unsigned(h - 'A' + 10);
      else detail::fail(at + k, "bad hex digit in \\u escape");
    }
    return v;
  };
  while (true) {
    // Copy the run up to the next quote, backslash or control character in one go.
    std::size_t j = pos;
    while (j < in.size()) {
      const auto c = static_cast<unsigned char>(in[j]);
      if (c == '"' || c == '\\' || c < 0x20) break;
      ++j;
    }
    if (j > pos) {
      const auto run = in.substr(pos, j - pos);
      if (!utf8::is_valid(run)) {
        std::size_t k = 0;
        while (utf8::step(run, k).kind == utf8::Step::Valid) k += utf8::step(run, k).length;
        detail::fail(pos + k, "invalid UTF-8 in a string");
      }
      out.append(run);
      pos = j;
    }
    if (pos >= in.size()) detail::fail(open, "unterminated string");
    const char c = in[pos];
    if (c == '"') {
      ++pos;
      return;
    }
    if (c != '\\') detail::fail(pos, "raw control character in a string (must be escaped)");
    if (pos + 1 >= in.size()) detail::fail(pos, "unterminated escape");
    const char e = in[pos + 1];
    pos += 2;
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        const std::size_t at = pos - 2;
        unsigned v = hex4(pos);
        pos += 4;
        if (v >= 0xDC00 && v <= 0xDFFF) detail::fail(at, "lone low surrogate in \\u escape");
        if (v >= 0xD800 && v <= 0xDBFF) {
          if (pos + 6 > in.size() || in[pos] != '\\' || in[pos + 1] != 'u')
            detail::fail(at, "high surrogate \\u escape not followed by a low surrogate");
          const unsigned lo = hex4(pos + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) detail::fail(pos, "high surrogate followed by a non-low-surrogate");
          pos += 6;
          v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        }
        utf8::append(out, v);
        break;
      }
      default: detail::fail(pos - 2, std::string("unknown escape \\") + e);
    }
  }
}

inline std::string read_string(std::string_view in, std::size_t& pos) {
  std::string out;
  read_string(in, pos, out);
  return out;
}

/// The value of a line holding exactly one JSON string (whitespace around it allowed).
inline std::string parse_string_line(std::string_view line) {
  std::size_t pos = 0;
  skip_ws(line, pos);
  std::string s = read_string(line, pos);
  skip_ws(line, pos);
  if (pos != line.size()) detail::fail(pos, "unexpected text after the string");
  return s;
}

/// Appends `[1,2,3]` (no spaces: Python's `json.dumps(ids, separators=(",", ":"))`).
inline void write_int_array(std::string& out, std::span<const std::int32_t> ids) {
  out += '[';
  char buf[16];
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    const auto r = std::to_chars(buf, buf + sizeof buf, ids[i]);
    out.append(buf, r.ptr);
  }
  out += ']';
}

/// The value of a line holding exactly one JSON array of integers that fit int32 (whitespace allowed).
inline std::vector<std::int32_t> parse_int_array_line(std::string_view line) {
  std::vector<std::int32_t> ids;
  std::size_t pos = 0;
  skip_ws(line, pos);
  if (pos >= line.size() || line[pos] != '[') detail::fail(pos, "expected a JSON array of integers");
  ++pos;
  skip_ws(line, pos);
  if (pos < line.size() && line[pos] == ']') {
    ++pos;
  } else {
    while (true) {
      skip_ws(line, pos);
      std::int64_t v = 0;
      const auto r = std::from_chars(line.data() + pos, line.data() + line.size(), v);
      if (r.ec != std::errc() || (r.ptr < line.data() + line.size() && (*r.ptr == '.' || *r.ptr == 'e' || *r.ptr == 'E')))
        detail::fail(pos, "expected an integer");
      if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
        detail::fail(pos, "integer out of range");
      ids.push_back(static_cast<std::int32_t>(v));
      pos = static_cast<std::size_t>(r.ptr - line.data());
      skip_ws(line, pos);
      if (pos < line.size() && line[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < line.size() && line[pos] == ']') {
        ++pos;
        break;
      }
      detail::fail(pos, "expected ',' or ']'");
    }
  }
  skip_ws(line, pos);
  if (pos != line.size()) detail::fail(pos, "unexpected text after the array");
  return ids;
}

}  // namespace hmoe::tokenizer::json
