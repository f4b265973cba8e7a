/// \file
/// \brief rope_apply against layer/rope.hpp's YarnRotary, on a q-shaped array (heads × (nope + rope)) with the
/// nope part untouched. Tolerance: |Δ| <= 2e-6 · (|x0| + |x1|) per rotated value (cosf/sinf vs the host's).
#include <doctest/doctest.h>

#include "gpu_support.hpp"
#include "hmoe/cuda/rope.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/layer/rope.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
void check_rope(const YarnRope& r, std::mt19937_64& g) {
  CAPTURE(r.yarn);
  const std::int64_t tokens = 9, heads = 3, nope = 128, head = nope + r.dims;
  auto x = normal_floats(g, tokens * heads * head);
  std::vector<std::int32_t> pos(tokens);
  std::uniform_int_distribution<std::int32_t> p(0, 163839);
  for (auto& v : pos) v = p(g);
  pos[0] = 0, pos[1] = 1;
  pos[2] = 163839;  // V3's longest context

  cuda::Stream s;
  const cuda::RopeTable table(r);
  cuda::Buffer d_x = upload(x);
  cuda::Buffer d_pos = upload(pos);
  const cuda::RopeLayout l{tokens, heads, heads * head, head, nope};
  cuda::rope_apply(d_x.as<float>(), l, d_pos.as<const std::int32_t>(), table, s);
  s.synchronize();
  const auto got = download<float>(d_x, x.size());

  const YarnRotary ref(r);
  auto want = x;
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t h = 0; h < heads; ++h) ref.apply(want.data() + (t * heads + h) * head + nope, pos[t]);
  int bad = 0;
  double worst = 0;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(x.size()); ++i) {
    const std::int64_t in_head = i % head;
    if (in_head < nope) {
      bad += !(got[i] == x[i]);
      continue;
    }
    const std::int64_t pair0 = i - ((in_head - nope) & 1);
    const double scale = std::abs(x[pair0]) + std::abs(x[pair0 + 1]);
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    bad += !(err <= 2e-6 * scale);
    worst = std::max(worst, err / scale);
  }
  CHECK(bad == 0);
  std::printf("rope yarn=%d: worst error / (|x0|+|x1|) = %.3g\n", r.yarn, worst);
}
}  // namespace

TEST_CASE("rope_apply matches YarnRotary (YaRN as for DeepSeek-V3, and plain)") {
  std::mt19937_64 g(fresh_seed("rope_apply"));
  YarnRope v3;
  v3.freq_base = 10000.0f;
  v3.dims = 64;
  v3.yarn = true;
  v3.factor = 40.0f;
  v3.original_context = 4096;
  v3.beta_fast = 32.0f;
  v3.beta_slow = 1.0f;
  v3.log_multiplier = 0.1f;
  check_rope(v3, g);
  YarnRope plain;
  plain.freq_base = 10000.0f;
  plain.dims = 64;
  check_rope(plain, g);
}
