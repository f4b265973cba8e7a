/// \file
/// \brief UTF-8 helpers for the tokenizer: decoding one code point with validation, encoding, and the
///        "maximal subpart" rule used to replace invalid bytes with U+FFFD.
///
/// Valid UTF-8 here is RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hmoe::tokenizer::utf8 {

inline constexpr char32_t replacement = 0xFFFD;

/// The bytes a sequence with this lead byte has (1..4), or 0 for a byte that cannot start one.
constexpr int sequence_length(unsigned char lead) noexcept {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;  // continuation bytes, and C0/C1 (always overlong)
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

/// The range the second byte of a sequence may take, which depends on the lead byte (this is what rules out
/// overlong forms, surrogates and values above U+10FFFF); later continuation bytes are always 80..BF.
constexpr bool valid_second(unsigned char lead, unsigned char b) noexcept {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

/// Outcome of looking at the bytes from `pos`.
struct Step {
  enum Kind { Valid, Invalid, Incomplete } kind;
  /// Valid: the sequence's length. Invalid: the length of the maximal subpart to replace by one U+FFFD
  /// (at least 1). Incomplete: the bytes present (a valid prefix that the end of the input cuts off).
  std::size_t length;
  char32_t code_point;  // Valid only
};

/// Examines the sequence starting at s[pos] (pos < s.size()).
constexpr Step step(std::string_view s, std::size_t pos) noexcept {
  const auto lead = static_cast<unsigned char>(s[pos]);
  const int n = sequence_length(lead);
  if (n == 1) return {Step::Valid, 1, lead};
  if (n == 0) return {Step::Invalid, 1, 0};
  char32_t cp = lead & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (int k = 1; k < n; ++k) {
    if (pos + k >= s.size()) return {Step::Incomplete, static_cast<std::size_t>(k), 0};
    const auto b = static_cast<unsigned char>(s[pos + k]);
    const bool ok = k == 1 ? valid_second(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return {Step::Invalid, static_cast<std::size_t>(k), 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Step::Valid, static_cast<std::size_t>(n), cp};
}

/// Whether `s` is entirely valid UTF-8.
constexpr bool is_valid(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= s.size()) {
      std::uint64_t w = 0;
      for (int k = 0; k < 8; ++k) w |= std::uint64_t(static_cast<unsigned char>(s[i + k])) << (8 * k);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const Step st = step(s, i);
    if (st.kind != Step::Valid) return false;
    i += st.length;
  }
  return true;
}

/// Appends the UTF-8 form of `cp` (which must be a Unicode scalar value).
inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// `s` with every invalid sequence replaced by U+FFFD (one per maximal subpart, the W3C/WHATWG rule). With
/// `keep_incomplete_tail`, a valid but cut-off sequence at the very end is not replaced: instead its length is
/// stored in *tail and it is left out of the result (the stream decoder holds those bytes back).
inline std::string sanitize(std::string_view s, std::size_t* tail = nullptr) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  if (tail) *tail = 0;
  while (i < s.size()) {
    const Step st = step(s, i);
    if (st.kind == Step::Valid) {
      out.append(s.substr(i, st.length));
    } else if (st.kind == Step::Incomplete && tail) {
      *tail = st.length;
      break;
    } else {
      append(out, replacement);
    }
    i += st.length;
  }
  return out;
}

}  // namespace hmoe::tokenizer::utf8
