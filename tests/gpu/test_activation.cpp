/// \file
/// \brief silu_mul against layer/mlp.hpp's silu (1e-6 relative: expf vs std::exp), on a fused gate|up layout;
/// to_bf16 / to_f32 bit-exact against quant/half.hpp, NaN, infinities and subnormals included.
#include <doctest/doctest.h>

#include <limits>

#include "gpu_support.hpp"
#include "hmoe/cuda/activation.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/layer/mlp.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

TEST_CASE("silu_mul on a fused gate|up output") {
  std::mt19937_64 g(fresh_seed("silu_mul"));
  const std::int64_t rows = 3, cols = 1000, ld_in = 2 * cols, ld_out = cols + 8;
  const auto gu = normal_floats(g, rows * ld_in, 4.0f);
  cuda::Stream s;
  cuda::Buffer d_gu = upload(gu);
  cuda::Buffer d_out = poisoned<float>(rows * ld_out);
  cuda::Buffer d_out_bf = poisoned<cuda::Bf16>(rows * ld_out);
  cuda::silu_mul(d_gu.as<const float>(), d_gu.as<const float>() + cols, d_out.as<float>(), rows, cols, ld_in, ld_out, s);
  cuda::silu_mul(d_gu.as<const float>(), d_gu.as<const float>() + cols, d_out_bf.as<cuda::Bf16>(), rows, cols, ld_in,
                 ld_out, s);
  s.synchronize();
  const auto out = download<float>(d_out, rows * ld_out);
  const auto out_bf = download<cuda::Bf16>(d_out_bf, rows * ld_out);
  int bad = 0, bad_bf = 0, pad_written = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const float want = silu(gu[r * ld_in + c]) * gu[r * ld_in + cols + c];
      const float v = out[r * ld_out + c];
      bad += !(std::abs(v - want) <= 1e-6f * std::abs(want) + 1e-30f);
      bad_bf += !(std::abs(out_bf[r * ld_out + c].to_float() - want) <= std::abs(want) / 250.0f + 1e-30f);
    }
    for (std::int64_t c = cols; c < ld_out; ++c) pad_written += !std::isnan(out[r * ld_out + c]);
  }
  CHECK(bad == 0);
  CHECK(bad_bf == 0);
  CHECK(pad_written == 0);  // the gap between rows is left alone
}

TEST_CASE("to_bf16 and to_f32 are bit-exact") {
  std::mt19937_64 g(fresh_seed("to_bf16"));
  auto x = normal_floats(g, 4099, 100.0f);
  x[0] = std::numeric_limits<float>::quiet_NaN();
  x[1] = std::numeric_limits<float>::infinity();
  x[2] = -std::numeric_limits<float>::infinity();
  x[3] = 1e-40f;            // subnormal
  x[4] = 3.3961514e38f;     // rounds past the largest bf16: inf
  x[5] = -0.0f;
  cuda::Stream s;
  cuda::Buffer d_x = upload(x);
  cuda::Buffer d_b = poisoned<cuda::Bf16>(x.size());
  cuda::Buffer d_back = poisoned<float>(x.size());
  cuda::to_bf16(d_x.as<const float>(), d_b.as<cuda::Bf16>(), static_cast<std::int64_t>(x.size()), s);
  cuda::to_f32(d_b.as<const cuda::Bf16>(), d_back.as<float>(), static_cast<std::int64_t>(x.size()), s);
  s.synchronize();
  const auto b = download<cuda::Bf16>(d_b, x.size());
  const auto back = download<float>(d_back, x.size());
  int bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto want = quant::fp32_to_bf16(x[i]);
    bad += b[i].bits != want;
    bad += quant::bits_of(back[i]) != quant::bits_of(quant::bf16_to_fp32(want));
  }
  CHECK(bad == 0);
}
