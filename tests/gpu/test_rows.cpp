/// \file
/// \brief The row helpers of rows.hpp against host loops: add_inplace and gather_rows exactly (one rounding, or a
/// copy), rms_norm_strided against layer/rms_norm.hpp within 1e-6 relative (only the order of the double sum
/// differs, as in test_rms_norm.cpp), scatter_add_rows within two roundings of the exact d + w·s
/// (|Δ| ≤ 2⁻²³·(|d| + |w·s|): the product, then the sum).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gpu_support.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/layer/rms_norm.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

TEST_CASE("add_inplace adds exactly") {
  std::mt19937_64 g(fresh_seed("add_inplace"));
  for (std::int64_t n : {1, 1000, 300001}) {
    CAPTURE(n);
    auto x = normal_floats(g, static_cast<std::size_t>(n));
    const auto y = normal_floats(g, static_cast<std::size_t>(n));
    cuda::Stream s;
    cuda::Buffer d_x = upload(x), d_y = upload(y);
    cuda::add_inplace(d_x.as<float>(), d_y.as<const float>(), n, s);
    s.synchronize();
    const auto got = download<float>(d_x, static_cast<std::size_t>(n));
    int bad = 0;
    for (std::int64_t i = 0; i < n; ++i) bad += !(got[i] == x[i] + y[i]);
    CHECK(bad == 0);
  }
}

TEST_CASE("rms_norm_strided matches rms_norm row by row, also in place") {
  std::mt19937_64 g(fresh_seed("rms_norm_strided"));
  const float eps = 1e-6f;
  for (bool in_place : {false, true}) {
    const std::int64_t rows = 5, n = 2051, ldx = 2100, ldy = in_place ? ldx : 2060;
    CAPTURE(in_place);
    const auto x = normal_floats(g, static_cast<std::size_t>(rows * ldx), 3.0f);
    const auto w = normal_floats(g, static_cast<std::size_t>(n));
    cuda::Stream s;
    cuda::Buffer d_x = upload(x), d_w = upload(w);
    cuda::Buffer d_y = in_place ? cuda::Buffer() : poisoned<float>(static_cast<std::size_t>(rows * ldy));
    float* y = in_place ? d_x.as<float>() : d_y.as<float>();
    cuda::rms_norm_strided(d_x.as<const float>(), ldx, d_w.as<const float>(), y, ldy, rows, n, eps, s);
    s.synchronize();
    const auto got = download<float>(in_place ? d_x : d_y, static_cast<std::size_t>(rows * ldy));
    std::vector<float> ref(static_cast<std::size_t>(n));
    int bad = 0, bad_pad = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      rms_norm(x.data() + r * ldx, w.data(), ref.data(), n, eps);
      for (std::int64_t i = 0; i < n; ++i)
        bad += !(std::abs(static_cast<double>(got[r * ldy + i]) - ref[i]) <= 1e-6 * std::abs(ref[i]) + 1e-30);
      for (std::int64_t i = n; i < ldy; ++i) {  // untouched: the poison, or x's own values in place
        const float before = x[r * ldx + i];
        bad_pad += in_place ? !(got[r * ldy + i] == before) : !std::isnan(got[r * ldy + i]);
      }
    }
    CHECK(bad == 0);
    CHECK(bad_pad == 0);
  }
}

TEST_CASE("gather_rows and scatter_add_rows route rows to and from experts") {
  std::mt19937_64 g(fresh_seed("gather_scatter"));
  const std::int64_t tokens = 37, cols = 1031, n = 20;
  // n distinct token indices in random order, as one expert's tokens.
  std::vector<std::int32_t> index(static_cast<std::size_t>(tokens));
  std::iota(index.begin(), index.end(), 0);
  std::shuffle(index.begin(), index.end(), g);
  index.resize(static_cast<std::size_t>(n));
  const auto src = normal_floats(g, static_cast<std::size_t>(tokens * cols));
  const auto expert_out = normal_floats(g, static_cast<std::size_t>(n * cols));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> weight(static_cast<std::size_t>(n));
  for (auto& v : weight) v = u(g);
  const auto dst0 = normal_floats(g, static_cast<std::size_t>(tokens * cols));

  cuda::Stream s;
  cuda::Buffer d_src = upload(src), d_index = upload(index), d_out = upload(expert_out), d_w = upload(weight);
  cuda::Buffer d_gathered = poisoned<float>(static_cast<std::size_t>(n * cols));
  cuda::Buffer d_dst = upload(dst0);
  cuda::gather_rows(d_src.as<const float>(), d_index.as<const std::int32_t>(), d_gathered.as<float>(), n, cols, s);
  cuda::scatter_add_rows(d_out.as<const float>(), d_index.as<const std::int32_t>(), d_w.as<const float>(),
                         d_dst.as<float>(), n, cols, s);
  s.synchronize();
  const auto gathered = download<float>(d_gathered, static_cast<std::size_t>(n * cols));
  const auto dst = download<float>(d_dst, static_cast<std::size_t>(tokens * cols));

  int bad_gather = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < cols; ++c) bad_gather += !(gathered[i * cols + c] == src[index[i] * cols + c]);
  CHECK(bad_gather == 0);

  std::vector<double> ref(dst0.begin(), dst0.end()), mag(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) mag[i] = std::abs(ref[i]);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t c = 0; c < cols; ++c) {
      const double p = static_cast<double>(weight[i]) * expert_out[i * cols + c];
      ref[index[i] * cols + c] += p;
      mag[index[i] * cols + c] += std::abs(p);
    }
  int bad_scatter = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    bad_scatter += !(std::abs(dst[i] - ref[i]) <= mag[i] / 8388608.0 + 1e-30);  // 2^-23: two roundings
  CHECK(bad_scatter == 0);
}
