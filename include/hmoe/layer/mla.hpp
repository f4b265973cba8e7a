/// \file
/// \brief Multi-head latent attention (DeepSeek MLA) in absorbed form, f32 reference on the CPU.
///
/// Per token: q = W_q x (optionally through a LoRA with its own RMSNorm); the kv latent c = norm(W_kv_a x)[:r]
/// and the shared rope key k_pe = rope(W_kv_a x)[r:] go into the cache. Per head, q_nope is multiplied through
/// W_UK into latent space (so keys never need decompressing): score(s) = (W_UKᵀ q_nope)·c_s + rope(q_pe)·k_pe,s.
/// The attention-weighted latent goes out through W_UV, then all heads through W_O.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "hmoe/cpu/reference_matmul.hpp"
#include "hmoe/layer/rms_norm.hpp"
#include "hmoe/layer/rope.hpp"
#include "hmoe/model/dims.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/kv_cache.hpp"
#include "hmoe/model/tensors.hpp"
#include "hmoe/policy/select.hpp"

namespace hmoe {

template <model_dims D, class... Ps>
class MlaAttention {
  using P = LayerPolicies<Ps...>;
  static_assert(std::same_as<typename P::device, CPU>,
                "hmoe: MlaAttention with Placement<GPU> needs #include <hmoe/gpu.hpp> and linking hmoe::cuda");
  static_assert(std::same_as<typename P::format, Stored>,
                "hmoe: MlaAttention on the CPU runs the reference path only so far; use Quant<Stored>");

 public:
  using policies = P;

  MlaAttention(const gguf::File& f, const DeepSeekHParams& h, int layer)
      : h_(h), layer_(layer), rope_(h.rope), kq_scale_(h.kq_scale()) {
    const auto name = [&](std::string_view w) { return block_tensor(layer, w); };
    const auto head = h.qk_nope + h.qk_rope;
    if (h.q_lora_rank > 0) {
      q_a_ = matrix(f, name("attn_q_a.weight"), h.q_lora_rank, h.hidden);
      q_a_norm_ = vector_f32(f, name("attn_q_a_norm.weight"), h.q_lora_rank);
      q_b_ = matrix(f, name("attn_q_b.weight"), h.heads * head, h.q_lora_rank);
    } else {
      q_b_ = matrix(f, name("attn_q.weight"), h.heads * head, h.hidden);
    }
    kv_a_ = matrix(f, name("attn_kv_a_mqa.weight"), h.kv_lora_rank + h.qk_rope, h.hidden);
    kv_a_norm_ = vector_f32(f, name("attn_kv_a_norm.weight"), h.kv_lora_rank);
    for (std::int64_t hd = 0; hd < h.heads; ++hd) {
      if (h.layout == AttentionLayout::SplitKvB) {
        // attn_k_b holds W_UKᵀ per head: (kv_lora_rank × nope); attn_v_b holds W_UV: (v × kv_lora_rank).
        k_absorb_.push_back(slice(f, name("attn_k_b.weight"), hd, h.heads, h.kv_lora_rank, h.qk_nope));
        v_up_.push_back(slice(f, name("attn_v_b.weight"), hd, h.heads, h.v_head, h.kv_lora_rank));
      } else {
        // attn_kv_b rows, per head: nope rows of W_UK, then v rows of W_UV, each kv_lora_rank long.
        const auto kv_b = matrix(f, name("attn_kv_b.weight"), h.heads * (h.qk_nope + h.v_head), h.kv_lora_rank);
        auto rows = [&](std::int64_t first, std::int64_t n, std::string_view part) {
          WeightMatrix m = kv_b;
          m.name += "[head " + std::to_string(hd) + " " + std::string(part) + "]";
          m.data = kv_b.row(hd * (h.qk_nope + h.v_head) + first);
          m.rows = n;
          return m;
        };
        k_absorb_.push_back(rows(0, h.qk_nope, "K"));  // W_UK (nope × kv_lora_rank): used transposed
        v_up_.push_back(rows(h.qk_nope, h.v_head, "V"));
      }
    }
    out_ = matrix(f, name("attn_output.weight"), h.hidden, h.heads * h.v_head);
  }

