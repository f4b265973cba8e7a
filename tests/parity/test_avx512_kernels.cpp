/// \file
/// \brief The AVX-512 quantized matmul against two references on random blocks: ggml's dot-product semantics
/// (dequantized weights × dequantized quantized activations, in double) and gguf-exact dequantized weights ×
/// the original f32 activations; activation quantization bit-identical to quant::quantize_row_*.
///
/// Built twice (tests/parity/CMakeLists.txt): natively, where it skips on a CPU without AVX-512, and on SIMDe.
/// Every case draws a fresh seed and reports it on failure.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/cpu/avx512/matmul.hpp"
#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/quantize.hpp"

using namespace hmoe;
namespace avx = hmoe::cpu::avx512;

namespace {

/// False (after saying why) where the kernels cannot run natively; the SIMDe build always runs them.
template <class F>
bool runnable() {
  if constexpr (cpu::x86::emulated) return true;
  if (!AVX512::available()) {
    MESSAGE("skipped: this CPU lacks AVX-512 F/BW/VL/VNNI (the _emulated variant checks the arithmetic)");
    return false;
  }
  if constexpr (std::same_as<F, BF16>) {
    if (!avx::bf16_available()) {
      MESSAGE("skipped: this CPU lacks AVX512_BF16");
      return false;
    }
  }
  return true;
}

/// A new seed per case; HMOE_TEST_SEED=<seed> replays a reported failure.
std::uint64_t fresh_seed() {
  if (const char* s = std::getenv("HMOE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

template <class F> GgmlType weight_type() { return *F::ggml; }
/// The formats of 32-value blocks, whose activations are Q8_0.
template <class F> constexpr bool q8_0_activation = std::same_as<F, Q8_0> || std::same_as<F, Q5_0>;

template <class F> GgmlType activation_type() {
  if constexpr (std::same_as<F, BF16>) return GgmlType::BF16;
  else if constexpr (q8_0_activation<F>) return GgmlType::Q8_0;
  else return GgmlType::Q8_K;
}

/// f16 bits of a random scale with magnitude in [1e-3, 1e-1] and random sign.
std::uint16_t random_scale(std::mt19937_64& rng) {
  std::uniform_real_distribution<float> mag(1e-3f, 1e-1f);
  const float s = (rng() & 1) ? mag(rng) : -mag(rng);
  return quant::fp32_to_fp16(s);
}

void put_u16(std::byte* p, std::uint16_t v) { std::memcpy(p, &v, 2); }

/// `rows` random but valid rows of format F: random quant bytes (every bit pattern is a valid block), sane
/// f16 scales; BF16 from random nonzero floats.
template <class F>
std::vector<std::byte> random_weights(std::mt19937_64& rng, std::int64_t rows, std::int64_t k) {
  const std::size_t row_bytes = quant::row_bytes(weight_type<F>(), k);
  std::vector<std::byte> w(row_bytes * static_cast<std::size_t>(rows));
  if constexpr (std::same_as<F, BF16>) {
    std::normal_distribution<float> n(0.0f, 0.5f);
    for (std::size_t i = 0; i < w.size() / 2; ++i) {
      float v = n(rng);
      if (v == 0.0f) v = 0.25f;
      put_u16(w.data() + 2 * i, quant::fp32_to_bf16(v));
    }
    return w;
  } else {
    for (auto& b : w) b = static_cast<std::byte>(rng());
    constexpr std::size_t block_bytes = F::block_bytes;
    for (std::size_t at = 0; at < w.size(); at += block_bytes) {
      std::byte* blk = w.data() + at;
      if constexpr (std::same_as<F, Q4_K> || std::same_as<F, Q5_K>) {
        put_u16(blk, random_scale(rng));  // d
        put_u16(blk + 2, random_scale(rng));  // dmin
      } else if constexpr (std::same_as<F, Q6_K>) {
        put_u16(blk + offsetof(quant::BlockQ6_K, d), random_scale(rng));
      } else {
        put_u16(blk, random_scale(rng));
      }
    }
    return w;
  }
}

/// `tokens` rows of k floats. Row kinds cycle: plain normal values; each 32 values with one large positive
/// outlier; each 32 with a large negative one (the Q8_K scale's sign flips); small values (kept above the range
/// where Q8_0's f16 scale goes subnormal and its quantization error stops being half a step); a zero block.
std::vector<float> random_activations(std::mt19937_64& rng, std::int64_t tokens, std::int64_t k) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(tokens * k));
  for (std::int64_t t = 0; t < tokens; ++t) {
    float* row = x.data() + t * k;
    for (std::int64_t i = 0; i < k; ++i) row[i] = n(rng);
    const auto kind = t % 5;
    for (std::int64_t i = 0; i + 32 <= k && (kind == 1 || kind == 2); i += 32)
      row[i + static_cast<std::int64_t>(rng() % 32)] = kind == 1 ? 40.0f : -40.0f;
    if (kind == 3)
      for (std::int64_t i = 0; i < k; ++i) row[i] *= 1e-2f;
    if (kind == 4)
      for (std::int64_t i = 0; i < std::min<std::int64_t>(k, 256); ++i) row[i] = 0.0f;
  }
  return x;
}

/// Per-lane f32 roundings of the kernel's sum (blocks or 32-value steps, plus hsum), for the error bound.
template <class F>
std::int64_t f32_roundings(std::int64_t k) {
  if constexpr (std::same_as<F, BF16>) return 2 * ((k + 31) / 32) + 8;
  else if constexpr (q8_0_activation<F>) return 2 * (k / 32) + 8;
  else return 4 * (k / 256) + 8;
}

template <class F>
void check_matmul(std::int64_t k, std::int64_t tokens) {
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  CAPTURE(k);
  CAPTURE(tokens);
  std::mt19937_64 rng(seed);

  const std::int64_t rows = 37;
  const std::int64_t row_begin = static_cast<std::int64_t>(rng() % 5);
  const std::int64_t row_end = rows - static_cast<std::int64_t>(rng() % 4);
  const std::size_t w_row_bytes = quant::row_bytes(weight_type<F>(), k);
  const std::vector<std::byte> w_data = random_weights<F>(rng, rows, k);
  // Off by one byte from any alignment, as rows inside a mapped file may be.
  std::vector<std::byte> w_buf(w_data.size() + 1);
  std::memcpy(w_buf.data() + 1, w_data.data(), w_data.size());
  const std::byte* w = w_buf.data() + 1;

  const std::vector<float> x = random_activations(rng, tokens, k);
  const std::size_t a_bytes = avx::activation_row_bytes<F>(k);
  REQUIRE(a_bytes == quant::row_bytes(activation_type<F>(), k));
  const std::size_t a_stride = a_bytes + 5;  // an odd stride, so no activation row is aligned
  std::vector<std::byte> a_buf(a_stride * static_cast<std::size_t>(tokens) + 1, std::byte{0xCD});
  std::byte* act = a_buf.data() + 1;
  for (std::int64_t t = 0; t < tokens; ++t) avx::quantize_activation_row<F>(x.data() + t * k, k, act + t * a_stride);

  const std::int64_t ldy = rows + 3;
  std::vector<float> y(static_cast<std::size_t>(tokens * ldy), std::numeric_limits<float>::quiet_NaN());
  avx::matmul<F>(w, w_row_bytes, k, row_begin, row_end, act, a_stride, tokens, y.data(), ldy);

  // The most quantization moves each activation value: half a step (Q8_K: amax/127 of its 256-block; Q8_0: its
  // f16 scale), or half a bf16 ulp (≤ 2^-8 |x|). The exact product may differ by Σ|w|·that plus the f32 bound.
  std::vector<double> step(static_cast<std::size_t>(tokens * k));
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* row = x.data() + t * k;
    const std::int64_t blk = q8_0_activation<F> ? 32 : 256;
    for (std::int64_t i = 0; i < k; ++i) {
      double h;
      if constexpr (std::same_as<F, BF16>) {
        h = std::ldexp(std::fabs(static_cast<double>(row[i])), -8);
      } else {
        const std::int64_t b0 = i / blk * blk;
        double amax = 0;
        for (std::int64_t j = b0; j < b0 + blk; ++j) amax = std::max(amax, std::fabs(static_cast<double>(row[j])));
        // Q8_0 steps by its f16 scale, Q8_K by amax / 127; 1e-6 covers the float roundings of scale and product.
        const double d = q8_0_activation<F> ? quant::fp16_to_fp32(quant::fp32_to_fp16(static_cast<float>(amax / 127)))
                                               : amax / 127;
        h = 0.5 * d * (1 + 1e-6) + 1e-6 * std::fabs(static_cast<double>(row[i]));
      }
      step[static_cast<std::size_t>(t * k + i)] = h;
    }
  }

  // The kernel's only inexact steps are f32 roundings (scale products, fma accumulation, hsum); n of them per
  // lane bound its error by about n·2^-24·Σ|w·a|. 1e-5 covers that for the K-quants (n ≤ 120 at k = 7168) with
  // room; BF16, Q5_0 and Q8_0 round once or twice per 32 values, so at large k the bound itself is used.
  const double rel = std::max(1e-5, static_cast<double>(f32_roundings<F>(k)) * 0x1p-24);
  std::vector<float> wf(static_cast<std::size_t>(k)), af(static_cast<std::size_t>(k));
  int shown = 0;
  for (std::int64_t t = 0; t < tokens; ++t) {
    quant::dequantize_row(activation_type<F>(), act + t * a_stride, af.data(), k);
    for (std::int64_t r = 0; r < ldy; ++r) {
      const float got = y[static_cast<std::size_t>(t * ldy + r)];
      if (r < row_begin || r >= row_end) {
        CHECK_MESSAGE(std::isnan(got), "y written outside the row range at row " << r << ", token " << t);
        continue;
      }
      quant::dequantize_row(weight_type<F>(), w + r * static_cast<std::int64_t>(w_row_bytes), wf.data(), k);
      double ggml = 0, ggml_mag = 0, exact = 0, exact_mag = 0, quant_err = 0;
      for (std::int64_t i = 0; i < k; ++i) {
        const double wi = wf[i], ai = af[i], xi = x[static_cast<std::size_t>(t * k + i)];
        ggml += wi * ai;
        ggml_mag += std::fabs(wi * ai);
        exact += wi * xi;
        exact_mag += std::fabs(wi * xi);
        quant_err += std::fabs(wi) * step[static_cast<std::size_t>(t * k + i)];
      }
      const double err_ggml = std::fabs(got - ggml), tol_ggml = rel * ggml_mag + 1e-30;
      const double err_exact = std::fabs(got - exact), tol_exact = quant_err + rel * exact_mag + 1e-30;
      const bool ok = std::isfinite(got) && err_ggml <= tol_ggml && err_exact <= tol_exact;
      if (!ok && shown++ < 8) {
        FAIL_CHECK("row " << r << " token " << t << ": got " << got << ", ggml semantics " << ggml << " (err "
                          << err_ggml << ", tol " << tol_ggml << "), exact f32 x " << exact << " (err " << err_exact
                          << ", tol " << tol_exact << ")");
      }
    }
  }
  CHECK(shown == 0);
}

}  // namespace

