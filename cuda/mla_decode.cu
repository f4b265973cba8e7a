/// \file
/// \brief MLA decode: one query token per sequence over the paged cache, split along the cache across CTAs when the
/// batch alone cannot fill the GPU, then merged by a log-sum-exp combine.
///
/// Why split: a decode CTA covers one sequence × 64 heads, so batch 1 with 128 heads makes only 2 CTAs for 132 SMs.
/// Splitting each sequence's cache into ranges of split_tokens gives batch × head-groups × splits CTAs; each writes
/// its normalized partial o and log2-sum-exp, and the combine reweights them. The partials cost 2 KB per head per
/// split (write + read, mostly L2), so a split is kept ≥ kMinSplitTokens long.

#include <algorithm>
#include <atomic>

#include "mla_attend.cuh"

namespace hmoe::cuda {
namespace mla_detail {
namespace {

// 2 tiles. Was 128 (4 tiles), which left batch 1 at 1k tokens with 8 splits = 16 CTAs on 132 SMs (29 µs for
// 1.2 MB); at 64 it gets 32 CTAs, and the extra partials (128 heads × 16 splits × 2 KB) stay in L2. Only short
// contexts at small batch change: elsewhere the SM count bounds the splits first.
constexpr int kMinSplitTokens = 64;
constexpr int kMaxSplits = 1024;

/// Merges the splits of each (query, head): o = Σ_s 2^(lse_s - M) o_s / Σ_s 2^(lse_s - M). One CTA of 128 threads per
/// (head, query), 4 output dims a thread. Empty splits (lse = -inf) are skipped, never read.
__global__ void __launch_bounds__(128) mla_combine_kernel(const float* partial, const float* lse, int num_splits,
                                                          int heads, float* out) {
  const int h = static_cast<int>(blockIdx.x), q = static_cast<int>(blockIdx.y);
  const float* l = lse + static_cast<long long>(q) * num_splits * heads + h;
  float m = -INFINITY;
  for (int s = 0; s < num_splits; ++s) m = fmaxf(m, l[static_cast<long long>(s) * heads]);
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
  float wsum = 0.f;
  for (int s = 0; s < num_splits; ++s) {
    const float ls = l[static_cast<long long>(s) * heads];
    if (ls == -INFINITY) continue;
    const float w = exp2f(ls - m);
    const float4 v = reinterpret_cast<const float4*>(
        partial + ((static_cast<long long>(q) * num_splits + s) * heads + h) * mla_latent_dim)[threadIdx.x];
    wsum += w;
    acc.x += w * v.x;
    acc.y += w * v.y;
    acc.z += w * v.z;
    acc.w += w * v.w;
  }
  const float inv = wsum > 0.f ? 1.f / wsum : 0.f;
  reinterpret_cast<float4*>(out + (static_cast<long long>(q) * heads + h) * mla_latent_dim)[threadIdx.x] =
      make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
}

/// The current device's SM count, queried once per device (devices 0..63; others are queried every time).
int sm_count() {
  static std::atomic<int> cached[64] = {};
  int dev = 0, n = 0;
  HMOE_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev >= 0 && dev < 64 && (n = cached[dev].load(std::memory_order_relaxed)) > 0) return n;
  HMOE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  if (dev >= 0 && dev < 64) cached[dev].store(n, std::memory_order_relaxed);
  return n;
}

constexpr std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) / a * a; }

/// Workspace layout: partial o [batch][splits][heads][512] f32, then lse [batch][splits][heads] f32.
std::size_t partial_bytes(const MlaDecodePlan& p) {
  return round_up(std::size_t(p.batch) * p.num_splits * p.heads * mla_latent_dim * sizeof(float), 256);
}

}  // namespace
}  // namespace mla_detail

MlaDecodePlan mla_decode_plan(int batch, int heads, int max_seq_len, int num_splits) {
  using namespace mla_detail;
  require(batch >= 1 && batch <= 65535 && heads >= 1 && max_seq_len >= 1 && num_splits >= 0,
          "bad decode plan arguments");
  const int head_groups = (heads + kHeadsPerCta - 1) / kHeadsPerCta;
  const int tiles = (max_seq_len + kTileTokens - 1) / kTileTokens;
  int splits = num_splits;
  if (splits == 0) {
    // One CTA per SM fits (203 KB of shared memory), so aim for one full wave, never a partial second one.
    const long long ctas_per_split = static_cast<long long>(batch) * head_groups;
    splits = static_cast<int>(std::max<long long>(1, sm_count() / ctas_per_split));
    splits = std::min(splits, std::max(1, max_seq_len / kMinSplitTokens));
  }
  splits = std::clamp(splits, 1, std::min(tiles, kMaxSplits));
  MlaDecodePlan p;
  p.batch = batch;
  p.heads = heads;
  // Whole tiles per split; recount so the last split is not always empty.
  const int tiles_per_split = (tiles + splits - 1) / splits;
  p.split_tokens = tiles_per_split * kTileTokens;
  p.num_splits = (tiles + tiles_per_split - 1) / tiles_per_split;
  p.workspace_bytes =
      p.num_splits == 1 ? 0
                        : partial_bytes(p) + round_up(std::size_t(batch) * p.num_splits * heads * sizeof(float), 256);
  return p;
}

void mla_decode(const MlaPagedCache& cache, const MlaQuery& q, const std::int32_t* seq_lens,
                const MlaDecodePlan& plan, float softmax_scale, void* workspace, float* o_lat,
                const Stream& stream) {
  using namespace mla_detail;
  require(plan.batch >= 1 && plan.heads >= 1 && plan.num_splits >= 1 && plan.split_tokens >= 1,
          "decode plan is empty: use mla_decode_plan");
  require(seq_lens && o_lat, "seq_lens or o_lat is null");
  require(plan.num_splits == 1 || (workspace && (reinterpret_cast<std::uintptr_t>(workspace) & 255u) == 0),
          "split decode needs a 256-byte aligned workspace of plan.workspace_bytes");
  AttendParams a{};
  set_query(a, q);
  set_cache(a, cache);
  a.seq_lens = seq_lens;
  a.bt_row = 0;
  a.pos0 = 0;
  a.heads = plan.heads;
  a.num_queries = plan.batch;
  a.num_splits = plan.num_splits;
  a.split_tokens = plan.split_tokens;
  a.scale_log2 = softmax_scale * 1.4426950408889634f;
  const auto s = detail::native(stream);
  if (plan.num_splits == 1) {
    a.out = o_lat;
    a.lse = nullptr;
    launch_attend(a, q.dtype, s);
    return;
  }
  a.out = static_cast<float*>(workspace);
  a.lse = reinterpret_cast<float*>(static_cast<char*>(workspace) + partial_bytes(plan));
  launch_attend(a, q.dtype, s);
  mla_combine_kernel<<<dim3(static_cast<unsigned>(plan.heads), static_cast<unsigned>(plan.batch)),
                       mla_latent_dim / 4, 0, s>>>(a.out, a.lse, plan.num_splits, plan.heads, o_lat);
  HMOE_CUDA_CHECK_LAUNCH("mla_combine_kernel");
}

}  // namespace hmoe::cuda
