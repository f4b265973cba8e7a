/// \file
/// \brief `MlaAttention<D, Placement<GPU>, ...>`: absorbed MLA on the GPU, the same arithmetic as the CPU
/// reference (layer/mla.hpp) with the cache in GPU memory.
///
/// Projections go through cuda::matmul on the stored weights; W_UK and W_UV (per head) are held as f32 and
/// applied to all heads in one batched GEMM; attention runs over the f32 dense cache (exact, any shape) or the
/// bf16 paged cache of the tensor-core kernels (512 + 64: FlashMLA's format).
#pragma once

#include <algorithm>
#include <concepts>
#include <memory>
#include <cstdint>
#include <string>
#include <vector>

#include "hmoe/cuda/mla.hpp"
#include "hmoe/cuda/mla_dense.hpp"
#include "hmoe/cuda/rope.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/gpu/kv_cache.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/gpu/weights.hpp"
#include "hmoe/layer/mla.hpp"

namespace hmoe {

template <model_dims D, class... Ps>
  requires std::same_as<typename LayerPolicies<Ps...>::device, GPU>
class MlaAttention<D, Ps...> {
  using P = LayerPolicies<Ps...>;
  using F = typename P::format;
  static_assert(gpu::gpu_weight_format<F>, "hmoe: Placement<GPU> layers take Quant<Stored> or Quant<BF16>");

 public:
  using policies = P;

  MlaAttention(const gguf::File& f, const DeepSeekHParams& h, int layer)
      : h_(h), layer_(layer), kq_scale_(h.kq_scale()) {
    const auto name = [&](std::string_view w) { return block_tensor(layer, w); };
    const auto head = h.qk_nope + h.qk_rope;
    if (h.q_lora_rank > 0) {
      q_a_ = gpu::to_device<F>(matrix(f, name("attn_q_a.weight"), h.q_lora_rank, h.hidden));
      q_a_norm_ = gpu::to_device(vector_f32(f, name("attn_q_a_norm.weight"), h.q_lora_rank));
      q_b_ = gpu::to_device<F>(matrix(f, name("attn_q_b.weight"), h.heads * head, h.q_lora_rank));
    } else {
      q_b_ = gpu::to_device<F>(matrix(f, name("attn_q.weight"), h.heads * head, h.hidden));
    }
    kv_a_ = gpu::to_device<F>(matrix(f, name("attn_kv_a_mqa.weight"), h.kv_lora_rank + h.qk_rope, h.hidden));
    kv_a_norm_ = gpu::to_device(vector_f32(f, name("attn_kv_a_norm.weight"), h.kv_lora_rank));
    out_ = gpu::to_device<F>(matrix(f, name("attn_output.weight"), h.hidden, h.heads * h.v_head));

    // W_UK as (rank × nope) and W_UV as (v × rank) per head, f32, stacked over heads.
    const auto r = h.kv_lora_rank;
    std::vector<float> k(static_cast<std::size_t>(h.heads * r * h.qk_nope)), v(static_cast<std::size_t>(h.heads * h.v_head * r));
    std::vector<float> row(static_cast<std::size_t>(std::max(r, h.qk_nope)));
    for (std::int64_t hd = 0; hd < h.heads; ++hd) {
      float* kh = k.data() + hd * r * h.qk_nope;
      float* vh = v.data() + hd * h.v_head * r;
      if (h.layout == AttentionLayout::SplitKvB) {
        const auto kb = slice(f, name("attn_k_b.weight"), hd, h.heads, r, h.qk_nope);
        const auto vb = slice(f, name("attn_v_b.weight"), hd, h.heads, h.v_head, r);
        for (std::int64_t i = 0; i < r; ++i) kb.dequantize_row(i, kh + i * h.qk_nope);
        for (std::int64_t i = 0; i < h.v_head; ++i) vb.dequantize_row(i, vh + i * r);
      } else {
        // attn_kv_b, per head: nope rows of W_UK (nope × rank, used transposed), then v rows of W_UV.
        const auto kv_b = matrix(f, name("attn_kv_b.weight"), h.heads * (h.qk_nope + h.v_head), r);
        const auto first = hd * (h.qk_nope + h.v_head);
        for (std::int64_t j = 0; j < h.qk_nope; ++j) {
          kv_b.dequantize_row(first + j, row.data());
          for (std::int64_t i = 0; i < r; ++i) kh[i * h.qk_nope + j] = row[static_cast<std::size_t>(i)];
        }
        for (std::int64_t i = 0; i < h.v_head; ++i) kv_b.dequantize_row(first + h.qk_nope + i, vh + i * r);
      }
    }
    k_absorb_ = gpu::to_device(k);
    v_up_ = gpu::to_device(v);
    rope_table_ = std::make_unique<cuda::RopeTable>(h.rope);
  }

