/// \file
/// \brief f16 / bf16 <-> f32 conversions: exhaustive over all 65536 patterns, every rounding tie, and numpy / gguf-py.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "fixture.hpp"
#include "hmoe/quant/half.hpp"

using namespace hmoe;
using namespace hmoe::quant;

namespace {

/// The binary16 value of h from its definition (sign, 5-bit exponent with bias 15, 10-bit fraction).
double f16_value(std::uint16_t h) {
  const int e = (h >> 10) & 31;
  const int m = h & 1023;
  double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  if (e == 31) v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  return (h & 0x8000) ? -v : v;
}

}  // namespace

TEST_CASE("fp16_to_fp32 is exact for all 65536 patterns and keeps NaN payloads") {
  int bad = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float got = fp16_to_fp32(static_cast<std::uint16_t>(h));
    const double ref = f16_value(static_cast<std::uint16_t>(h));
    std::uint32_t want;
    if (std::isnan(ref))
      want = ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13);
    else
      want = bits_of(static_cast<float>(ref));  // every f16 is exact in f32, so this cast is exact
    if (bits_of(got) != want && bad++ < 5) FAIL_CHECK("h=" << test::hex32(h) << " got " << test::hex32(bits_of(got)) << " want " << test::hex32(want));
  }
  CHECK(bad == 0);
  CHECK(fp16_to_fp32(0x3C00) == 1.0f);
  CHECK(fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(fp16_to_fp32(0x7BFF) == 65504.0f);
  CHECK(bits_of(fp16_to_fp32(0x8000)) == 0x80000000u);
}

TEST_CASE("fp32_to_fp16 inverts fp16_to_fp32 and rounds every tie to even") {
  int bad = 0;
  auto expect = [&](float x, std::uint16_t want) {
    const std::uint16_t got = fp32_to_fp16(x);
    if (got != want && bad++ < 5) FAIL_CHECK("x=" << test::hex32(bits_of(x)) << " got " << test::hex32(got) << " want " << test::hex32(want));
  };
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto h16 = static_cast<std::uint16_t>(h);
    if ((h & 0x7FFFu) > 0x7C00u) {  // NaN: quiet NaN of the same sign
      expect(fp16_to_fp32(h16), static_cast<std::uint16_t>((h & 0x8000u) | 0x7E00u));
      continue;
    }
    expect(fp16_to_fp32(h16), h16);
    if ((h & 0x7FFFu) == 0x7C00u) continue;
    // Between |h| and the next magnitude up (65536 past the largest finite), the midpoint goes to the even one.
    const std::uint16_t up = static_cast<std::uint16_t>(h + 1);
    const double lo = f16_value(h16);
    const double hi = (h & 0x7FFFu) == 0x7BFFu ? std::copysign(65536.0, lo) : f16_value(up);
    const auto mid = static_cast<float>((lo + hi) / 2);  // 12 significant bits: exact in f32
    REQUIRE(static_cast<double>(mid) == (lo + hi) / 2);
    expect(mid, (h & 1u) ? up : h16);
    expect(std::nextafter(mid, static_cast<float>(hi) * 2), up);
    expect(std::nextafter(mid, 0.0f), h16);
  }
  CHECK(bad == 0);
  CHECK(fp32_to_fp16(1e9f) == 0x7C00);
  CHECK(fp32_to_fp16(-1e9f) == 0xFC00);
  CHECK(fp32_to_fp16(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(fp32_to_fp16(1e-30f) == 0x0000);
  CHECK(fp32_to_fp16(-1e-30f) == 0x8000);
  CHECK(fp32_to_fp16(std::numeric_limits<float>::denorm_min()) == 0x0000);
}

TEST_CASE("bf16_to_fp32 is exact for all 65536 patterns") {
  int bad = 0;
  for (std::uint32_t b = 0; b < 65536; ++b)
    if (bits_of(bf16_to_fp32(static_cast<std::uint16_t>(b))) != b << 16) ++bad;
  CHECK(bad == 0);
  CHECK(bf16_to_fp32(0x3F80) == 1.0f);
}

TEST_CASE("fp32_to_bf16 inverts bf16_to_fp32, rounds ties to even and quiets NaN like ggml") {
  int bad = 0;
  auto expect = [&](std::uint32_t x, std::uint16_t want) {
    const std::uint16_t got = fp32_to_bf16(float_from_bits(x));
    if (got != want && bad++ < 5) FAIL_CHECK("x=" << test::hex32(x) << " got " << test::hex32(got) << " want " << test::hex32(want));
  };
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto b16 = static_cast<std::uint16_t>(b);
    if ((b & 0x7FFFu) > 0x7F80u) {
      expect(b << 16, static_cast<std::uint16_t>(b | 0x40u));
      expect((b << 16) | 0xFFFFu, static_cast<std::uint16_t>(b | 0x40u));
      continue;
    }
    expect(b << 16, b16);
    if ((b & 0x7FFFu) == 0x7F80u) continue;
    const std::uint32_t mid = (b << 16) | 0x8000u;
    expect(mid, (b & 1u) ? static_cast<std::uint16_t>(b + 1) : b16);
    expect(mid + 1, static_cast<std::uint16_t>(b + 1));
    expect(mid - 1, b16);
  }
  CHECK(bad == 0);
}

TEST_CASE("fp32_to_fp16 matches numpy's astype(float16), fp32_to_bf16 matches gguf-py's BF16 quantization") {
  for (const char* name : {"quantize_F16.bin", "quantize_BF16.bin"}) {
    CAPTURE(name);
    const auto f = test::load_fixture(name);
    const bool is_f16 = f.type == GgmlType::F16;
    REQUIRE(f.kind == 1);
    REQUIRE(f.bytes.size() == 2 * f.values.size());
    int bad = 0, nans = 0;
    for (std::size_t i = 0; i < f.values.size(); ++i) {
      std::uint16_t want;
      std::memcpy(&want, f.bytes.data() + 2 * i, 2);
      const std::uint16_t got = is_f16 ? fp32_to_fp16(f.values[i]) : fp32_to_bf16(f.values[i]);
      bool ok = got == want;
      if (is_f16 && std::isnan(f.values[i])) {  // numpy keeps payload bits, ggml gives 0x7E00: same sign, both NaN
        ++nans;
        ok = (got & 0x7FFFu) > 0x7C00u && (want & 0x7FFFu) > 0x7C00u && (got & 0x8000u) == (want & 0x8000u);
      }
      if (!ok && bad++ < 5) FAIL_CHECK("i=" << i << " x=" << test::hex32(bits_of(f.values[i])) << " got " << test::hex32(got) << " want " << test::hex32(want));
    }
    CHECK(bad == 0);
    if (is_f16) CHECK(nans > 0);
  }
}
