/// \file
/// \brief rms_norm_residual against layer/rms_norm.hpp after the host residual add.
/// Tolerance: the residual is exact; y within 1e-6 relative (f32; only the order of the double sum differs),
/// within one bf16 rounding (1/250 relative) for bf16 output.
#include <doctest/doctest.h>

#include <type_traits>

#include "gpu_support.hpp"
#include "hmoe/cuda/rms_norm.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/layer/rms_norm.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
template <class Out>
void check_rms(std::int64_t rows, std::int64_t n, bool with_delta, std::mt19937_64& g) {
  CAPTURE(rows);
  CAPTURE(n);
  CAPTURE(with_delta);
  const float eps = 1e-6f;
  auto x = normal_floats(g, rows * n, 3.0f);
  const auto delta = normal_floats(g, rows * n);
  auto w = normal_floats(g, n);
  cuda::Stream s;
  cuda::Buffer d_x = upload(x);
  cuda::Buffer d_delta = upload(delta);
  cuda::Buffer d_w = upload(w);
  cuda::Buffer d_y = poisoned<Out>(rows * n);
  cuda::rms_norm_residual(d_x.as<float>(), with_delta ? d_delta.as<const float>() : nullptr, d_w.as<const float>(),
                          d_y.as<Out>(), rows, n, eps, s);
  s.synchronize();
  const auto got_x = download<float>(d_x, rows * n);
  const auto got_y = download<Out>(d_y, rows * n);
  if (with_delta)
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
  std::vector<float> ref(x.size());
  for (std::int64_t r = 0; r < rows; ++r) rms_norm(x.data() + r * n, w.data(), ref.data() + r * n, n, eps);
  int bad_x = 0, bad_y = 0;
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    bad_x += !(got_x[i] == x[i]);
    float v;
    if constexpr (std::is_same_v<Out, float>) v = got_y[i];
    else v = got_y[i].to_float();
    const double tol = std::is_same_v<Out, float> ? 1e-6 * std::abs(ref[i]) + 1e-30 : std::abs(ref[i]) / 250.0 + 1e-30;
    const double err = std::abs(static_cast<double>(v) - ref[i]);
    bad_y += !(err <= tol);
    worst = std::max(worst, err / (std::abs(ref[i]) + 1e-30));
  }
  CHECK(bad_x == 0);
  CHECK(bad_y == 0);
  std::printf("rms_norm_residual rows=%lld n=%lld delta=%d %s: worst relative error %.3g\n",
              static_cast<long long>(rows), static_cast<long long>(n), with_delta,
              std::is_same_v<Out, float> ? "f32" : "bf16", worst);
}
}  // namespace

TEST_CASE("rms_norm_residual matches rms_norm after the residual add") {
  std::mt19937_64 g(fresh_seed("rms_norm_residual"));
  check_rms<float>(5, 7168, true, g);
  check_rms<float>(3, 2051, false, g);
  check_rms<float>(1, 100, true, g);
  check_rms<cuda::Bf16>(4, 2048, true, g);
}
