/// \file
/// \brief The routed experts of a MoE layer: tokens grouped by expert, each group through that expert's SwiGLU,
/// the results added back weighted by the router. Isa<Generic> is the f32 reference; Isa<AVX512|AMX> runs
/// the fused CPU kernels of cpu/fused_experts.hpp.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hmoe/cpu/fused_experts.hpp"
#include "hmoe/cpu/x86/intrinsics.hpp"
#include "hmoe/layer/mlp.hpp"
#include "hmoe/layer/router.hpp"

namespace hmoe {

template <model_dims D, class... Ps>
class Experts {
  using P = LayerPolicies<Ps...>;
  static_assert(std::same_as<typename P::device, CPU>, "hmoe: Experts with Placement<GPU> needs #include <hmoe/gpu.hpp> and linking hmoe::cuda");
  static constexpr bool reference = std::same_as<typename P::isa, Generic>;
  static_assert(!reference || std::same_as<typename P::format, Stored>,
                "hmoe: Experts with Isa<Generic> is the f32 reference path and takes Quant<Stored> only; "
                "pick Isa<AVX512> or Isa<AMX> for other formats");

 public:
  using policies = P;

  /// `placer`: a pool whose threads bind (pack, or copy) the experts node by node, so that each expert's weights
  /// live in the memory of the NUMA node that will run it (cpu::FusedExperts::bind, docs/numa.md). By default
  /// the pool of an enclosing cpu::PlaceExpertsOn scope, if any. The reference path ignores it.
  Experts(const gguf::File& f, const DeepSeekHParams& h, int layer,
          cpu::ThreadPool* placer = cpu::PlaceExpertsOn::pool())
      : hidden_(h.hidden) {
    if constexpr (!cpu::x86::emulated) P::require_available("Experts");
    auto weights = [&](std::int64_t e) {
      return SwiGluWeights{slice(f, block_tensor(layer, "ffn_gate_exps.weight"), e, h.experts, h.expert_ffn, h.hidden),
                           slice(f, block_tensor(layer, "ffn_up_exps.weight"), e, h.experts, h.expert_ffn, h.hidden),
                           slice(f, block_tensor(layer, "ffn_down_exps.weight"), e, h.experts, h.hidden, h.expert_ffn),
                           h.hidden, h.expert_ffn};
    };
    if constexpr (reference) {
      for (std::int64_t e = 0; e < h.experts; ++e) experts_.push_back(weights(e));
    } else {
      // The views are made here, on the loading thread (slice reads the file's index); only binding runs on
      // the placer's threads.
      std::vector<SwiGluWeights> views;
      for (std::int64_t e = 0; e < h.experts; ++e) views.push_back(weights(e));
      fused_.emplace(cpu::FusedExperts::bind(h.experts, h.hidden, h.expert_ffn, placer, [&](std::int64_t e, cpu::Rows rows) {
        using I = typename P::isa;
        using F = typename P::format;
        const auto& w = views[static_cast<std::size_t>(e)];
        return cpu::ExpertMatrices{cpu::bind_expert_matrix<I, F>(w.gate, rows), cpu::bind_expert_matrix<I, F>(w.up, rows),
                                   cpu::bind_expert_matrix<I, F>(w.down, rows)};
      }));
    }
  }

  /// What runs each role, e.g. "gate AMX Q4_K, up AMX Q4_K, down AVX512 Q6_K" (expert 0's; all experts of a
  /// layer share their tensors' formats).
  std::string kernels() const {
    if constexpr (reference) return "reference f32 (dequantized on access)";
    else {
      const auto& m = fused_->matrices();
      return "gate " + m.gate[0].kernel_name() + ", up " + m.up[0].kernel_name() + ", down " + m.down[0].kernel_name();
    }
  }

  /// The fused kernels' layer (where each expert was placed, and the per-node run counts, live there).
  const cpu::FusedExperts& fused() const
    requires(!reference)
  {
    return *fused_;
  }

  /// out (tokens × hidden) += Σ_k weight · expert_k(x) for the routed experts of each token.
  void forward(cpu::ThreadPool& pool, const float* x, const Routing& routing, float* out) const {
    forward(pool, x, routing.tokens, routing.per_token, routing.expert.data(), routing.weight.data(), out);
  }

  /// The same over raw routing arrays: expert[t * per_token + j] with weight[t * per_token + j]. Pairs with an
  /// id < 0 run elsewhere (experts resident on the GPU) and are skipped, on every path.
  void forward(cpu::ThreadPool& pool, const float* x, std::int64_t tokens, std::int64_t per_token,
               const std::int32_t* expert, const float* weight, float* out) const {
    if constexpr (!reference) {
      fused_->forward(pool, x, tokens, expert, weight, per_token, out);
      return;
    }
    const auto hidden = hidden_;    // (token, weight) pairs routed to each expert, in token order.
    std::vector<std::vector<std::pair<std::int64_t, float>>> routed(experts_.size());
    for (std::int64_t i = 0; i < tokens * per_token; ++i)
      if (expert[i] >= 0) routed[static_cast<std::size_t>(expert[i])].emplace_back(i / per_token, weight[i]);
    std::vector<float> xs, ys;
    for (std::size_t e = 0; e < experts_.size(); ++e) {
      const auto& rows = routed[e];
      if (rows.empty()) continue;
      const auto n = static_cast<std::int64_t>(rows.size());
      xs.resize(static_cast<std::size_t>(n * hidden));
      ys.resize(xs.size());
      for (std::int64_t i = 0; i < n; ++i)
        std::copy_n(x + rows[static_cast<std::size_t>(i)].first * hidden, hidden, xs.data() + i * hidden);
      swiglu(pool, experts_[e], xs.data(), n, ys.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const auto [t, w] = rows[static_cast<std::size_t>(i)];
        for (std::int64_t c = 0; c < hidden; ++c) out[t * hidden + c] += w * ys[static_cast<std::size_t>(i * hidden + c)];
      }
    }
  }

 private:
  std::int64_t hidden_;
  std::vector<SwiGluWeights> experts_;      // the reference path
  std::optional<cpu::FusedExperts> fused_;  // the AVX-512 / AMX path
};

}  // namespace hmoe
