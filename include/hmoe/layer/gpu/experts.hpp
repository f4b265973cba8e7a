/// \file
/// \brief `Experts<D, Placement<GPU>, ...>`: routed experts in GPU memory (the all-GPU layout, for models that
/// fit). Tokens are grouped by expert on the host from the routing, then each used expert runs its SwiGLU on
/// its tokens (gathered rows) and adds the weighted result back, one expert after another (deterministic).
#pragma once

#include <concepts>
#include <cstdint>
#include <vector>

#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/layer/experts.hpp"
#include "hmoe/layer/gpu/mlp.hpp"

namespace hmoe {

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
    const auto n = routing.tokens * routing.per_token;
    // Counting sort of (token, weight) by expert, in token order within an expert.
    std::vector<std::int64_t> start(gate_.size() + 1, 0);
    for (std::int64_t i = 0; i < n; ++i) ++start[static_cast<std::size_t>(routing.expert[static_cast<std::size_t>(i)]) + 1];
    for (std::size_t e = 0; e < gate_.size(); ++e) start[e + 1] += start[e];
    auto* rows = s.host.ids.as<std::int32_t>();
    auto* weights = s.host.weights.as<float>();
    std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto e = static_cast<std::size_t>(routing.expert[static_cast<std::size_t>(i)]);
      rows[fill[e]] = static_cast<std::int32_t>(i / routing.per_token);
      weights[fill[e]++] = routing.weight[static_cast<std::size_t>(i)];
    }
    gpu::Scratch::Frame frame(s.scratch);
    auto* d_rows = frame.take<std::int32_t>(n);
    auto* d_weights = frame.take<float>(n);
    cuda::copy_async(d_rows, rows, static_cast<std::size_t>(n) * sizeof(std::int32_t), s.stream);
    cuda::copy_async(d_weights, weights, static_cast<std::size_t>(n) * sizeof(float), s.stream);
    float* xs = frame.take<float>(routing.tokens * hidden_);
    float* ys = frame.take<float>(routing.tokens * hidden_);
    for (std::size_t e = 0; e < gate_.size(); ++e) {
      const auto count = start[e + 1] - start[e];
      if (count == 0) continue;
      cuda::gather_rows(x, d_rows + start[e], xs, count, hidden_, s.stream);
      Swiglu::swiglu(s, gate_[e], up_[e], down_[e], xs, count, ys);
      cuda::scatter_add_rows(ys, d_rows + start[e], d_weights + start[e], out, count, hidden_, s.stream);
    }
  }

 private:
  std::int64_t hidden_, ffn_;
  std::vector<cuda::DeviceMatrix> gate_, up_, down_;
};

}  // namespace hmoe
