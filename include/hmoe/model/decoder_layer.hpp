/// \file
/// \brief One transformer block: x += attn(norm(x)); x += ffn(norm(x)).
#pragma once

#include <cstdint>
#include <vector>

#include "hmoe/layer/rms_norm.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/kv_cache.hpp"
#include "hmoe/model/tensors.hpp"

namespace hmoe {

template <class Attn, class Ffn>
class DecoderLayer {
 public:
  static constexpr bool on_gpu = false;

  DecoderLayer(const gguf::File& f, const DeepSeekHParams& h, int layer)
      : h_(h), attn_norm_(vector_f32(f, block_tensor(layer, "attn_norm.weight"), h.hidden)),
        ffn_norm_(vector_f32(f, block_tensor(layer, "ffn_norm.weight"), h.hidden)), attn_(f, h, layer), ffn_(f, h, layer) {}

  /// Updates the residual stream x (tokens × hidden) in place.
  void forward(cpu::ThreadPool& pool, float* x, std::int64_t tokens, KvCache& cache) const {
    const auto n = static_cast<std::size_t>(tokens * h_.hidden);
    std::vector<float> normed(n), delta(n);
    for (std::int64_t t = 0; t < tokens; ++t)
      rms_norm(x + t * h_.hidden, attn_norm_.data(), normed.data() + t * h_.hidden, h_.hidden, h_.rms_eps);
    attn_.forward(pool, normed.data(), tokens, cache, delta.data());
    for (std::size_t i = 0; i < n; ++i) x[i] += delta[i];
    for (std::int64_t t = 0; t < tokens; ++t)
      rms_norm(x + t * h_.hidden, ffn_norm_.data(), normed.data() + t * h_.hidden, h_.hidden, h_.rms_eps);
    ffn_.forward(pool, normed.data(), tokens, delta.data());
    for (std::size_t i = 0; i < n; ++i) x[i] += delta[i];
  }

 private:
  DeepSeekHParams h_;
  std::vector<float> attn_norm_, ffn_norm_;
  Attn attn_;
  Ffn ffn_;
};

}  // namespace hmoe
