/// \file
/// \brief GPT-2's byte-level alphabet: every byte is shown as one printable code point, so that a byte-level
///        BPE vocabulary can be stored as text.
///
/// Bytes that are printable in Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves; the
/// other 68 bytes (controls, space, DEL, NBSP, soft hyphen) take U+0100, U+0101, ... in byte order. So the
/// space is 'Ġ' (U+0120) and the newline 'Ċ' (U+010A).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hmoe/tokenizer/utf8.hpp"

namespace hmoe::tokenizer::byte_level {

namespace detail {
constexpr bool printable(unsigned b) noexcept {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> to_char{};
  /// Indexed by code point below 0x144; -1 where the code point stands for no byte.
  std::array<std::int16_t, 0x144> to_byte{};
};

constexpr Tables make_tables() noexcept {
  Tables t;
  for (auto& v : t.to_byte) v = -1;
  unsigned next = 0x100;
  for (unsigned b = 0; b < 256; ++b) {
    const char32_t c = printable(b) ? b : next++;
    t.to_char[b] = c;
    t.to_byte[c] = static_cast<std::int16_t>(b);
  }
  return t;
}

inline constexpr Tables tables = make_tables();
}  // namespace detail

/// The code point that stands for byte `b`.
constexpr char32_t char_of(unsigned char b) noexcept { return detail::tables.to_char[b]; }

/// The byte that code point `c` stands for, or -1.
constexpr int byte_of(char32_t c) noexcept { return c < 0x144 ? detail::tables.to_byte[c] : -1; }

/// The byte-level text of raw bytes (e.g. " the" -> "Ġthe").
inline std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) utf8::append(out, char_of(static_cast<unsigned char>(b)));
  return out;
}

/// The raw bytes of a byte-level text, or nothing when it holds a code point outside the alphabet (or is not
/// valid UTF-8).
inline std::optional<std::string> decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const utf8::Step st = utf8::step(text, i);
    if (st.kind != utf8::Step::Valid) return std::nullopt;
    const int b = byte_of(st.code_point);
    if (b < 0) return std::nullopt;
    out += static_cast<char>(b);
    i += st.length;
  }
  return out;
}

}  // namespace hmoe::tokenizer::byte_level