  /// out (tokens × hidden) = attention of the normalized input x (tokens × hidden) at positions
  /// cache.size() .. cache.size()+tokens-1; writes this layer's cache rows for those positions.
  void forward(cpu::ThreadPool& pool, const float* x, std::int64_t tokens, KvCache& cache, float* out) const {
    const auto& h = h_;
    const std::int64_t head = h.qk_nope + h.qk_rope, r = h.kv_lora_rank, pos0 = cache.size();
    const std::int64_t n_kv = pos0 + tokens;
    cache.reserve(tokens);

    // q: (tokens × heads·(nope+rope))
    std::vector<float> q(static_cast<std::size_t>(tokens * h.heads * head));
    if (h.q_lora_rank > 0) {
      std::vector<float> qa(static_cast<std::size_t>(tokens * h.q_lora_rank));
      cpu::reference_matmul(pool, q_a_, x, h.hidden, tokens, qa.data(), h.q_lora_rank);
      for (std::int64_t t = 0; t < tokens; ++t) {
        float* row = qa.data() + t * h.q_lora_rank;
        rms_norm(row, q_a_norm_.data(), row, h.q_lora_rank, h.rms_eps);
      }
      cpu::reference_matmul(pool, q_b_, qa.data(), h.q_lora_rank, tokens, q.data(), h.heads * head);
    } else {
      cpu::reference_matmul(pool, q_b_, x, h.hidden, tokens, q.data(), h.heads * head);
    }

    // Latent and rope key of the new tokens, straight into the cache.
    std::vector<float> kv(static_cast<std::size_t>(tokens * (r + h.qk_rope)));
    cpu::reference_matmul(pool, kv_a_, x, h.hidden, tokens, kv.data(), r + h.qk_rope);
    for (std::int64_t t = 0; t < tokens; ++t) {
      const float* row = kv.data() + t * (r + h.qk_rope);
      rms_norm(row, kv_a_norm_.data(), cache.latent(layer_, pos0 + t), r, h.rms_eps);
      float* k_pe = cache.rope_key(layer_, pos0 + t);
      std::copy(row + r, row + r + h.qk_rope, k_pe);
      rope_.apply(k_pe, pos0 + t);
      for (std::int64_t hd = 0; hd < h.heads; ++hd) rope_.apply(q.data() + (t * h.heads + hd) * head + h.qk_nope, pos0 + t);
    }

    // q_nope through W_UK into latent space: (tokens × heads × r)
    std::vector<float> q_latent(static_cast<std::size_t>(tokens * h.heads * r));
    for (std::int64_t hd = 0; hd < h.heads; ++hd) {
      const float* qn = q.data() + hd * head;
      float* ql = q_latent.data() + hd * r;
      if (h.layout == AttentionLayout::SplitKvB)
        cpu::reference_matmul(pool, k_absorb_[static_cast<std::size_t>(hd)], qn, h.heads * head, tokens, ql, h.heads * r);
      else
        cpu::reference_matmul_transposed(k_absorb_[static_cast<std::size_t>(hd)], qn, h.heads * head, tokens, ql, h.heads * r);
    }

    // Attention per head over the cached latents: (tokens × heads × r)
    std::vector<float> o_latent(static_cast<std::size_t>(tokens * h.heads * r));
    attend(pool, q.data(), q_latent.data(), tokens, pos0, n_kv, cache, o_latent.data());

    // Out of latent space through W_UV, then W_O.
    std::vector<float> o(static_cast<std::size_t>(tokens * h.heads * h.v_head));
    for (std::int64_t hd = 0; hd < h.heads; ++hd)
      cpu::reference_matmul(pool, v_up_[static_cast<std::size_t>(hd)], o_latent.data() + hd * r, h.heads * r, tokens,
                            o.data() + hd * h.v_head, h.heads * h.v_head);
    cpu::reference_matmul(pool, out_, o.data(), h.heads * h.v_head, tokens, out, h.hidden);
  }

 private:
  using RowMatrix = cpu::RowMatrix;
  using Stride = Eigen::OuterStride<>;

  /// Causal softmax attention; query t sits at position pos0 + t and sees keys 0 ..= pos0 + t.
  void attend(cpu::ThreadPool& pool, const float* q, const float* q_latent, std::int64_t tokens, std::int64_t pos0,
              std::int64_t n_kv, const KvCache& cache, float* o_latent) const {
    const auto& h = h_;
    const std::int64_t head = h.qk_nope + h.qk_rope, r = h.kv_lora_rank;
    constexpr std::int64_t query_chunk = 128;  // bounds the score matrix to chunk × n_kv per thread
    Eigen::Map<const RowMatrix> latent(cache.latent(layer_), n_kv, r);
    Eigen::Map<const RowMatrix> k_pe(cache.rope_key(layer_), n_kv, h.qk_rope);
    pool.parallel_for(h.heads, [&](std::int64_t h0, std::int64_t h1) {
      RowMatrix scores;
      for (std::int64_t hd = h0; hd < h1; ++hd) {
        for (std::int64_t c0 = 0; c0 < tokens; c0 += query_chunk) {
          const std::int64_t nq = std::min(query_chunk, tokens - c0);
          Eigen::Map<const RowMatrix, 0, Stride> ql(q_latent + (c0 * h.heads + hd) * r, nq, r, Stride(h.heads * r));
          Eigen::Map<const RowMatrix, 0, Stride> qp(q + (c0 * h.heads + hd) * head + h.qk_nope, nq, h.qk_rope,
                                                   Stride(h.heads * head));
          const std::int64_t visible = pos0 + c0 + nq;  // keys any query of this chunk can see
          scores.noalias() = ql * latent.topRows(visible).transpose();
          scores.noalias() += qp * k_pe.topRows(visible).transpose();
          for (std::int64_t i = 0; i < nq; ++i) {
            const std::int64_t seen = pos0 + c0 + i + 1;
            auto row = scores.row(i);
            float mx = -std::numeric_limits<float>::infinity();
            for (std::int64_t j = 0; j < seen; ++j) mx = std::max(mx, row(j) * kq_scale_);
            float sum = 0;
            for (std::int64_t j = 0; j < seen; ++j) sum += row(j) = std::exp(row(j) * kq_scale_ - mx);
            for (std::int64_t j = 0; j < seen; ++j) row(j) /= sum;
            for (std::int64_t j = seen; j < visible; ++j) row(j) = 0;
          }
          Eigen::Map<RowMatrix, 0, Stride> o(o_latent + (c0 * h.heads + hd) * r, nq, r, Stride(h.heads * r));
          o.noalias() = scores * latent.topRows(visible);
        }
      }
    });
  }

  DeepSeekHParams h_;
  int layer_;
  YarnRotary rope_;
  float kq_scale_;
  WeightMatrix q_a_, q_b_, kv_a_, out_;
  std::vector<float> q_a_norm_, kv_a_norm_;
  std::vector<WeightMatrix> k_absorb_, v_up_;
};

}  // namespace hmoe
