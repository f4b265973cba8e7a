/// \file
/// \brief The routed experts of a MoE layer: tokens grouped by expert, each group through that expert's SwiGLU,
/// the results added back weighted by the router.
#pragma once

#include <concepts>
#include <cstdint>
#include <vector>

#include "hmoe/layer/mlp.hpp"
#include "hmoe/layer/router.hpp"

namespace hmoe {

template <model_dims D, class... Ps>
class Experts {
  using P = LayerPolicies<Ps...>;
  static_assert(std::same_as<typename P::device, CPU>, "hmoe: Experts has no GPU kernel yet; use Placement<CPU>");
  static_assert(std::same_as<typename P::isa, Generic>,
                "hmoe: Experts has only the Isa<Generic> reference kernel so far (AVX-512 and AMX kernels are not built yet)");
  static_assert(std::same_as<typename P::format, Stored>,
                "hmoe: Experts on the CPU runs the reference path only so far; use Quant<Stored>");

 public:
  using policies = P;

  Experts(const gguf::File& f, const DeepSeekHParams& h, int layer) : hidden_(h.hidden) {
    P::require_available("Experts");
    for (std::int64_t e = 0; e < h.experts; ++e) {
      SwiGluWeights w{slice(f, block_tensor(layer, "ffn_gate_exps.weight"), e, h.experts, h.expert_ffn, h.hidden),
                      slice(f, block_tensor(layer, "ffn_up_exps.weight"), e, h.experts, h.expert_ffn, h.hidden),
                      slice(f, block_tensor(layer, "ffn_down_exps.weight"), e, h.experts, h.hidden, h.expert_ffn),
                      h.hidden, h.expert_ffn};
      experts_.push_back(w);
    }
  }

  /// out (tokens × hidden) += Σ_k weight · expert_k(x) for the routed experts of each token.
  void forward(cpu::ThreadPool& pool, const float* x, const Routing& routing, float* out) const {
    const auto hidden = hidden_;
    // (token, weight) pairs routed to each expert, in token order.
    std::vector<std::vector<std::pair<std::int64_t, float>>> routed(experts_.size());
    for (std::int64_t i = 0; i < routing.tokens * routing.per_token; ++i)
      routed[static_cast<std::size_t>(routing.expert[static_cast<std::size_t>(i)])].emplace_back(
          i / routing.per_token, routing.weight[static_cast<std::size_t>(i)]);
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
  std::vector<SwiGluWeights> experts_;
};

}  // namespace hmoe
