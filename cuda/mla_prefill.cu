/// \file
/// \brief MLA causal prefill: the decode tile kernel with one CTA per (query token, 64 heads), query i of the chunk
/// seeing pos0 + i + 1 cache tokens.
///
/// Why no query tiling: the cost that matters is tensor-core work per cache byte brought into shared memory, and a
/// CTA row block of 64 heads of one token gets the same 64 rows per tile as 4 tokens × 16 heads would, without
/// per-row causal masks. Memory stays O(tokens · heads · 512): no score matrix is ever stored. The grid runs queries
/// latest-first (mla_attend.cu), so the longest rows start first and the short ones fill the tail.

#include <algorithm>
#include <climits>

#include "mla_attend.cuh"

namespace hmoe::cuda {

void mla_prefill(const MlaPagedCache& cache, int seq, std::int64_t pos0, const MlaQuery& q, std::int64_t tokens,
                 int heads, float softmax_scale, float* o_lat, const Stream& stream) {
  using namespace mla_detail;
  require(tokens >= 1 && heads >= 1 && pos0 >= 0 && seq >= 0 && o_lat, "bad prefill arguments");
  require(pos0 + tokens <= INT_MAX / 2, "sequence too long for 32-bit token indices");
  AttendParams a{};
  set_query(a, q);
  set_cache(a, cache);
  a.seq_lens = nullptr;
  a.heads = heads;
  a.num_splits = 1;
  a.split_tokens = static_cast<int>(pos0 + tokens);  // one split: the whole causal range
  a.scale_log2 = softmax_scale * 1.4426950408889634f;
  a.lse = nullptr;
  a.bt_row = seq;
  // grid.x is limited to 2^31 - 1 queries; chunk anyway so each launch's int query index stays small.
  constexpr std::int64_t kChunk = 1 << 20;
  const char* ql = static_cast<const char*>(q.latent);
  const char* qr = static_cast<const char*>(q.rope);
  const std::size_t es = q.dtype == MlaDtype::F32 ? 4 : 2;
  for (std::int64_t c0 = 0; c0 < tokens; c0 += kChunk) {
    const std::int64_t n = std::min(kChunk, tokens - c0);
    a.q_latent = ql + c0 * q.latent_token_stride * es;
    a.q_rope = qr + c0 * q.rope_token_stride * es;
    a.pos0 = pos0 + c0;
    a.num_queries = static_cast<int>(n);
    a.out = o_lat + c0 * heads * std::int64_t{mla_latent_dim};
    launch_attend(a, q.dtype, detail::native(stream));
  }
}

}  // namespace hmoe::cuda
