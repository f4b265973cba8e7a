/// \file
/// \brief mla_dense_cache_write and mla_dense_attend against a double-precision softmax on the host: rank 128 +
/// rope 32 and 512 + 64, 4 and 16 heads, 1 and 37 query tokens at causal positions pos0 .. pos0 + tokens − 1
/// (pos0 up to 299, so up to three 128-key chunks), q_rope read from the rope slice of a [tokens][heads][nope + rope]
/// query as DeepSeek lays it out. The cache write is exact, skips out-of-range positions, and leaves other rows alone.
///
/// Tolerance of attend, per output value (derived from the kernel's order of operations, u = 2⁻²⁴):
/// - a score sums ⌈D/32⌉ products per lane, then 5 butterfly adds, then one multiply by the scale (D = rank + rope):
///   |Δs_t| ≤ δ = scale·(⌈D/32⌉ + 6)·u·max_t Σ_d|q_d·c_td|;
/// - each weight expf(s − m) / l is then off by at most a factor e^{±ε}, ε = 2δ + u·(spread + 8 + 4·chunks), where
///   spread = max_t (s_max − s_t) bounds the rounding of the exponent's argument and the terms in chunks cover expf
///   (≤ 2 ulp) and the rescales between chunks;
/// - the output sums keys·(w·c) in f32 (+ a rescale per chunk, the final division):
///   |Δo_d| ≤ (e^{2ε} − 1 + (keys + 2·chunks + 16)·u)·Σ_t w_t·|c_td|.
/// A key too many or too few moves o_d by about w_t·|c_td − o_d|, far above this for all but negligible weights.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <utility>

#include "gpu_support.hpp"
#include "hmoe/cuda/mla_dense.hpp"
#include "hmoe/cuda/stream.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
constexpr float kScale = 0.1352f;  // DeepSeek-V3's kq_scale
constexpr int kNope = 128;         // the q_nope part in front of q_rope in each head's query
constexpr double u = 1.0 / 16777216.0;

struct Shape {
  int rank, rope, heads;
  std::int64_t tokens, pos0;
};

void check_attend(const Shape& sh, std::mt19937_64& g) {
  CAPTURE(sh.rank);
  CAPTURE(sh.rope);
  CAPTURE(sh.heads);
  CAPTURE(sh.tokens);
  CAPTURE(sh.pos0);
  const int D = sh.rank + sh.rope;
  const std::int64_t used = sh.pos0 + sh.tokens, capacity = used + 50;
  const std::int64_t src_stride = D + 3;

  // Cache rows 0 .. used-1: the prefix in one write with shuffled positions, the current tokens in another.
  const auto rows = normal_floats(g, static_cast<std::size_t>(used * D));
  std::vector<float> src(static_cast<std::size_t>(used * src_stride), std::nanf(""));
  std::vector<std::int32_t> pos(static_cast<std::size_t>(used));
  std::iota(pos.begin(), pos.end(), 0);
  std::shuffle(pos.begin(), pos.begin() + sh.pos0, g);
  for (std::int64_t i = 0; i < used; ++i) std::copy_n(rows.begin() + pos[i] * D, D, src.begin() + i * src_stride);

  cuda::Stream s;
  cuda::Buffer d_cache = poisoned<float>(static_cast<std::size_t>(capacity * D));
  const cuda::DenseMlaCache cache{d_cache.as<float>(), sh.rank, sh.rope, capacity};
  cuda::Buffer d_src = upload(src), d_pos = upload(pos);
  if (sh.pos0 > 0)
    cuda::mla_dense_cache_write(cache, d_src.as<const float>(), src_stride, d_pos.as<const std::int32_t>(), sh.pos0, s);
  cuda::mla_dense_cache_write(cache, d_src.as<const float>() + sh.pos0 * src_stride, src_stride,
                              d_pos.as<const std::int32_t>() + sh.pos0, sh.tokens, s);
  // Out-of-range positions are skipped.
  const std::vector<std::int32_t> bad_pos{static_cast<std::int32_t>(capacity), -1};
  cuda::Buffer d_bad = upload(bad_pos);
  cuda::mla_dense_cache_write(cache, d_src.as<const float>(), src_stride, d_bad.as<const std::int32_t>(), 2, s);

  // Queries: latent [tokens][heads][rank]; rope inside [tokens][heads][nope + rope].
  const auto q_lat = normal_floats(g, static_cast<std::size_t>(sh.tokens * sh.heads * sh.rank));
  const std::int64_t head_stride = kNope + sh.rope, token_stride = sh.heads * head_stride;
  const auto q_full = normal_floats(g, static_cast<std::size_t>(sh.tokens * token_stride));
  std::vector<std::int32_t> qpos(static_cast<std::size_t>(sh.tokens));
  std::iota(qpos.begin(), qpos.end(), static_cast<std::int32_t>(sh.pos0));
  cuda::Buffer d_qlat = upload(q_lat), d_qfull = upload(q_full), d_qpos = upload(qpos);
  const std::size_t out_count = static_cast<std::size_t>(sh.tokens * sh.heads * sh.rank);
  cuda::Buffer d_o = poisoned<float>(out_count);
  cuda::mla_dense_attend(cache, d_qlat.as<const float>(), d_qfull.as<const float>() + kNope, token_stride, head_stride,
                         sh.tokens, sh.heads, d_qpos.as<const std::int32_t>(), kScale, d_o.as<float>(), s);
  s.synchronize();

  const auto got_cache = download<float>(d_cache, static_cast<std::size_t>(capacity * D));
  int bad_cache = 0;
  for (std::int64_t i = 0; i < capacity * D; ++i)
    bad_cache += i < used * D ? !(got_cache[i] == rows[i]) : !std::isnan(got_cache[i]);
  CHECK(bad_cache == 0);

  const auto o = download<float>(d_o, out_count);
  int bad = 0;
  double worst = 0;
  std::vector<double> score(static_cast<std::size_t>(used)), weight(score.size());
  for (std::int64_t i = 0; i < sh.tokens; ++i)
    for (int h = 0; h < sh.heads; ++h) {
      const float* ql = q_lat.data() + (i * sh.heads + h) * sh.rank;
      const float* qr = q_full.data() + i * token_stride + h * head_stride + kNope;
      const std::int64_t keys = qpos[i] + 1;
      double smax = -INFINITY, smin = INFINITY, sabs_max = 0;
      for (std::int64_t t = 0; t < keys; ++t) {
        const float* c = rows.data() + t * D;
        double dot = 0, mag = 0;
        for (int d = 0; d < D; ++d) {
          const double p = static_cast<double>(d < sh.rank ? ql[d] : qr[d - sh.rank]) * c[d];
          dot += p, mag += std::abs(p);
        }
        score[t] = dot * kScale;
        smax = std::max(smax, score[t]), smin = std::min(smin, score[t]);
        sabs_max = std::max(sabs_max, mag);
      }
      double l = 0;
      for (std::int64_t t = 0; t < keys; ++t) l += std::exp(score[t] - smax);
      for (std::int64_t t = 0; t < keys; ++t) weight[t] = std::exp(score[t] - smax) / l;
      const double chunks = static_cast<double>((keys + 127) / 128);
      const double delta = kScale * static_cast<double>((D + 31) / 32 + 6) * u * sabs_max;
      const double eps = 2 * delta + u * ((smax - smin) + 8 + 4 * chunks);
      const double rel = std::expm1(2 * eps) + (static_cast<double>(keys) + 2 * chunks + 16) * u;
      for (int d = 0; d < sh.rank; ++d) {
        double ref = 0, mag = 0;
        for (std::int64_t t = 0; t < keys; ++t) {
          const double c = rows[t * D + d];
          ref += weight[t] * c, mag += weight[t] * std::abs(c);
        }
        const double tol = rel * mag + 1e-30;
        const double err = std::abs(o[(i * sh.heads + h) * sh.rank + d] - ref);
        bad += !(err <= tol);
        worst = std::max(worst, err / tol);
      }
    }
  CHECK(bad == 0);
  MESSAGE("mla_dense_attend rank=" << sh.rank << " rope=" << sh.rope << " heads=" << sh.heads << " tokens="
                                   << sh.tokens << " pos0=" << sh.pos0 << ": worst error / tolerance " << worst);
}
}  // namespace

