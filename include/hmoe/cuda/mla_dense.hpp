/// \file
/// \brief Absorbed MLA attention over a dense f32 cache, for any kv_lora_rank and rope width: the exact GPU path
/// (no bf16 rounding of cache or queries) and the one for shapes the tile kernels (mla.hpp: 512 + 64) do not take.
///
/// Per head h and query i at position p_i: score(t) = (q_lat[i,h] · c[t] + q_rope[i,h] · k_rope[t]) · scale for
/// t ≤ p_i; o_lat[i,h] = Σ_t softmax(score)_t · c[t]. An online softmax over key chunks keeps memory O(rank) per
/// (query, head), so long contexts need no score matrix.
///
/// Host-only header: no CUDA headers. Pointers are device pointers; calls are queued on the Stream.
#pragma once

#include <cstdint>

namespace hmoe::cuda {

class Stream;

/// One layer's cache: `capacity` rows of rank + rope_dims f32 values (the normalized latent, then the roped key).
struct DenseMlaCache {
  float* rows = nullptr;
  int rank = 0, rope_dims = 0;
  std::int64_t capacity = 0;
  std::int64_t row_stride() const noexcept { return std::int64_t{rank} + rope_dims; }
};

/// Copies row i of `src` (tokens rows, src_stride f32 apart, the first rank + rope_dims values used) to cache
/// row positions[i] (device int32). Positions must be < capacity (checked on the device: a bad one is skipped
/// and the row left as it was, so callers check on the host first).
void mla_dense_cache_write(const DenseMlaCache& cache, const float* src, std::int64_t src_stride,
                           const std::int32_t* positions, std::int64_t tokens, const Stream& s);

/// Queries: q_latent [tokens][heads][rank] contiguous; q_rope element (i, h) at
/// q_rope + i · rope_token_stride + h · rope_head_stride (rope_dims values). o_lat [tokens][heads][rank] f32.
/// Query i sees cache rows 0 ..= positions[i] (device int32). rank ≤ 1024, rope_dims ≤ 256.
/// Throws std::invalid_argument for shapes outside those limits.
void mla_dense_attend(const DenseMlaCache& cache, const float* q_latent, const float* q_rope,
                      std::int64_t rope_token_stride, std::int64_t rope_head_stride, std::int64_t tokens, int heads,
                      const std::int32_t* positions, float softmax_scale, float* o_lat, const Stream& s);

}  // namespace hmoe::cuda
