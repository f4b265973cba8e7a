/// \file
/// \brief Block struct layouts and traits, and hand-built blocks whose values are worked out from ggml's format
/// description (independent of the gguf-py fixtures).
#include <doctest/doctest.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "fixture.hpp"
#include "hmoe/quant/dequantize.hpp"

using namespace hmoe;
using namespace hmoe::quant;

namespace {

template <class B>
void check_traits(std::size_t bytes, int elems, GgmlType type) {
  CAPTURE(ggml_type_name(type));
  CHECK(sizeof(B) == bytes);
  CHECK(B::block_elems == elems);
  CHECK(B::type == type);
  CHECK(std::is_standard_layout_v<B>);
  CHECK(std::is_trivially_copyable_v<B>);
  CHECK(ggml_type_info(type).block_bytes == bytes);
  CHECK(ggml_type_info(type).block_elems == static_cast<std::uint32_t>(elems));
}

template <class B>
std::vector<float> decode(const B& b) {
  auto out = test::poisoned(B::block_elems);
  dequantize(b, out.data());
  return out;
}

}  // namespace

TEST_CASE("block structs have ggml's sizes and carry their type") {
  check_traits<BlockQ4_0>(18, 32, GgmlType::Q4_0);
  check_traits<BlockQ4_1>(20, 32, GgmlType::Q4_1);
  check_traits<BlockQ5_0>(22, 32, GgmlType::Q5_0);
  check_traits<BlockQ5_1>(24, 32, GgmlType::Q5_1);
  check_traits<BlockQ8_0>(34, 32, GgmlType::Q8_0);
  check_traits<BlockQ2_K>(84, 256, GgmlType::Q2_K);
  check_traits<BlockQ3_K>(110, 256, GgmlType::Q3_K);
  check_traits<BlockQ4_K>(144, 256, GgmlType::Q4_K);
  check_traits<BlockQ5_K>(176, 256, GgmlType::Q5_K);
  check_traits<BlockQ6_K>(210, 256, GgmlType::Q6_K);
  check_traits<BlockQ8_K>(292, 256, GgmlType::Q8_K);
  static_assert(std::is_same_v<BlockFor<GgmlType::Q4_K>::type, BlockQ4_K>);
  static_assert(std::is_same_v<BlockFor<GgmlType::Q8_0>::type, BlockQ8_0>);
  static_assert(QuantBlock<BlockQ6_K>);
  static_assert(!QuantBlock<float>);
}

TEST_CASE("Q4_0: low nibbles are values 0..15, high nibbles 16..31, offset 8") {
  BlockQ4_0 b{};
  b.d = 0x3C00;  // 1.0
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  const auto y = decode(b);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == static_cast<float>(j - 8));
    CHECK(y[j + 16] == static_cast<float>(7 - j));
  }
}

TEST_CASE("Q5_1: bit j of qh is the fifth bit of value j; value = d * q + m") {
  BlockQ5_1 b{};
  b.d = 0x3800;  // 0.5
  b.m = 0xBC00;  // -1
  const std::uint8_t qh[4] = {0xFF, 0xFF, 0x00, 0x00};
  std::memcpy(b.qh, qh, 4);
  std::memset(b.qs, 0xFF, sizeof b.qs);
  const auto y = decode(b);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == 14.5f);      // 0.5 * 31 - 1
    CHECK(y[j + 16] == 6.5f);  // 0.5 * 15 - 1
  }
}

TEST_CASE("Q2_K: 2-bit fields of byte l are values l, l+32, l+64, l+96 of each 128; scale nibble and min nibble") {
  BlockQ2_K b{};
  b.d = 0x3C00;     // 1
  b.dmin = 0x3800;  // 0.5
  std::memset(b.qs, 0xE4, sizeof b.qs);  // fields 0, 1, 2, 3 from the low bits up
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<std::uint8_t>(s);
  b.scales[15] = 0xF3;  // scale 3, min 15
  const auto y = decode(b);
  for (int i = 0; i < 240; ++i) CHECK(y[i] == static_cast<float>((i / 16) * ((i % 128) / 32)));
  for (int i = 240; i < 256; ++i) CHECK(y[i] == 1.5f);  // 3 * 3 - 0.5 * 15
}

