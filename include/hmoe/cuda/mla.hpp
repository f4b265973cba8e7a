/// \file
/// \brief Absorbed MLA attention on the GPU over a paged compressed KV cache: append, decode (split-KV), prefill.
///
/// The part of MlaAttention (include/hmoe/layer/mla.hpp) that runs over the cache. Per head h and query token i at
/// position pos_i: score(t) = (q_lat[i,h] · c_kv[t] + q_rope[i,h] · k_rope[t]) · softmax_scale for t ≤ pos_i,
/// o_lat[i,h] = Σ_t softmax(score)_t c_kv[t]. The absorption GEMMs before (W_UK) and after (W_UV, W_O) are not here.
///
/// Host-only header: no CUDA headers. Pointers are device pointers. Calls are queued on the Stream and do not
/// synchronize; every launch is checked (CudaError), bad arguments throw std::invalid_argument.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hmoe::cuda {

class Stream;

/// Fixed MLA shapes: DeepSeek V2, V2-Lite and V3 all use kv_lora_rank 512 and qk_rope 64.
inline constexpr int mla_latent_dim = 512;
inline constexpr int mla_rope_dim = 64;
inline constexpr int mla_cache_row = mla_latent_dim + mla_rope_dim;  ///< bf16 values per cached token

/// Element type of an input array (queries, or the rows appended to the cache).
enum class MlaDtype { F32, BF16 };

/// A paged compressed KV cache of one layer. `pages` holds num_pages × page_size × mla_cache_row bf16: per token its
/// c_kv (512, after RMSNorm) then its k_rope (64, after RoPE), contiguous, so one token is one 1152-byte row. Token
/// t of sequence s lives in page block_table[s * max_pages_per_seq + t / page_size], row t % page_size. Pages need
/// not be contiguous or ordered; the caller owns allocation (pages: 16-byte aligned, e.g. from cudaMalloc).
struct MlaPagedCache {
  void* pages = nullptr;                      ///< device, bf16 [num_pages][page_size][576]
  const std::int32_t* block_table = nullptr;  ///< device, [num_seqs][max_pages_per_seq] page ids
  int page_size = 64;                         ///< tokens per page, any value ≥ 1 (64 suits the tiles best)
  int max_pages_per_seq = 0;                  ///< row length of block_table
};

/// Query operands, each [tokens][heads][dim] with element strides per token and per head (the innermost dimension is
/// contiguous). Strides and pointers must be multiples of 8 elements / 16 bytes (one vector load per 8 values).
/// Values are rounded to bf16 on load (the tensor-core inputs); F32 is accepted so callers need no cast kernel.
struct MlaQuery {
  const void* latent = nullptr;  ///< q_lat = W_UKᵀ q_nope per head, [tokens][heads][512]
  const void* rope = nullptr;    ///< q_rope after RoPE, [tokens][heads][64]
  MlaDtype dtype = MlaDtype::F32;
  std::int64_t latent_token_stride = 0, latent_head_stride = mla_latent_dim;
  std::int64_t rope_token_stride = 0, rope_head_stride = mla_rope_dim;

  /// Contiguous [tokens][heads][dim] operands.
  static MlaQuery contiguous(const void* latent, const void* rope, MlaDtype dtype, int heads) {
    return {latent, rope, dtype, std::int64_t{heads} * mla_latent_dim, mla_latent_dim,
            std::int64_t{heads} * mla_rope_dim, mla_rope_dim};
  }
};

/// Writes `tokens` rows into the cache: token i goes to sequence seq_ids[i] (nullptr: sequence 0) at position
/// positions[i] (device int32 arrays). latent is [tokens][latent_stride ≥ 512], rope_key [tokens][rope_stride ≥ 64],
/// both `dtype` and rounded to bf16 (round to nearest even). The pages those positions fall in must be mapped.
void mla_cache_append(const MlaPagedCache& cache, const std::int32_t* seq_ids, const std::int32_t* positions,
                      const void* latent, std::int64_t latent_stride, const void* rope_key, std::int64_t rope_stride,
                      MlaDtype dtype, std::int64_t tokens, const Stream& s);

/// How a decode call splits each sequence's cache across CTAs. num_splits > 1 needs a workspace and a combine pass.
struct MlaDecodePlan {
  int batch = 0, heads = 0;
  int num_splits = 1;            ///< CTAs per (sequence, 64-head group) along the cache
  int split_tokens = 0;          ///< cache tokens per split (a multiple of the 32-token tile)
  std::size_t workspace_bytes = 0;  ///< device bytes mla_decode needs in `workspace` (0 when num_splits == 1)
};

/// Plans a decode of `batch` sequences, none longer than max_seq_len tokens. num_splits 0 picks a split count that
/// fills the current device's SMs; a positive value forces it (clamped so no split is always empty).
MlaDecodePlan mla_decode_plan(int batch, int heads, int max_seq_len, int num_splits = 0);

/// One query token per sequence: o_lat[b][h][:] (f32, [batch][heads][512], contiguous) for the query of sequence b
/// (block_table row b) attending to its cache tokens 0 .. seq_lens[b]-1 (device int32, each in 1 ..= the plan's
/// max_seq_len; the query's own token already appended). softmax_scale includes the YaRN mscale², as
/// DeepSeekHParams::kq_scale(). `workspace`: plan.workspace_bytes of device memory, 256-byte aligned.
void mla_decode(const MlaPagedCache& cache, const MlaQuery& q, const std::int32_t* seq_lens,
                const MlaDecodePlan& plan, float softmax_scale, void* workspace, float* o_lat, const Stream& s);

/// Causal prefill of `tokens` query tokens of one sequence (block_table row `seq`) at positions pos0 .. pos0+tokens-1,
/// whose rows are already appended: query i attends to cache tokens 0 ..= pos0 + i. o_lat f32 [tokens][heads][512].
/// Memory is O(tokens · heads · 512): keys are streamed through shared memory in tiles with an online softmax.
void mla_prefill(const MlaPagedCache& cache, int seq, std::int64_t pos0, const MlaQuery& q, std::int64_t tokens,
                 int heads, float softmax_scale, float* o_lat, const Stream& s);

}  // namespace hmoe::cuda
