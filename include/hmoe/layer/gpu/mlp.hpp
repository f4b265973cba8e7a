/// \file
/// \brief `Mlp<D, Placement<GPU>, ...>`: the SwiGLU block (dense layers, shared experts) on the GPU.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>

#include "hmoe/cuda/activation.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/gpu/weights.hpp"
#include "hmoe/layer/mlp.hpp"

namespace hmoe {

template <model_dims D, class... Ps>
  requires std::same_as<typename LayerPolicies<Ps...>::device, GPU>
class Mlp<D, Ps...> {
  using P = LayerPolicies<Ps...>;
  using F = typename P::format;
  static_assert(gpu::gpu_weight_format<F>, "hmoe: Placement<GPU> layers take Quant<Stored> or Quant<BF16>");

 public:
  using policies = P;

  Mlp(const gguf::File& f, const DeepSeekHParams& h, int layer, MlpRole role = MlpRole::Dense) {
    const bool dense = role == MlpRole::Dense;
    const std::string suffix = dense ? ".weight" : "_shexp.weight";
    ffn_ = dense ? h.dense_ffn : h.expert_ffn * h.shared_experts;
    gate_ = gpu::to_device<F>(matrix(f, block_tensor(layer, "ffn_gate" + suffix), ffn_, h.hidden));
    up_ = gpu::to_device<F>(matrix(f, block_tensor(layer, "ffn_up" + suffix), ffn_, h.hidden));
    down_ = gpu::to_device<F>(matrix(f, block_tensor(layer, "ffn_down" + suffix), h.hidden, ffn_));
  }

  std::size_t bytes() const { return gate_.bytes() + up_.bytes() + down_.bytes(); }
  std::int64_t ffn() const { return ffn_; }

  /// out (tokens × hidden) = down(silu(gate x) · up x), all on the device.
  void forward(gpu::GpuStep& s, const float* x, float* out) const { swiglu(s, gate_, up_, down_, x, s.tokens, out); }

  /// The same for any three matrices and token count (the routed experts on the GPU use it too).
  static void swiglu(gpu::GpuStep& s, const cuda::DeviceMatrix& gate, const cuda::DeviceMatrix& up,
                     const cuda::DeviceMatrix& down, const float* x, std::int64_t n, float* out) {
    gpu::Scratch::Frame frame(s.scratch);
    const auto ffn = gate.rows();
    float* g = frame.take<float>(n * ffn);
    float* u = frame.take<float>(n * ffn);
    s.matmul(gate, x, g, n);
    s.matmul(up, x, u, n);
    cuda::silu_mul<float>(g, u, g, n, ffn, ffn, ffn, s.stream);
    s.matmul(down, g, out, n);
  }

 private:
  std::int64_t ffn_ = 0;
  cuda::DeviceMatrix gate_, up_, down_;
};

}  // namespace hmoe