TEST_CASE("Q3_K: a clear hmask bit subtracts 4; 6-bit scales split over low nibbles and 2-bit high fields") {
  BlockQ3_K b{};
  b.d = 0x4000;  // 2
  std::memset(b.qs, 0xE4, sizeof b.qs);
  std::memset(b.hmask, 0xFE, sizeof b.hmask);  // bit 0 clear: the first 32 values get -4
  // Every scale 33 (low nibble 1, high bits 2) -> 33 - 32 = 1, but sub-block 15 gets 0 -> -32.
  std::memset(b.scales, 0x11, 8);
  std::memset(b.scales + 8, 0xAA, 4);
  b.scales[7] = 0x01;   // high nibble: low bits of scale 15
  b.scales[11] = 0x2A;  // bits 6..7: high bits of scale 15
  const auto y = decode(b);
  for (int i = 0; i < 32; ++i) CHECK(y[i] == -8.0f);  // 2 * 1 * (0 - 4)
  for (int i = 32; i < 240; ++i) CHECK(y[i] == static_cast<float>(2 * ((i % 128) / 32)));
  for (int i = 240; i < 256; ++i) CHECK(y[i] == -192.0f);  // 2 * -32 * 3
}

TEST_CASE("Q4_K: 6-bit scales and mins, sub-blocks 4..7 take their top bits from bytes 0..7") {
  BlockQ4_K b{};
  b.d = 0x3C00;
  b.dmin = 0x3C00;
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<std::uint8_t>(0xC0 | j);             // scale j, top bits 3 for scale j + 4
    b.scales[j + 4] = static_cast<std::uint8_t>(0x80 | (10 + j));  // min 10 + j, top bits 2 for min j + 4
    b.scales[j + 8] = 0x5A;                                        // low nibbles: scale 0xA, min 0x5
  }
  std::memset(b.qs, 0x21, sizeof b.qs);  // low nibble 1 (even sub-blocks), high nibble 2 (odd)
  const auto y = decode(b);
  const float want[8] = {0 * 1 - 10, 1 * 2 - 11, 2 * 1 - 12, 3 * 2 - 13, 58 * 1 - 37, 58 * 2 - 37, 58 - 37, 116 - 37};
  for (int i = 0; i < 256; ++i) CHECK(y[i] == want[i / 32]);
}

TEST_CASE("Q6_K: 4 low bits from ql (nibble by 64s), 2 high bits from qh (by 32s), offset 32") {
  BlockQ6_K b{};
  b.d = 0x3C00;
  std::memset(b.scales, 1, sizeof b.scales);
  b.ql[5] = 0x3A;        // value 5: 0xA, value 69: 3
  b.qh[5] = 0b11100100;  // values 5, 37, 69, 101: high bits 0, 1, 2, 3
  b.scales[15] = -2;
  const auto y = decode(b);
  for (int i = 0; i < 240; ++i) {
    float want = -32;
    if (i == 5) want = 10 - 32;
    if (i == 37) want = 16 - 32;
    if (i == 69) want = 3 + 32 - 32;
    if (i == 101) want = 48 - 32;
    CHECK(y[i] == want);
  }
  for (int i = 240; i < 256; ++i) CHECK(y[i] == 64.0f);
}

TEST_CASE("Q8_K: value = d * q") {
  BlockQ8_K b{};
  b.d = 0.25f;
  for (int i = 0; i < 256; ++i) b.qs[i] = static_cast<std::int8_t>(i - 128);
  const auto y = decode(b);
  for (int i = 0; i < 256; ++i) CHECK(y[i] == static_cast<float>(i - 128) / 4);
}
