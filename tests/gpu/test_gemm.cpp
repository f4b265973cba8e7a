/// \file
/// \brief Gemm::bf16 against a double-precision product of the same bf16 values, f32 and bf16 outputs, with
/// alpha/beta. Tolerance: |Δ| <= 1e-5 · Σ|x·w| for f32 accumulation, plus for bf16 output one bf16 rounding of the
/// result (half an ulp: 1/256 relative; 1/250 leaves room for the f32 error under it). The worst error in units
/// of that rounding is printed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "gpu_support.hpp"
#include "hmoe/cuda/gemm.hpp"
#include "hmoe/cuda/stream.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
std::vector<cuda::Bf16> bf16_values(std::mt19937_64& g, std::int64_t n) {
  const auto f = normal_floats(g, n);
  std::vector<cuda::Bf16> v(f.size());
  for (std::size_t i = 0; i < f.size(); ++i) v[i] = cuda::Bf16::from_float(f[i]);
  return v;
}

template <class Out>
void check_gemm(cuda::Gemm& gemm, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, float beta,
                std::mt19937_64& g) {
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(beta);
  const auto x = bf16_values(g, m * k), w = bf16_values(g, n * k);
  const auto y0 = bf16_values(g, m * n);  // the prior y for beta != 0
  std::vector<Out> y_init(static_cast<std::size_t>(m * n));
  for (std::size_t i = 0; i < y_init.size(); ++i) {
    if constexpr (std::is_same_v<Out, float>) y_init[i] = y0[i].to_float();
    else y_init[i] = y0[i];
  }
  cuda::Stream s;
  cuda::Buffer d_x = upload(x), d_w = upload(w);
  cuda::Buffer d_y = beta != 0.0f ? upload(y_init) : poisoned<Out>(m * n);
  gemm.bf16(d_x.as<const cuda::Bf16>(), d_w.as<const cuda::Bf16>(), d_y.as<Out>(), m, n, k, s, alpha, beta);
  s.synchronize();
  const auto y = download<Out>(d_y, m * n);
  int bad = 0;
  double worst_ulps = 0;  // |Δ| / (|ref| / 256): 1 = one bf16 rounding of the result
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (std::int64_t l = 0; l < k; ++l) {
        const double p = static_cast<double>(x[i * k + l].to_float()) * w[j * k + l].to_float();
        ref += p, mag += std::abs(p);
      }
      const double prior = y0[i * n + j].to_float();
      ref = alpha * ref + beta * prior;
      mag = std::abs(alpha) * mag + std::abs(beta * prior);
      double got;
      if constexpr (std::is_same_v<Out, float>) got = y[i * n + j];
      else got = y[i * n + j].to_float();
      const double tol =
          1e-5 * mag + (std::is_same_v<Out, float> ? 0.0 : std::abs(ref) / 250.0) + 1e-6;
      bad += !(std::abs(got - ref) <= tol);
      worst_ulps = std::max(worst_ulps, std::abs(got - ref) / (std::abs(ref) / 256.0 + 1e-30));
    }
  if constexpr (!std::is_same_v<Out, float>)
    MESSAGE("bf16 out m=" << m << " k=" << k << " beta=" << beta << ": worst error " << worst_ulps
            << " result roundings");
  CHECK(bad == 0);
}
}  // namespace

TEST_CASE("Gemm::bf16 matches a double product") {
  std::mt19937_64 g(fresh_seed("gemm_bf16"));
  cuda::Gemm gemm;
  check_gemm<float>(gemm, 1, 96, 256, 1.0f, 0.0f, g);
  check_gemm<float>(gemm, 37, 200, 512, 1.0f, 0.0f, g);
  check_gemm<float>(gemm, 128, 256, 1024, 0.5f, 2.0f, g);
  check_gemm<cuda::Bf16>(gemm, 64, 136, 320, 1.0f, 0.0f, g);
  check_gemm<cuda::Bf16>(gemm, 3, 64, 2048, 1.0f, 1.0f, g);
}