TEST_CASE("mla_dense_attend matches a double softmax over the cache") {
  std::mt19937_64 g(fresh_seed("mla_dense"));
  for (auto [rank, rope] : {std::pair{128, 32}, std::pair{512, 64}})
    for (int heads : {4, 16}) {
      check_attend({rank, rope, heads, 1, 0}, g);
      check_attend({rank, rope, heads, 1, 299}, g);
      check_attend({rank, rope, heads, 37, 0}, g);
      check_attend({rank, rope, heads, 37, 250}, g);
    }
}

TEST_CASE("mla_dense_attend takes any rank up to 1024 and rope up to 256") {
  std::mt19937_64 g(fresh_seed("mla_dense_shapes"));
  check_attend({1024, 256, 2, 3, 130}, g);
  check_attend({100, 0, 3, 5, 7}, g);
}

TEST_CASE("mla_dense rejects shapes outside its limits") {
  cuda::Stream s;
  cuda::Buffer b(1 << 16);
  const auto* p = b.as<const std::int32_t>();
  const cuda::DenseMlaCache too_wide{b.as<float>(), 1025, 64, 4};
  CHECK_THROWS_AS(cuda::mla_dense_attend(too_wide, b.as<const float>(), b.as<const float>(), 64, 64, 1, 1, p, 1.0f,
                                         b.as<float>(), s),
                  std::invalid_argument);
  const cuda::DenseMlaCache too_much_rope{b.as<float>(), 512, 257, 4};
  CHECK_THROWS_AS(cuda::mla_dense_cache_write(too_much_rope, b.as<const float>(), 1000, p, 1, s),
                  std::invalid_argument);
  const cuda::DenseMlaCache ok{b.as<float>(), 128, 32, 4};
  CHECK_THROWS_AS(cuda::mla_dense_cache_write(ok, b.as<const float>(), 100, p, 1, s), std::invalid_argument);
  CHECK_THROWS_AS(cuda::mla_dense_attend(ok, b.as<const float>(), b.as<const float>(), 32, 32, 1, 0, p, 1.0f,
                                         b.as<float>(), s),
                  std::invalid_argument);
}
