/// \file
/// \brief route_topk against the selection of layer/router.hpp (TopKRouter::route after its gate matmul).
///
/// TopKRouter needs a GGUF file, so `reference_route` below restates its selection line for line (keep the two
/// in step; factoring the selection out of TopKRouter into a free function would let this test call it).
/// Ids must match exactly, ties included (inputs with many equal logits); weights within 2e-6 relative
/// (expf vs the host's std::exp).
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "gpu_support.hpp"
#include "hmoe/cuda/router.hpp"
#include "hmoe/cuda/stream.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
std::vector<std::int32_t> top(const float* v, std::int64_t n, std::int64_t k) {
  std::vector<std::int32_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](std::int32_t a, std::int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  return {order.begin(), order.begin() + k};
}

void reference_route(const cuda::RouterConfig& c, const float* l, const float* bias, std::int32_t* ids, float* wts) {
  const std::int64_t n = c.experts, k = c.experts_used, per_group = c.experts / c.groups;
  std::vector<float> prob(n), choice(n), group_score(c.groups);
  if (!c.sigmoid) {
    const float mx = *std::max_element(l, l + n);
    double sum = 0;
    for (std::int64_t e = 0; e < n; ++e) sum += prob[e] = std::exp(l[e] - mx);
    for (std::int64_t e = 0; e < n; ++e) prob[e] = static_cast<float>(prob[e] / sum);
  } else {
    for (std::int64_t e = 0; e < n; ++e) prob[e] = 1.0f / (1.0f + std::exp(-l[e]));
  }
  for (std::int64_t e = 0; e < n; ++e) choice[e] = prob[e] + (bias ? bias[e] : 0.0f);
  if (c.groups > 1) {
    for (std::int64_t g = 0; g < c.groups; ++g) {
      float best = -std::numeric_limits<float>::infinity(), second = best;
      for (std::int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
        if (choice[e] > best) second = best, best = choice[e];
        else if (choice[e] > second) second = choice[e];
      }
      group_score[g] = !c.sigmoid ? best : best + (per_group > 1 ? second : 0.0f);
    }
    const auto groups = top(group_score.data(), c.groups, c.groups_used);
    std::vector<bool> keep(c.groups, false);
    for (auto g : groups) keep[g] = true;
    for (std::int64_t e = 0; e < n; ++e)
      if (!keep[e / per_group]) choice[e] = -std::numeric_limits<float>::infinity();
  }
  const auto chosen = top(choice.data(), n, k);
  float sum = 0;
  for (std::int64_t i = 0; i < k; ++i) sum += prob[chosen[i]];
  for (std::int64_t i = 0; i < k; ++i) {
    float w = prob[chosen[i]];
    if (c.normalize) w /= sum + 1e-20f;
    ids[i] = chosen[i];
    wts[i] = w * c.scale;
  }
}

void check_router(const char* name, const cuda::RouterConfig& c, bool with_bias, bool ties, std::mt19937_64& g) {
  CAPTURE(name);
  CAPTURE(ties);
  const std::int64_t tokens = 37, n = c.experts, k = c.experts_used;
  auto logits = normal_floats(g, tokens * n, 2.0f);
  // Ties: logits on a coarse grid, so many experts and groups score exactly the same.
  if (ties)
    for (auto& v : logits) v = std::round(v * 2.0f) / 2.0f;
  std::vector<float> bias(n, 0.0f);
  if (with_bias && !ties) bias = normal_floats(g, n, 0.1f);

  cuda::Stream s;
  cuda::Buffer d_logits = upload(logits);
  cuda::Buffer d_bias = upload(bias);
  cuda::Buffer d_ids = poisoned<std::int32_t>(tokens * k);
  cuda::Buffer d_w = poisoned<float>(tokens * k);
  cuda::route_topk(d_logits.as<const float>(), with_bias ? d_bias.as<const float>() : nullptr, d_ids.as<std::int32_t>(),
                   d_w.as<float>(), tokens, c, s);
  s.synchronize();
  const auto ids = download<std::int32_t>(d_ids, tokens * k);
  const auto w = download<float>(d_w, tokens * k);
  std::vector<std::int32_t> ref_ids(tokens * k);
  std::vector<float> ref_w(tokens * k);
  for (std::int64_t t = 0; t < tokens; ++t)
    reference_route(c, logits.data() + t * n, with_bias ? bias.data() : nullptr, ref_ids.data() + t * k,
                    ref_w.data() + t * k);
  int bad_ids = 0, bad_w = 0;
  for (std::int64_t i = 0; i < tokens * k; ++i) {
    bad_ids += ids[i] != ref_ids[i];
    bad_w += !(std::abs(w[i] - ref_w[i]) <= 2e-6 * std::abs(ref_w[i]) + 1e-12);
  }
  CHECK(bad_ids == 0);
  CHECK(bad_w == 0);
}
}  // namespace

TEST_CASE("route_topk matches the CPU router's selection, ties included") {
  std::mt19937_64 g(fresh_seed("route_topk"));
  // DeepSeek-V3: 256 experts, 8 used, 8 groups of which 4 compete, sigmoid + bias, normalized, scale 2.5.
  const cuda::RouterConfig v3{256, 8, 8, 4, true, true, 2.5f};
  // DeepSeek-V2: 160 experts, 6 used, 8 groups, 3 compete, softmax, not normalized, scale 16.
  const cuda::RouterConfig v2{160, 6, 8, 3, false, false, 16.0f};
  // V2-Lite: 64 experts, 6 used, one group.
  const cuda::RouterConfig lite{64, 6, 1, 1, false, false, 1.0f};
  // Kimi-K2-like: 384 experts, 8 used, one group, sigmoid + bias.
  const cuda::RouterConfig k2{384, 8, 1, 1, true, true, 2.827f};
  for (bool ties : {false, true}) {
    check_router("v3", v3, true, ties, g);
    check_router("v3 no bias", v3, false, ties, g);
    check_router("v2", v2, false, ties, g);
    check_router("v2-lite", lite, false, ties, g);
    check_router("k2", k2, true, ties, g);
  }
}

TEST_CASE("route_topk rejects a bad configuration before launching") {
  cuda::Stream s;
  CHECK_THROWS_AS(cuda::route_topk(nullptr, nullptr, nullptr, nullptr, 1, cuda::RouterConfig{100, 6, 8, 3}, s),
                  std::invalid_argument);  // 8 does not divide 100
  CHECK_THROWS_AS(cuda::route_topk(nullptr, nullptr, nullptr, nullptr, 1, cuda::RouterConfig{64, 65, 1, 1}, s),
                  std::invalid_argument);
}
