/// \file
/// \brief `TopKRouter<D, Placement<GPU>>`: router logits and DeepSeek's group-limited top-k on the GPU, with the
/// CPU router's semantics (layer/router.hpp, cuda/router.cu).
#pragma once

#include <concepts>
#include <cstdint>

#include "hmoe/cuda/router.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/gpu/weights.hpp"
#include "hmoe/layer/router.hpp"

namespace hmoe {

template <model_dims D, class... Ps>
  requires std::same_as<typename LayerPolicies<Ps...>::device, GPU>
class TopKRouter<D, Ps...> {
  using P = LayerPolicies<Ps...>;
  static_assert(std::same_as<typename P::format, Stored>,
                "hmoe: the router's gate is tiny and kept as stored (usually F32): use Quant<Stored>");

 public:
  using policies = P;

  TopKRouter(const gguf::File& f, const DeepSeekHParams& h, int layer) {
    gate_ = gpu::to_device<Stored>(matrix(f, block_tensor(layer, "ffn_gate_inp.weight"), h.experts, h.hidden));
    const auto bias_name = block_tensor(layer, "exp_probs_b.bias");
    if (f.find_tensor(bias_name)) {
      if (h.gating != Gating::Sigmoid)
        throw ModelError(f.path().string() + ": " + bias_name + " is present but expert_gating_func is softmax; "
                         "the selection bias belongs to sigmoid (V3) routing");
      bias_ = gpu::to_device(vector_f32(f, bias_name, h.experts));
    }
    config_ = {static_cast<int>(h.experts), static_cast<int>(h.experts_used), static_cast<int>(h.expert_groups),
               static_cast<int>(h.expert_groups_used), h.gating == Gating::Sigmoid, h.weights_norm, h.weights_scale};
    try {
      cuda::validate(config_);
    } catch (const std::invalid_argument& e) {
      throw ModelError(f.path().string() + ": layer " + std::to_string(layer) + " router does not fit the GPU "
                       "router kernel: " + e.what());
    }
  }

  std::size_t bytes() const { return gate_.bytes() + bias_.bytes(); }

  /// ids and weights (tokens × experts_used, device) for the normalized x (tokens × hidden, device).
  void route(gpu::GpuStep& s, const float* x, std::int32_t* ids, float* weights) const {
    gpu::Scratch::Frame frame(s.scratch);
    float* logits = frame.take<float>(s.tokens * config_.experts);
    s.matmul(gate_, x, logits, s.tokens);
    cuda::route_topk(logits, bias_.data() ? bias_.as<float>() : nullptr, ids, weights, s.tokens, config_, s.stream);
  }

 private:
  cuda::DeviceMatrix gate_;
  cuda::Buffer bias_;
  cuda::RouterConfig config_;
};

}  // namespace hmoe