  /// Device bytes of this layer's weights.
  std::size_t bytes() const {
    return q_a_.bytes() + q_b_.bytes() + kv_a_.bytes() + out_.bytes() + q_a_norm_.bytes() + kv_a_norm_.bytes() +
           k_absorb_.bytes() + v_up_.bytes();
  }

  /// Scratch floats per token that forward takes.
  static std::int64_t scratch_per_token(const DeepSeekHParams& h) {
    const auto head = h.qk_nope + h.qk_rope;
    return h.q_lora_rank + h.heads * head + (h.kv_lora_rank + h.qk_rope) + 2 * h.heads * h.kv_lora_rank +
           h.heads * h.v_head;
  }

  /// out (tokens × hidden, device) = attention of the normalized x (tokens × hidden, device) at positions
  /// step.pos0 ..; writes this layer's cache rows for those positions.
  void forward(gpu::GpuStep& s, const float* x, gpu::GpuKvCache& cache, float* out) const {
    const auto& h = h_;
    const std::int64_t n = s.tokens, head = h.qk_nope + h.qk_rope, r = h.kv_lora_rank, row = r + h.qk_rope;
    gpu::Scratch::Frame frame(s.scratch);
    float* q = frame.take<float>(n * h.heads * head);
    if (h.q_lora_rank > 0) {
      float* qa = frame.take<float>(n * h.q_lora_rank);
      s.matmul(q_a_, x, qa, n);
      cuda::rms_norm_strided(qa, h.q_lora_rank, q_a_norm_.as<float>(), qa, h.q_lora_rank, n, h.q_lora_rank, h.rms_eps,
                             s.stream);
      s.matmul(q_b_, qa, q, n);
    } else {
      s.matmul(q_b_, x, q, n);
    }
    float* kv = frame.take<float>(n * row);
    s.matmul(kv_a_, x, kv, n);
    cuda::rms_norm_strided(kv, row, kv_a_norm_.as<float>(), kv, row, n, r, h.rms_eps, s.stream);
    cuda::rope_apply(kv, {n, 1, row, 0, r}, s.positions, *rope_table_, s.stream);
    cuda::rope_apply(q, {n, h.heads, h.heads * head, head, h.qk_nope}, s.positions, *rope_table_, s.stream);

    float* q_lat = frame.take<float>(n * h.heads * r);
    s.head_gemm.run(k_absorb_.as<float>(), r * h.qk_nope, r, h.qk_nope, q, h.heads * head, head,
                    {q_lat, h.heads * r, r}, n, h.heads, s.stream);

    float* o_lat = frame.take<float>(n * h.heads * r);
    if (cache.format() == gpu::KvFormat::F32) {
      const auto c = cache.dense(layer_);
      cuda::mla_dense_cache_write(c, kv, row, s.positions, n, s.stream);
      cuda::mla_dense_attend(c, q_lat, q + h.qk_nope, h.heads * head, head, n, static_cast<int>(h.heads), s.positions,
                             kq_scale_, o_lat, s.stream);
    } else {
      const auto c = cache.paged(layer_);
      cuda::mla_cache_append(c, nullptr, s.positions, kv, row, kv + r, row, cuda::MlaDtype::F32, n, s.stream);
      const cuda::MlaQuery query{q_lat, q + h.qk_nope, cuda::MlaDtype::F32, h.heads * r, r, h.heads * head, head};
      if (n == 1)
        cuda::mla_decode(c, query, s.seq_len, cache.decode_plan(), kq_scale_, cache.decode_workspace(), o_lat, s.stream);
      else
        cuda::mla_prefill(c, 0, s.pos0, query, n, static_cast<int>(h.heads), kq_scale_, o_lat, s.stream);
    }

    float* o = frame.take<float>(n * h.heads * h.v_head);
    s.head_gemm.run(v_up_.as<float>(), h.v_head * r, h.v_head, r, o_lat, h.heads * r, r,
                    {o, h.heads * h.v_head, h.v_head}, n, h.heads, s.stream);
    s.matmul(out_, o, out, n);
  }

 private:
  DeepSeekHParams h_;
  int layer_;
  float kq_scale_;
  cuda::DeviceMatrix q_a_, q_b_, kv_a_, out_;
  cuda::Buffer q_a_norm_, kv_a_norm_, k_absorb_, v_up_;
  std::unique_ptr<cuda::RopeTable> rope_table_;
};

}  // namespace hmoe
