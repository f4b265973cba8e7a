/// \file
/// \brief The SwiGLU feed-forward block: down(silu(gate x) · up x). Dense layers and shared experts.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "hmoe/cpu/reference_matmul.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/tensors.hpp"
#include "hmoe/policy/select.hpp"

namespace hmoe {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

/// The three matrices of one SwiGLU block.
struct SwiGluWeights {
  WeightMatrix gate, up, down;
  std::int64_t hidden = 0, ffn = 0;
};

/// out (tokens × hidden) = down(silu(gate x) · up x) for x (tokens × hidden), stride `hidden` everywhere.
inline void swiglu(cpu::ThreadPool& pool, const SwiGluWeights& w, const float* x, std::int64_t tokens, float* out) {
  std::vector<float> g(static_cast<std::size_t>(tokens * w.ffn)), u(g.size());
  cpu::reference_matmul(pool, w.gate, x, w.hidden, tokens, g.data(), w.ffn);
  cpu::reference_matmul(pool, w.up, x, w.hidden, tokens, u.data(), w.ffn);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
  cpu::reference_matmul(pool, w.down, g.data(), w.ffn, tokens, out, w.hidden);
}

/// Which tensors an Mlp reads: a dense layer's `ffn_*` or a MoE layer's shared experts `ffn_*_shexp`.
enum class MlpRole { Dense, SharedExperts };

template <model_dims D, class... Ps>
class Mlp {
  using P = LayerPolicies<Ps...>;
  static_assert(std::same_as<typename P::device, CPU>, "hmoe: Mlp with Placement<GPU> needs #include <hmoe/gpu.hpp> and linking hmoe::cuda");
  static_assert(std::same_as<typename P::format, Stored>,
                "hmoe: Mlp on the CPU runs the reference path only so far; use Quant<Stored>");

 public:
  using policies = P;

  Mlp(const gguf::File& f, const DeepSeekHParams& h, int layer, MlpRole role = MlpRole::Dense) {
    const bool dense = role == MlpRole::Dense;
    const std::string suffix = dense ? ".weight" : "_shexp.weight";
    w_.hidden = h.hidden;
    w_.ffn = dense ? h.dense_ffn : h.expert_ffn * h.shared_experts;
    w_.gate = matrix(f, block_tensor(layer, "ffn_gate" + suffix), w_.ffn, h.hidden);
    w_.up = matrix(f, block_tensor(layer, "ffn_up" + suffix), w_.ffn, h.hidden);
    w_.down = matrix(f, block_tensor(layer, "ffn_down" + suffix), h.hidden, w_.ffn);
  }

  void forward(cpu::ThreadPool& pool, const float* x, std::int64_t tokens, float* out) const {
    swiglu(pool, w_, x, tokens, out);
  }

 private:
  SwiGluWeights w_;
};

}  // namespace hmoe
