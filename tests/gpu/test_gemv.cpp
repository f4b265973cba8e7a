/// \file
/// \brief gemv_q4_k and gemv_int8 against a double-precision product with the dequantized weights
/// (quant/k_blocks.hpp's decoder for Q4_K), f32 and bf16 activations, several token counts (the 8/4/2/1 chunks).
/// Tolerance: |Δ| <= 2e-5 · M + 1e-6, where M sums the magnitudes of every term the kernel adds
/// (Σ (|d·sc·q| + |dmin·m|)·|x| for Q4_K, Σ |scale·q·x| for Int8): f32 accumulation error, not a fudge factor.
#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "gpu_support.hpp"
#include "hmoe/cuda/gemv.hpp"
#include "hmoe/cuda/stream.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
std::vector<quant::BlockQ4_K> random_q4_k(std::mt19937_64& g, std::int64_t blocks) {
  std::vector<quant::BlockQ4_K> w(static_cast<std::size_t>(blocks));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> d(0.002f, 0.02f), dmin(0.0f, 0.02f);
  for (auto& b : w) {
    b.d = quant::fp32_to_fp16(d(g));
    b.dmin = quant::fp32_to_fp16(dmin(g));
    for (auto& s : b.scales) s = static_cast<std::uint8_t>(byte(g));
    for (auto& q : b.qs) q = static_cast<std::uint8_t>(byte(g));
  }
  return w;
}

/// Value i of a Q4_K block and the magnitude of the two terms the kernel forms for it.
void q4_k_terms(const quant::BlockQ4_K& b, float* value, float* magnitude) {
  quant::dequantize(b, value);
  const float d = quant::fp16_to_fp32(b.d), dmin = quant::fp16_to_fp32(b.dmin);
  for (int i = 0; i < quant::qk_k; ++i) {
    const int chunk = i / 64, sub = i / 32, l = i % 32;
    int sc = 0, m = 0;
    quant::detail::k4_scale_min(b.scales, sub, sc, m);
    const int q = (b.qs[32 * chunk + l] >> (4 * (sub & 1))) & 0x0F;
    magnitude[i] = std::abs(d * static_cast<float>(sc) * static_cast<float>(q)) + std::abs(dmin * static_cast<float>(m));
  }
}

template <class T>
std::vector<T> activations(std::mt19937_64& g, std::int64_t n, std::vector<float>& as_f32) {
  as_f32 = normal_floats(g, n);
  std::vector<T> x(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if constexpr (std::is_same_v<T, float>) x[i] = as_f32[i];
    else {
      x[i] = cuda::Bf16::from_float(as_f32[i]);
      as_f32[i] = x[i].to_float();  // the reference multiplies what the kernel reads
    }
  }
  return x;
}

template <class T>
void check_q4_k(std::int64_t rows, std::int64_t k, std::int64_t tokens, std::mt19937_64& g) {
  CAPTURE(rows);
  CAPTURE(k);
  CAPTURE(tokens);
  const std::int64_t nb = k / quant::qk_k;
  const auto w = random_q4_k(g, rows * nb);
  std::vector<float> xf;
  const auto x = activations<T>(g, tokens * k, xf);
  std::vector<float> wv(static_cast<std::size_t>(rows * k)), wm(wv.size());
  for (std::int64_t b = 0; b < rows * nb; ++b) q4_k_terms(w[b], wv.data() + b * quant::qk_k, wm.data() + b * quant::qk_k);

  cuda::Stream s;
  cuda::Buffer d_w = upload(w);
  cuda::Buffer d_x = upload(x);
  cuda::Buffer d_y = poisoned<float>(tokens * rows);
  cuda::gemv_q4_k(d_w.as<const quant::BlockQ4_K>(), d_x.as<const T>(), d_y.as<float>(), rows, k, tokens, s);
  s.synchronize();
  const auto y = download<float>(d_y, tokens * rows);
  int bad = 0;
  double worst = 0;
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (std::int64_t i = 0; i < k; ++i) {
        ref += static_cast<double>(wv[r * k + i]) * xf[t * k + i];
        mag += static_cast<double>(wm[r * k + i]) * std::abs(xf[t * k + i]);
      }
      const double err = std::abs(y[t * rows + r] - ref);
      bad += !(err <= 2e-5 * mag + 1e-6);
      worst = std::max(worst, err / mag);
    }
  CHECK(bad == 0);
  std::printf("gemv_q4_k %s rows=%lld k=%lld tokens=%lld: worst error / M = %.3g\n",
              std::is_same_v<T, float> ? "f32" : "bf16", static_cast<long long>(rows), static_cast<long long>(k),
              static_cast<long long>(tokens), worst);
}