TEST_CASE_TEMPLATE("avx512 matmul matches ggml's dot semantics and the exact product", F, Q4_K, Q5_K, Q6_K, Q5_0,
                   Q8_0, BF16) {
  if (!runnable<F>()) return;
  // The 32-value formats also take k that are not multiples of 256 (1408: DeepSeek-V2-Lite's expert width).
  const std::vector<std::int64_t> ks = q8_0_activation<F> ? std::vector<std::int64_t>{32, 96, 256, 1408, 2048, 7168}
                                                          : std::vector<std::int64_t>{256, 512, 2048, 7168};
  for (const std::int64_t k : ks) {
    for (std::int64_t tokens = 1; tokens <= 9; ++tokens) {
      check_matmul<F>(k, tokens);
    }
  }
  if constexpr (std::same_as<F, BF16>) {
    for (std::int64_t tokens : {1, 3, 6}) check_matmul<F>(200, tokens);  // a k with a masked tail
  }
}

TEST_CASE_TEMPLATE("avx512 matmul writes nothing for an empty range and rejects a ragged k", F, Q4_K, Q5_K, Q6_K,
                   Q5_0, Q8_0, BF16) {
  if (!runnable<F>()) return;
  const std::int64_t k = 256;
  std::mt19937_64 rng(fresh_seed());
  const auto w = random_weights<F>(rng, 4, k);
  std::vector<std::byte> act(avx::activation_row_bytes<F>(k) * 2);
  const std::vector<float> x = random_activations(rng, 2, k);
  for (int t = 0; t < 2; ++t)
    avx::quantize_activation_row<F>(x.data() + t * k, k, act.data() + t * avx::activation_row_bytes<F>(k));
  std::vector<float> y(8, std::numeric_limits<float>::quiet_NaN());
  const std::size_t wr = w.size() / 4, ar = avx::activation_row_bytes<F>(k);
  avx::matmul<F>(w.data(), wr, k, 2, 2, act.data(), ar, 2, y.data(), 4);
  avx::matmul<F>(w.data(), wr, k, 0, 4, act.data(), ar, 0, y.data(), 4);
  for (float v : y) CHECK(std::isnan(v));
  if constexpr (!std::same_as<F, BF16>) {
    CHECK_THROWS_AS(avx::matmul<F>(w.data(), wr, k - 16, 0, 1, act.data(), ar, 1, y.data(), 4), std::invalid_argument);
    CHECK_THROWS_AS(avx::quantize_activation_row<F>(x.data(), k - 16, act.data()), std::invalid_argument);
  }
}

