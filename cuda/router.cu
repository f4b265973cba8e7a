/// \file
/// \brief route_topk: one warp per token, the selection of layer/router.hpp step by step.
///
/// Every value that decides a choice is computed with the reference's operations in the reference's order
/// (f32 sigmoid, f32 exponentials summed in double for softmax, f32 bias add, the group scores scanned in
/// expert order), so ties fall the same way; only expf may differ from the host's std::exp by an ulp or two.
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/router.hpp"

namespace hmoe::cuda {

namespace {
constexpr int warps = 4;  // tokens per block
constexpr int max_experts = 1024;
constexpr int max_groups = 64;
constexpr int max_used = 64;

struct WarpScratch {
  float prob[max_experts];
  float choice[max_experts];
  float group_score[max_groups];
  unsigned char taken[max_experts];
  unsigned char keep[max_groups];
};

__global__ void __launch_bounds__(32 * warps)
    router_kernel(const float* __restrict__ logits, const float* __restrict__ bias, std::int32_t* __restrict__ ids,
                  float* __restrict__ weights, std::int64_t tokens, RouterConfig c) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const std::int64_t t = blockIdx.x * static_cast<std::int64_t>(warps) + warp;
  if (t >= tokens) return;  // whole warps leave; no block-wide barrier follows
  WarpScratch& w = reinterpret_cast<WarpScratch*>(smem_raw)[warp];
  const int n = c.experts, k = c.experts_used;
  const float* l = logits + t * n;

  // 1. Probabilities, and the selection scores (probability + bias).
  if (!c.sigmoid) {
    float mx = -INFINITY;
    for (int e = lane; e < n; e += 32) mx = fmaxf(mx, l[e]);
    mx = detail::warp_max(mx);
    double sum = 0.0;
    for (int e = lane; e < n; e += 32) {
      const float p = expf(l[e] - mx);
      w.prob[e] = p;
      sum += static_cast<double>(p);
    }
    sum = detail::warp_sum(sum);
    for (int e = lane; e < n; e += 32) w.prob[e] = static_cast<float>(static_cast<double>(w.prob[e]) / sum);
  } else {
    for (int e = lane; e < n; e += 32) w.prob[e] = 1.0f / (1.0f + expf(-l[e]));
  }
  for (int e = lane; e < n; e += 32) {
    w.choice[e] = w.prob[e] + (bias ? bias[e] : 0.0f);
    w.taken[e] = 0;
  }
  __syncwarp();

  // 2. Group-limited: only the groups_used best groups keep their experts.
  if (c.groups > 1) {
    const int per_group = n / c.groups;
    for (int g = lane; g < c.groups; g += 32) {
      float best = -INFINITY, second = -INFINITY;
      for (int e = g * per_group; e < (g + 1) * per_group; ++e) {
        const float v = w.choice[e];
        if (v > best) second = best, best = v;
        else if (v > second) second = v;
      }
      w.group_score[g] = c.sigmoid ? best + (per_group > 1 ? second : 0.0f) : best;
      w.keep[g] = 0;
    }
    __syncwarp();
    if (lane == 0) {
      for (int j = 0; j < c.groups_used; ++j) {
        int bi = -1;
        for (int g = 0; g < c.groups; ++g)
          if (!w.keep[g] && (bi < 0 || w.group_score[g] > w.group_score[bi])) bi = g;  // ties: lower g stays
        w.keep[bi] = 1;
      }
    }
    __syncwarp();
    for (int e = lane; e < n; e += 32)
      if (!w.keep[e / per_group]) w.choice[e] = -INFINITY;
    __syncwarp();
  }

  // 3. The k best experts by selection score, ties to the lower index, best first.
  std::int32_t* out_ids = ids + t * k;
  for (int j = 0; j < k; ++j) {
    detail::ArgBest b{-INFINITY, -1};
    for (int e = lane; e < n; e += 32) {
      const detail::ArgBest cand{w.choice[e], e};
      if (!w.taken[e] && detail::better(cand, b)) b = cand;
    }
    b = detail::warp_best(b);
    if (lane == 0) {
      w.taken[b.i] = 1;
      out_ids[j] = b.i;
    }
    __syncwarp();
  }

  // 4. Weights: the plain probabilities of the chosen, normalized in the reference's order, then scaled.
  if (lane == 0) {
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += w.prob[out_ids[j]];
    float* out_w = weights + t * k;
    for (int j = 0; j < k; ++j) {
      float v = w.prob[out_ids[j]];
      if (c.normalize) v /= sum + 1e-20f;
      out_w[j] = v * c.scale;
    }
  }
}
}  // namespace

void validate(const RouterConfig& c) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("hmoe::cuda::RouterConfig: " + m); };
  if (c.experts < 1 || c.experts > max_experts)
    bad("experts = " + std::to_string(c.experts) + " is not in [1, " + std::to_string(max_experts) + "]");
  if (c.experts_used < 1 || c.experts_used > c.experts || c.experts_used > max_used)
    bad("experts_used = " + std::to_string(c.experts_used) + " is not in [1, min(experts, " +
        std::to_string(max_used) + ")]");
  if (c.groups < 1 || c.groups > max_groups || c.experts % c.groups != 0)
    bad("groups = " + std::to_string(c.groups) + " must divide experts and be in [1, " + std::to_string(max_groups) +
        "]");
  if (c.groups_used < 1 || c.groups_used > c.groups)
    bad("groups_used = " + std::to_string(c.groups_used) + " is not in [1, groups]");
  if (c.groups > 1 && c.groups_used * (c.experts / c.groups) < c.experts_used)
    bad("the " + std::to_string(c.groups_used) + " kept groups hold fewer than experts_used experts");
}

void route_topk(const float* logits, const float* bias, std::int32_t* ids, float* weights, std::int64_t tokens,
                const RouterConfig& c, const Stream& s) {
  validate(c);
  if (tokens <= 0) return;
  const unsigned blocks = detail::blocks_for(tokens, warps);
  const std::size_t smem = sizeof(WarpScratch) * warps;
  static_assert(sizeof(WarpScratch) * warps <= 48 * 1024, "router scratch must fit the default shared memory");
  router_kernel<<<blocks, 32 * warps, smem, detail::native(s)>>>(logits, bias, ids, weights, tokens, c);
  HMOE_CUDA_CHECK_LAUNCH("router_kernel");
}

}  // namespace hmoe::cuda
