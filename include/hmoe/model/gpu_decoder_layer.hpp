/// \file
/// \brief `DecoderLayer` with its attention on the GPU: the residual stream stays in device memory.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <utility>

#include "hmoe/cuda/rms_norm.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/gpu/kv_cache.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/gpu/weights.hpp"
#include "hmoe/model/decoder_layer.hpp"

namespace hmoe {

template <class Attn, class Ffn>
  requires std::same_as<typename Attn::policies::device, GPU>
class DecoderLayer<Attn, Ffn> {
  static_assert(std::same_as<typename Ffn::policies::device, GPU>,
                "hmoe: with attention on the GPU the block's FFN runs there too: Mlp<D, Placement<GPU>> or a "
                "MoeLayer whose router is on the GPU (its routed experts may stay on the CPU)");

 public:
  static constexpr bool on_gpu = true;
  /// True when this block's routed experts live in GPU memory too (the all-GPU layout).
  static constexpr bool routed_on_gpu = [] {
    if constexpr (requires { Ffn::routed_on_gpu; }) return Ffn::routed_on_gpu;
    else return false;
  }();

  /// `ffn_args` go to the FFN's constructor after (f, h, layer): e.g. a hybrid MoE layer's resident experts.
  template <class... FfnArgs>
  DecoderLayer(const gguf::File& f, const DeepSeekHParams& h, int layer, FfnArgs&&... ffn_args)
      : h_(h), attn_norm_(gpu::to_device(vector_f32(f, block_tensor(layer, "attn_norm.weight"), h.hidden))),
        ffn_norm_(gpu::to_device(vector_f32(f, block_tensor(layer, "ffn_norm.weight"), h.hidden))), attn_(f, h, layer),
        ffn_(f, h, layer, std::forward<FfnArgs>(ffn_args)...) {}

  std::size_t bytes() const { return attn_norm_.bytes() + ffn_norm_.bytes() + attn_.bytes() + ffn_.bytes(); }

  static std::int64_t scratch_per_token(const DeepSeekHParams& h) {
    std::int64_t ffn = 0;
    if constexpr (requires { Ffn::scratch_per_token(h); }) ffn = Ffn::scratch_per_token(h);
    else ffn = 2 * std::max(h.dense_ffn, h.expert_ffn * h.shared_experts);
    return 2 * h.hidden + Attn::scratch_per_token(h) + ffn;
  }

  /// Updates the residual stream x (tokens × hidden, device) in place.
  void forward(gpu::GpuStep& s, float* x, gpu::GpuKvCache& cache) const {
    gpu::Scratch::Frame frame(s.scratch);
    float* normed = frame.take<float>(s.tokens * h_.hidden);
    attend(s, x, cache, normed);
    float* delta = frame.take<float>(s.tokens * h_.hidden);
    ffn_.forward(s, normed, delta);
    cuda::add_inplace(x, delta, s.tokens * h_.hidden, s.stream);
  }

  // The block in stages, for a pipeline that interleaves them with other micro-batches' work.

  /// x += attention(attn_norm(x)); normed = ffn_norm(x). Writes this layer's cache rows.
  void attend(gpu::GpuStep& s, float* x, gpu::GpuKvCache& cache, float* normed) const {
    const auto n = s.tokens, hidden = h_.hidden;
    const auto eps = static_cast<float>(h_.rms_eps);
    gpu::Scratch::Frame frame(s.scratch);
    float* delta = frame.take<float>(n * hidden);
    cuda::rms_norm_residual<float>(x, nullptr, attn_norm_.as<float>(), normed, n, hidden, eps, s.stream);
    attn_.forward(s, normed, cache, delta);
    cuda::rms_norm_residual<float>(x, delta, ffn_norm_.as<float>(), normed, n, hidden, eps, s.stream);
  }

  const Ffn& ffn() const { return ffn_; }
  const DeepSeekHParams& hparams() const { return h_; }

 private:
  DeepSeekHParams h_;
  cuda::Buffer attn_norm_, ffn_norm_;
  Attn attn_;
  Ffn ffn_;
};

}  // namespace hmoe