TEST_CASE_TEMPLATE("quantize_activation_row is bit-identical to the reference quantizers", F, Q4_K, Q5_0, Q8_0,
                   BF16) {
  if (!runnable<F>()) return;  // the Q8_0 / Q8_K quantizers are AVX-512 code
  const std::uint64_t seed = fresh_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  const std::vector<std::int64_t> ks = q8_0_activation<F> ? std::vector<std::int64_t>{256, 1408, 2048, 7168}
                                                          : std::vector<std::int64_t>{256, 2048, 7168};
  for (const std::int64_t k : ks) {
    const std::int64_t tokens = 10;
    std::vector<float> x = random_activations(rng, tokens, k);
    x[static_cast<std::size_t>(5 * k + 3)] = -1e4f;                    // a single huge negative max
    x[static_cast<std::size_t>(6 * k + 100)] = 3e4f;                   // a single huge positive max
    x[static_cast<std::size_t>(6 * k + 101)] = -3e4f;                  // tie in magnitude: the first one wins
    x[static_cast<std::size_t>(7 * k + 7)] = 0.5f * (1.0f + 0x1p-8f);  // a bf16 tie, rounded to even
    // Row 8's first block has scale 1 (Q8_0: amax 127; Q8_K: max -127), so these land on exact halves: Q8_0
    // rounds them away from zero, Q8_K to even.
    const float halves[] = {-127.0f, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f, -2.5f, 126.5f, -126.5f, 0.49999997f};
    std::copy(std::begin(halves), std::end(halves), x.begin() + 8 * k);
    for (std::int64_t t = 0; t < tokens; ++t) {
      CAPTURE(k);
      CAPTURE(t);
      const float* row = x.data() + t * k;
      const std::size_t n = avx::activation_row_bytes<F>(k);
      std::vector<std::byte> got(n + 1, std::byte{0xAB});
      avx::quantize_activation_row<F>(row, k, got.data() + 1);  // unaligned on purpose
      std::vector<std::byte> want(n);
      if constexpr (std::same_as<F, BF16>) {
        for (std::int64_t i = 0; i < k; ++i) put_u16(want.data() + 2 * i, quant::fp32_to_bf16(row[i]));
      } else if constexpr (q8_0_activation<F>) {
        std::vector<quant::BlockQ8_0> b(static_cast<std::size_t>(k / 32));
        quant::quantize_row_q8_0(row, b.data(), k);
        std::memcpy(want.data(), b.data(), n);
      } else {
        std::vector<quant::BlockQ8_K> b(static_cast<std::size_t>(k / 256));
        quant::quantize_row_q8_K(row, b.data(), k);
        std::memcpy(want.data(), b.data(), n);
      }
      CHECK(std::memcmp(got.data() + 1, want.data(), n) == 0);
      CHECK(got[0] == std::byte{0xAB});
    }
  }
}
