/// \file
/// \brief DeepSeek's top-k expert router: V2 softmax and V3 sigmoid + bias, both with group-limited selection.
///
/// V2: probabilities = softmax(logits); a group scores its best expert. V3: probabilities = sigmoid(logits);
/// selection adds the `exp_probs_b` bias (it steers the choice only, the weights use the plain probabilities)
/// and a group scores the sum of its two best. Only the `expert_group_count_used` best groups compete. The
/// chosen weights are optionally normalized to sum 1, then multiplied by `expert_weights_scale`.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "hmoe/cpu/reference_matmul.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/tensors.hpp"
#include "hmoe/policy/select.hpp"

namespace hmoe {

/// The experts chosen for each token: ids and weights, (tokens × experts_used) each.
struct Routing {
  std::int64_t tokens = 0, per_token = 0;
  std::vector<std::int32_t> expert;
  std::vector<float> weight;
};

template <model_dims D, class... Ps>
class TopKRouter {
  using P = LayerPolicies<Ps...>;
  static_assert(std::same_as<typename P::device, CPU>, "hmoe: TopKRouter with Placement<GPU> needs #include <hmoe/gpu.hpp> and linking hmoe::cuda");

 public:
  using policies = P;

  TopKRouter(const gguf::File& f, const DeepSeekHParams& h, int layer) : h_(h) {
    gate_ = matrix(f, block_tensor(layer, "ffn_gate_inp.weight"), h.experts, h.hidden);
    const auto bias_name = block_tensor(layer, "exp_probs_b.bias");
    if (h.gating == Gating::Sigmoid && f.find_tensor(bias_name)) bias_ = vector_f32(f, bias_name, h.experts);
    else if (f.find_tensor(bias_name))
      throw ModelError(f.path().string() + ": " + bias_name + " is present but expert_gating_func is softmax; "
                       "the selection bias belongs to sigmoid (V3) routing");
  }

  /// Routes the normalized input x (tokens × hidden).
  Routing route(cpu::ThreadPool& pool, const float* x, std::int64_t tokens) const {
    const auto& h = h_;
    const auto n = h.experts, k = h.experts_used, per_group = h.experts / h.expert_groups;
    std::vector<float> logits(static_cast<std::size_t>(tokens * n));
    cpu::reference_matmul(pool, gate_, x, h.hidden, tokens, logits.data(), n);

    Routing out{tokens, k, std::vector<std::int32_t>(static_cast<std::size_t>(tokens * k)),
                std::vector<float>(static_cast<std::size_t>(tokens * k))};
    std::vector<float> prob(static_cast<std::size_t>(n)), choice(static_cast<std::size_t>(n));
    std::vector<float> group_score(static_cast<std::size_t>(h.expert_groups));
    std::vector<std::int32_t> order(static_cast<std::size_t>(std::max(n, h.expert_groups)));
    for (std::int64_t t = 0; t < tokens; ++t) {
      const float* l = logits.data() + t * n;
      if (h.gating == Gating::Softmax) {
        const float mx = *std::max_element(l, l + n);
        double sum = 0;
        for (std::int64_t e = 0; e < n; ++e) sum += prob[e] = std::exp(l[e] - mx);
        for (std::int64_t e = 0; e < n; ++e) prob[e] = static_cast<float>(prob[e] / sum);
      } else {
        for (std::int64_t e = 0; e < n; ++e) prob[e] = 1.0f / (1.0f + std::exp(-l[e]));
      }
      for (std::int64_t e = 0; e < n; ++e) choice[e] = prob[e] + (bias_.empty() ? 0.0f : bias_[e]);

      if (h.expert_groups > 1) {
        for (std::int64_t g = 0; g < h.expert_groups; ++g) {
          float best = -std::numeric_limits<float>::infinity(), second = best;
          for (std::int64_t e = g * per_group; e < (g + 1) * per_group; ++e) {
            if (choice[e] > best) second = best, best = choice[e];
            else if (choice[e] > second) second = choice[e];
          }
          group_score[g] = h.gating == Gating::Softmax ? best : best + (per_group > 1 ? second : 0.0f);
        }
        auto groups = top(group_score.data(), h.expert_groups, h.expert_groups_used, order);
        std::vector<bool> keep(static_cast<std::size_t>(h.expert_groups), false);
        for (auto g : groups) keep[static_cast<std::size_t>(g)] = true;
        for (std::int64_t e = 0; e < n; ++e)
          if (!keep[static_cast<std::size_t>(e / per_group)]) choice[e] = -std::numeric_limits<float>::infinity();
      }
      const auto chosen = top(choice.data(), n, k, order);
      float sum = 0;
      for (std::int64_t i = 0; i < k; ++i) sum += prob[chosen[i]];
      for (std::int64_t i = 0; i < k; ++i) {
        float w = prob[chosen[i]];
        if (h.weights_norm) w /= sum + 1e-20f;
        out.expert[t * k + i] = chosen[i];
        out.weight[t * k + i] = w * h.weights_scale;
      }
    }
    return out;
  }

 private:
  /// Indices of the k largest of v[0..n), largest first; ties go to the lower index.
  static std::vector<std::int32_t> top(const float* v, std::int64_t n, std::int64_t k, std::vector<std::int32_t>& order) {
    std::iota(order.begin(), order.begin() + n, 0);
    std::partial_sort(order.begin(), order.begin() + k, order.begin() + n,
                      [&](std::int32_t a, std::int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
    return {order.begin(), order.begin() + k};
  }

  DeepSeekHParams h_;
  WeightMatrix gate_;
  std::vector<float> bias_;
};

}  // namespace hmoe
