/// \file
/// \brief Q8_0 quantization bit-exact with gguf.quants.quantize; Q8_K against a numpy port of ggml's reference and
/// by its own invariants (round-trip error, bsums, the extreme value at -127).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/quantize.hpp"

using namespace hmoe;
using namespace hmoe::quant;

namespace {

/// Index of the first differing byte, or -1.
std::ptrdiff_t first_byte_mismatch(const void* a, const void* b, std::size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (std::size_t i = 0; i < n; ++i)
    if (x[i] != y[i]) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

template <class B>
std::vector<B> poisoned_blocks(std::size_t n) {
  std::vector<B> v(n);
  std::memset(static_cast<void*>(v.data()), 0xAB, n * sizeof(B));
  return v;
}

}  // namespace

TEST_CASE("quantize_row_q8_0 is bit-exact with gguf.quants.quantize") {
  const auto f = test::load_fixture("quantize_Q8_0.bin");
  REQUIRE(f.kind == 1);
  REQUIRE(f.type == GgmlType::Q8_0);
  const auto n = static_cast<std::int64_t>(f.values.size());
  auto y = poisoned_blocks<BlockQ8_0>(static_cast<std::size_t>(n / 32));
  REQUIRE(y.size() * sizeof(BlockQ8_0) == f.bytes.size());
  quantize_row_q8_0(f.values.data(), y.data(), n);
  const auto at = first_byte_mismatch(y.data(), f.bytes.data(), f.bytes.size());
  CHECK_MESSAGE(at < 0, "first differing byte " << at << " (block " << at / 34 << ")");
  // The fixture's hand-made blocks: ties away from zero, f16 overflow of d, and zeros.
  CHECK(y[2].d == 0x3C00);
  CHECK(y[2].qs[1] == -15);  // -14.5
  CHECK(y[2].qs[31] == 16);  // 15.5
  CHECK(y[3].d == 0x7C00);
  CHECK(y[5].qs[7] == -127);
}

TEST_CASE("quantize_row_q8_K matches ggml's reference (numpy port) bit for bit") {
  const auto f = test::load_fixture("quantize_Q8_K.bin");
  REQUIRE(f.kind == 1);
  REQUIRE(f.type == GgmlType::Q8_K);
  const auto n = static_cast<std::int64_t>(f.values.size());
  auto y = poisoned_blocks<BlockQ8_K>(static_cast<std::size_t>(n / 256));
  REQUIRE(y.size() * sizeof(BlockQ8_K) == f.bytes.size());
  quantize_row_q8_K(f.values.data(), y.data(), n);
  const auto at = first_byte_mismatch(y.data(), f.bytes.data(), f.bytes.size());
  CHECK_MESSAGE(at < 0, "first differing byte " << at << " (block " << at / 292 << ")");
  CHECK(y[0].d == 0.0f);        // the all-zero block
  CHECK(y[2].qs[10] == -127);   // the first of two tied extremes sets the sign
  CHECK(y[2].qs[20] == 127);
  CHECK(y[3].d == 1.0f);  // ties go to even
  CHECK(y[3].qs[1] == 2);
  CHECK(y[3].qs[2] == 0);
}

TEST_CASE("quantize_row_q8_K: round-trip error within half a step, bsums are the 16-value sums") {
  std::mt19937 gen(1234);
  std::normal_distribution<float> normal;
  const int nb = 24;
  std::vector<float> x(nb * 256);
  for (int b = 0; b < nb; ++b) {
    const float scale = std::ldexp(1.0f, b - 12) * (b % 2 ? -1.0f : 1.0f);
    for (int i = 0; i < 256; ++i) x[b * 256 + i] = scale * normal(gen) + (b % 3 == 0 ? scale : 0.0f);
  }
  auto y = poisoned_blocks<BlockQ8_K>(nb);
  quantize_row_q8_K(x.data(), y.data(), static_cast<std::int64_t>(x.size()));
  auto back = test::poisoned(x.size());
  dequantize_row(GgmlType::Q8_K, y.data(), back.data(), static_cast<std::int64_t>(x.size()));
  for (int b = 0; b < nb; ++b) {
    CAPTURE(b);
    const BlockQ8_K& q = y[b];
    float amax = 0, max = 0;
    for (int i = 0; i < 256; ++i)
      if (std::fabs(x[b * 256 + i]) > amax) amax = std::fabs(max = x[b * 256 + i]);
    CHECK(std::fabs(std::fabs(q.d) * 127 - amax) <= amax * 1e-6f);
    CHECK((q.d < 0) == (max > 0));  // the extreme value maps to -127
    int extremes = 0;
    for (int i = 0; i < 256; ++i) {
      CHECK(q.qs[i] >= -127);
      extremes += x[b * 256 + i] == max && q.qs[i] == -127;
      const float err = std::fabs(back[b * 256 + i] - x[b * 256 + i]);
      CHECK(err <= std::fabs(q.d) * (0.5f + 1e-4f));
    }
    CHECK(extremes >= 1);
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += q.qs[16 * k + l];
      CHECK(q.bsums[k] == sum);
    }
  }
}

TEST_CASE("quantize: zero input, and counts that are not whole blocks") {
  std::vector<float> zeros(256, 0.0f);
  auto y = poisoned_blocks<BlockQ8_K>(1);
  quantize_row_q8_K(zeros.data(), y.data(), 256);
  CHECK(y[0].d == 0.0f);
  for (int i = 0; i < 256; ++i) CHECK(y[0].qs[i] == 0);
  for (int k = 0; k < 16; ++k) CHECK(y[0].bsums[k] == 0);

  auto z = poisoned_blocks<BlockQ8_0>(1);
  quantize_row_q8_0(zeros.data(), z.data(), 32);
  CHECK(z[0].d == 0);
  for (int i = 0; i < 32; ++i) CHECK(z[0].qs[i] == 0);

  try {
    quantize_row_q8_K(zeros.data(), y.data(), 100);
    FAIL("no throw");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("quantize_row_q8_K") != std::string::npos);
    CHECK(std::string(e.what()).find("100") != std::string::npos);
  }
  CHECK_THROWS_AS(quantize_row_q8_0(zeros.data(), z.data(), 31), std::invalid_argument);
  CHECK_NOTHROW(quantize_row_q8_0(nullptr, nullptr, 0));
}
