/// \file
/// \brief `Experts<D, Placement<GPU>, ...>`: routed experts in GPU memory (the all-GPU layout, for models that
/// fit). Tokens are grouped by expert on the host from the routing, then each used expert runs its SwiGLU on
/// its tokens (gathered rows) and adds the weighted result back, one expert after another (deterministic).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/gpu/expert_groups.hpp"
#include "hmoe/layer/experts.hpp"
#include "hmoe/layer/gpu/mlp.hpp"

namespace hmoe {

namespace gpu {

/// out (tokens × hidden, device) += Σ weight · expert(x) over pairs already grouped by expert (group_by_expert):
/// each used expert's SwiGLU over its gathered rows and the weighted rows added back, one expert after another
/// (deterministic). `matrices(e)` gives expert e's {gate, up, down} DeviceMatrix. The groups' rows and weights go
/// to the device through `pinned_rows` / `pinned_weights` (pinned host memory, ≥ g.pairs() each), which must
/// stay as they are until the stream has copied them.
template <class Swiglu, class Matrices>
void run_expert_groups(GpuStep& s, const float* x, std::int64_t tokens, const ExpertGroups& g,
                       std::int32_t* pinned_rows, float* pinned_weights, std::int64_t hidden, float* out,
                       Matrices&& matrices) {
  const auto n = g.pairs();
  if (n == 0) return;
  std::copy(g.rows.begin(), g.rows.end(), pinned_rows);
  std::copy(g.weights.begin(), g.weights.end(), pinned_weights);
  Scratch::Frame frame(s.scratch);
  auto* d_rows = frame.take<std::int32_t>(n);
  auto* d_weights = frame.take<float>(n);
  cuda::copy_async(d_rows, pinned_rows, static_cast<std::size_t>(n) * sizeof(std::int32_t), s.stream);
  cuda::copy_async(d_weights, pinned_weights, static_cast<std::size_t>(n) * sizeof(float), s.stream);
  float* xs = frame.take<float>(tokens * hidden);
  float* ys = frame.take<float>(tokens * hidden);
  for (std::size_t e = 0; e + 1 < g.start.size(); ++e) {
    const auto count = g.count(e);
    if (count == 0) continue;
    const auto& [gate, up, down] = matrices(e);
    cuda::gather_rows(x, d_rows + g.start[e], xs, count, hidden, s.stream);
    Swiglu::swiglu(s, gate, up, down, xs, count, ys);
    cuda::scatter_add_rows(ys, d_rows + g.start[e], d_weights + g.start[e], out, count, hidden, s.stream);
  }
}

/// out (tokens × hidden, device) += Σ weight · expert(x) for routing arrays on the host (expert[t·k + j],
/// weight[t·k + j]): tokens grouped by expert (a counting sort, token order kept), then run_expert_groups,
/// staged through the staging's ids/weights buffers (the routing may live there itself).
template <class Swiglu, class Matrices>
void run_grouped_experts(GpuStep& s, const float* x, std::int64_t tokens, std::int64_t per_token,
                         const std::int32_t* expert, const float* weight, std::int64_t experts, std::int64_t hidden,
                         float* out, Matrices&& matrices) {
  const auto groups = group_by_expert(expert, weight, tokens, per_token, experts);
  run_expert_groups<Swiglu>(s, x, tokens, groups, s.host.ids.as<std::int32_t>(), s.host.weights.as<float>(), hidden,
                            out, std::forward<Matrices>(matrices));
}

}  // namespace gpu

template <model_dims D, class... Ps>
  requires std::same_as<typename LayerPolicies<Ps...>::device, GPU>
class Experts<D, Ps...> {
  using P = LayerPolicies<Ps...>;
  using F = typename P::format;
  static_assert(gpu::gpu_weight_format<F>, "hmoe: Placement<GPU> layers take Quant<Stored> or Quant<BF16>");
  using Swiglu = Mlp<D, Placement<GPU>, Quant<F>>;

 public:
  using policies = P;

  Experts(const gguf::File& f, const DeepSeekHParams& h, int layer) : hidden_(h.hidden), ffn_(h.expert_ffn) {
    for (std::int64_t e = 0; e < h.experts; ++e) {
      gate_.push_back(gpu::to_device<F>(slice(f, block_tensor(layer, "ffn_gate_exps.weight"), e, h.experts, h.expert_ffn, h.hidden)));
      up_.push_back(gpu::to_device<F>(slice(f, block_tensor(layer, "ffn_up_exps.weight"), e, h.experts, h.expert_ffn, h.hidden)));
      down_.push_back(gpu::to_device<F>(slice(f, block_tensor(layer, "ffn_down_exps.weight"), e, h.experts, h.hidden, h.expert_ffn)));
    }
  }

  std::size_t bytes() const {
    std::size_t b = 0;
    for (std::size_t e = 0; e < gate_.size(); ++e) b += gate_[e].bytes() + up_[e].bytes() + down_[e].bytes();
    return b;
  }

  /// Scratch floats per token that forward takes (besides what swiglu takes per expert).
  static std::int64_t scratch_per_token(const DeepSeekHParams& h) {
    return 2 * h.experts_used + 2 * h.hidden + 2 * h.expert_ffn;
  }

  /// out (tokens × hidden, device) += Σ weight · expert(x) over the routing (host copy of the router's output).
  void forward(gpu::GpuStep& s, const float* x, const Routing& routing, float* out) const {
    forward(s, x, routing.tokens, routing.per_token, routing.expert.data(), routing.weight.data(), out);
  }

  /// The same over raw host routing arrays: expert[t · per_token + j] with weight[t · per_token + j].
  void forward(gpu::GpuStep& s, const float* x, std::int64_t tokens, std::int64_t per_token,
               const std::int32_t* expert, const float* weight, float* out) const {
    gpu::run_grouped_experts<Swiglu>(s, x, tokens, per_token, expert, weight, static_cast<std::int64_t>(gate_.size()),
                                     hidden_, out, [&](std::size_t e) { return std::tie(gate_[e], up_[e], down_[e]); });
  }

 private:
  std::int64_t hidden_, ffn_;
  std::vector<cuda::DeviceMatrix> gate_, up_, down_;
};

}  // namespace hmoe