template <class T>
void check_int8(std::int64_t rows, std::int64_t k, std::int64_t tokens, std::mt19937_64& g) {
  CAPTURE(rows);
  CAPTURE(k);
  CAPTURE(tokens);
  std::uniform_int_distribution<int> q(-128, 127);
  std::uniform_real_distribution<float> sc(0.001f, 0.01f);
  std::vector<std::int8_t> w(static_cast<std::size_t>(rows * k));
  for (auto& v : w) v = static_cast<std::int8_t>(q(g));
  std::vector<float> scale(static_cast<std::size_t>(rows));
  for (auto& v : scale) v = sc(g);
  std::vector<float> xf;
  const auto x = activations<T>(g, tokens * k, xf);

  cuda::Stream s;
  cuda::Buffer d_w = upload(w);
  cuda::Buffer d_s = upload(scale);
  cuda::Buffer d_x = upload(x);
  cuda::Buffer d_y = poisoned<float>(tokens * rows);
  cuda::gemv_int8(d_w.as<const std::int8_t>(), d_s.as<const float>(), d_x.as<const T>(), d_y.as<float>(), rows, k,
                  tokens, s);
  s.synchronize();
  const auto y = download<float>(d_y, tokens * rows);
  int bad = 0;
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (std::int64_t i = 0; i < k; ++i) {
        ref += static_cast<double>(w[r * k + i]) * xf[t * k + i];
        mag += std::abs(static_cast<double>(w[r * k + i]) * xf[t * k + i]);
      }
      ref *= scale[r], mag *= scale[r];
      bad += !(std::abs(y[t * rows + r] - ref) <= 2e-5 * mag + 1e-6);
    }
  CHECK(bad == 0);
}
}  // namespace

TEST_CASE("gemv_q4_k matches the dequantized product") {
  std::mt19937_64 g(fresh_seed("gemv_q4_k"));
  for (std::int64_t tokens : {1, 3, 8, 13}) {
    check_q4_k<float>(37, 512, tokens, g);
    check_q4_k<cuda::Bf16>(37, 512, tokens, g);
  }
  check_q4_k<float>(64, 2816, 1, g);   // V2-Lite's k: 11 blocks, an odd count
  check_q4_k<cuda::Bf16>(130, 7168, 2, g);
}

TEST_CASE("gemv_int8 matches the scaled int8 product") {
  std::mt19937_64 g(fresh_seed("gemv_int8"));
  for (std::int64_t tokens : {1, 5, 8, 11}) {
    check_int8<float>(37, 2064, tokens, g);
    check_int8<cuda::Bf16>(37, 2064, tokens, g);
  }
  check_int8<float>(129, 7168, 1, g);
}

TEST_CASE("quantized GEMVs reject shapes their loads cannot serve") {
  cuda::Stream s;
  cuda::Buffer b(1 << 16);
  CHECK_THROWS_AS(cuda::gemv_q4_k(b.as<const quant::BlockQ4_K>(), b.as<const float>(), b.as<float>(), 4, 300, 1, s),
                  std::invalid_argument);
  CHECK_THROWS_AS(cuda::gemv_int8(b.as<const std::int8_t>(), b.as<const float>(), b.as<const float>(), b.as<float>(), 4,
                                  24, 1, s),
                  std::invalid_argument);
  CHECK_THROWS_AS(cuda::gemv_int8(b.as<const std::int8_t>() + 4, b.as<const float>(), b.as<const float>(),
                                  b.as<float>(), 4, 32, 1, s),
                  std::invalid_argument);
}
