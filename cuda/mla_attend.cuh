/// \file
/// \brief Private interface of the MLA attention tile kernel (mla_attend.cu): tiling constants, launch parameters,
/// argument checks. Decode (mla_decode.cu) and prefill (mla_prefill.cu) fill AttendParams and call launch_attend.
#pragma once

#include <cmath>

#include "mla_common.cuh"

namespace hmoe::cuda::mla_detail {

inline constexpr int kHeadsPerCta = 64;
inline constexpr int kTileTokens = 32;
inline constexpr int kStages = 3;
inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kRow = mla_cache_row;                 // 576
inline constexpr int kChunksPerRow = kRow / 8;             // 72 sixteen-byte chunks
inline constexpr int kSmemRow = kRow + 8;                  // padded row, bf16 elements (1168 bytes)
inline constexpr int kQBytes = kHeadsPerCta * kSmemRow * 2;  // 74752
inline constexpr int kTileElems = kTileTokens * kSmemRow;
inline constexpr int kTileBytes = kTileElems * 2;          // 37376
inline constexpr int kXchgBytes = kWarps * 4 * 32 * 16;    // 16 floats per lane per warp: 16384
inline constexpr int kSmemBytes = kQBytes + kStages * kTileBytes + kXchgBytes;  // 203264
static_assert(kSmemBytes <= 227 * 1024, "exceeds the sm_90 opt-in shared memory per block");
static_assert((kSmemRow * 2) % 128 == 16, "row padding must shift consecutive rows by one 16-byte bank group");
static_assert(kHeadsPerCta == 16 * (kWarps / 2), "4 row blocks of 16 heads, 2 halves");

/// Everything a CTA needs. Queries are numbered 0 .. num_queries-1. Decode: query b uses block table row b and
/// seq_lens[b] tokens. Prefill (seq_lens == nullptr): query i uses row bt_row and pos0 + i + 1 tokens.
struct AttendParams {
  const void* q_latent;
  const void* q_rope;
  long long ql_ts, ql_hs, qr_ts, qr_hs;  // element strides: token, head
  const bf16* pages;
  const int* block_table;
  int page_size, max_pages;
  const int* seq_lens;
  int bt_row;
  long long pos0;
  int heads, num_queries, num_splits, split_tokens;
  float scale_log2;  // softmax_scale · log2(e): scores go straight into exp2
  float* out;        // num_splits == 1: o_lat [q][h][512]; else partial o [q][split][h][512]
  float* lse;        // num_splits > 1: [q][split][h], log2 domain: m + log2(l)
};

/// Fills AttendParams' query fields from the public MlaQuery after checking the alignment the vector loads need.
inline void set_query(AttendParams& a, const MlaQuery& q) {
  require(q.latent && q.rope, "query pointers are null");
  require(aligned16(q.latent) && aligned16(q.rope), "query pointers must be 16-byte aligned");
  require(q.latent_token_stride % 8 == 0 && q.latent_head_stride % 8 == 0 && q.rope_token_stride % 8 == 0 &&
              q.rope_head_stride % 8 == 0,
          "query strides must be multiples of 8 elements");
  a.q_latent = q.latent;
  a.q_rope = q.rope;
  a.ql_ts = q.latent_token_stride;
  a.ql_hs = q.latent_head_stride;
  a.qr_ts = q.rope_token_stride;
  a.qr_hs = q.rope_head_stride;
}

inline void set_cache(AttendParams& a, const MlaPagedCache& c) {
  require(c.pages && c.block_table, "cache pointers are null");
  require(aligned16(c.pages), "cache pages must be 16-byte aligned");
  require(c.page_size >= 1 && c.max_pages_per_seq >= 1, "bad page_size or max_pages_per_seq");
  a.pages = static_cast<const bf16*>(c.pages);
  a.block_table = c.block_table;
  a.page_size = c.page_size;
  a.max_pages = c.max_pages_per_seq;
}

/// Launches the tile kernel for the query dtype (grid: queries × head groups × splits).
void launch_attend(const AttendParams& a, MlaDtype dtype, cudaStream_t stream);

}  // namespace hmoe::cuda::mla_detail
