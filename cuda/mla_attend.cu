/// \file
/// \brief The absorbed-MLA attention tile kernel shared by decode and prefill: one CTA = one query token × 64 heads
/// × one contiguous range (split) of that query's cache, streamed in 32-token tiles with an online softmax.
///
/// Why this shape: the cache row (576 bf16) is shared by all heads, so the 64 heads of a CTA turn every cached
/// token read into 64 rows of tensor-core work (64 × 32 scores and a 64 × 512 output per tile). 64 rows × 512 f32
/// outputs is 128 KB of accumulators, which 8 warps hold in registers (128 floats a thread). Prefill is the same
/// kernel with query i of one sequence seeing pos0 + i + 1 tokens, so every row of a CTA has the same causal
/// length and no per-row masking is needed.
///
/// Warp w: rows 16·(w%4) .. +15 (heads), half = w/4.
///  * S = Q Kᵀ: each warp computes its 16 rows × 32 tokens over half of the 576 reduction dims (18 k-steps), the two
///    halves swap partial sums through shared memory so both warps of a pair hold the identical full S.
///  * Online softmax in f32 (log2 domain), P rounded to bf16 straight from the accumulator registers.
///  * O += P V: each warp owns output dims half·256 .. +255 of its 16 rows (32 n8 tiles, 128 f32 registers).
/// Shared memory: Q (64 × 576) once, a 3-stage cp.async ring of KV tiles, and the partial-S exchange. Rows are padded
/// by 16 bytes so the 8 rows an ldmatrix phase reads hit 8 different bank groups.

#include <atomic>
#include <cstdint>

#include "mla_attend.cuh"

namespace hmoe::cuda::mla_detail {
namespace {

template <class TQ>
__global__ void __launch_bounds__(kThreads, 1) mla_attend_kernel(const AttendParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* const sq = reinterpret_cast<bf16*>(smem);
  bf16* const skv = reinterpret_cast<bf16*>(smem + kQBytes);
  float4* const sx = reinterpret_cast<float4*>(smem + kQBytes + kStages * kTileBytes);

  // Later prefill queries see more tokens: launch them first so the short ones fill the tail.
  const int q = p.num_queries - 1 - static_cast<int>(blockIdx.x);
  const int h0 = static_cast<int>(blockIdx.y) * kHeadsPerCta;
  const int split = static_cast<int>(blockIdx.z);
  const int len = p.seq_lens ? p.seq_lens[q] : static_cast<int>(p.pos0 + q + 1);
  const int bt_row = p.seq_lens ? q : p.bt_row;
  const int kv_begin = split * p.split_tokens;
  const int kv_end = min(len, kv_begin + p.split_tokens);
  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int rb = warp & 3, half = warp >> 2;

  // Output row of head h: the final o_lat, or this split's slot of the partial buffer.
  auto out_row = [&](int h) -> float* {
    const long long row = p.num_splits == 1 ? static_cast<long long>(q) * p.heads + h
                                            : (static_cast<long long>(q) * p.num_splits + split) * p.heads + h;
    return p.out + row * mla_latent_dim;
  };

  if (kv_begin >= kv_end) {  // an empty split (short sequence in a batch planned for a longer one)
    if (p.num_splits > 1) {
      for (int r = tid; r < kHeadsPerCta; r += kThreads)
        if (h0 + r < p.heads)
          p.lse[(static_cast<long long>(q) * p.num_splits + split) * p.heads + h0 + r] = -INFINITY;
    } else {  // len 0 violates the contract; leave a defined result rather than garbage
      for (int i = tid; i < kHeadsPerCta * mla_latent_dim; i += kThreads) {
        const int h = h0 + i / mla_latent_dim;
        if (h < p.heads) out_row(h)[i % mla_latent_dim] = 0.f;
      }
    }
    return;
  }

  // Queries → shared bf16 [64][576] (latent then rope, like a cache row); heads past p.heads are zero rows, which
  // score 0 everywhere and stay finite.
  {
    const TQ* ql = static_cast<const TQ*>(p.q_latent);
    const TQ* qr = static_cast<const TQ*>(p.q_rope);
    for (int c = tid; c < kHeadsPerCta * kChunksPerRow; c += kThreads) {
      const int r = c / kChunksPerRow, ch = c % kChunksPerRow, h = h0 + r;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (h < p.heads) {
        const TQ* src = ch < mla_latent_dim / 8
                            ? ql + q * p.ql_ts + h * p.ql_hs + ch * 8
                            : qr + q * p.qr_ts + h * p.qr_hs + (ch - mla_latent_dim / 8) * 8;
        v = load8_as_bf16<TQ>(src);
      }
      *reinterpret_cast<uint4*>(sq + r * kSmemRow + ch * 8) = v;
    }
  }

  const int n_tiles = (kv_end - kv_begin + kTileTokens - 1) / kTileTokens;
  const int* bt = p.block_table + static_cast<long long>(bt_row) * p.max_pages;

  // Tile i → ring slot `stage`: 32 rows × 72 chunks, 9 cp.async per thread; rows past kv_end are zero-filled so
  // P·V never multiplies a zero weight by stale (possibly NaN) data.
  auto load_tile = [&](int i, int stage) {
    bf16* dst0 = skv + stage * kTileElems;
    const int t0 = kv_begin + i * kTileTokens;
    for (int c = tid; c < kTileTokens * kChunksPerRow; c += kThreads) {
      const int r = c / kChunksPerRow, ch = c % kChunksPerRow, t = t0 + r;
      const bf16* src = p.pages;
      int bytes = 0;
      if (t < kv_end) {
        const long long page = bt[t / p.page_size];
        src = p.pages + (page * p.page_size + t % p.page_size) * kRow + ch * 8;
        bytes = 16;
      }
      cp_async16(dst0 + r * kSmemRow + ch * 8, src, bytes);
    }
  };

  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_tiles) load_tile(s, s);
    cp_async_commit();  // empty groups keep the wait_group arithmetic uniform
  }

  float o[32][4];
#pragma unroll
  for (int j = 0; j < 32; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY};  // running max of rows g and g+8 (log2 domain)
  float l_part[2] = {0.f, 0.f};             // this thread's share of the row sums; quad-reduced at the end

  const bf16* q_base = sq + (rb * 16 + (lane & 15)) * kSmemRow + (lane >> 4) * 8;
  const int k_lane_row = (lane & 7) + ((lane >> 4) << 3), k_lane_col = ((lane >> 3) & 1) * 8;
  const int v_lane_row = (lane & 7) + ((lane >> 3) & 1) * 8, v_lane_col = (lane >> 4) * 8;

  for (int i = 0; i < n_tiles; ++i) {
    cp_async_wait<kStages - 2>();  // tile i has landed (for this thread's copies) ...
    __syncthreads();               // ... and everyone's; everyone is also done with tile i-1's slot and exchange
    if (i + kStages - 1 < n_tiles) load_tile(i + kStages - 1, (i + kStages - 1) % kStages);
    cp_async_commit();

    const bf16* kv = skv + (i % kStages) * kTileElems;
    const int t0 = kv_begin + i * kTileTokens;

    // Partial S over this warp's half of the 576 dims: 16 rows × 32 tokens (4 n8 tiles).
    float s[4][4];
#pragma unroll
    for (int j = 0; j < 4; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll 6
    for (int ks = 0; ks < kRow / 2 / 16; ++ks) {
      const int k0 = half * (kRow / 2) + ks * 16;
      std::uint32_t a[4];
      ldmatrix_x4(a, q_base + k0);
#pragma unroll
      for (int nb = 0; nb < 2; ++nb) {
        std::uint32_t b[4];
        ldmatrix_x4(b, kv + (nb * 16 + k_lane_row) * kSmemRow + k0 + k_lane_col);
        mma_bf16_16816(s[2 * nb], a, b[0], b[1]);
        mma_bf16_16816(s[2 * nb + 1], a, b[2], b[3]);
      }
    }

    // Swap partials with the other half's warp (same rows, same lane layout): slot [warp][j][lane].
#pragma unroll
    for (int j = 0; j < 4; ++j) sx[(warp * 4 + j) * 32 + lane] = make_float4(s[j][0], s[j][1], s[j][2], s[j][3]);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float4 v = sx[((warp ^ 4) * 4 + j) * 32 + lane];
      // Float addition commutes exactly, so both warps of the pair get bit-identical S and softmax state.
      s[j][0] += v.x;
      s[j][1] += v.y;
      s[j][2] += v.z;
      s[j][3] += v.w;
    }

    // Scale into the log2 domain and mask tokens past this split's end (only the last tile has any).
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int t = t0 + j * 8 + 2 * t4 + (c & 1);
        s[j][c] = t < kv_end ? s[j][c] * p.scale_log2 : -INFINITY;
      }

    // Online softmax; rows g (c = 0, 1) and g + 8 (c = 2, 3). Every tile holds at least one valid token, so the
    // new max is finite and exp2(-inf - finite) = 0 handles both the first tile and the masked columns.
    std::uint32_t pa[2][4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[r], mx);
      const float alpha = exp2f(m_run[r] - m_new);
      m_run[r] = m_new;
      l_part[r] *= alpha;
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        o[j][2 * r] *= alpha;
        o[j][2 * r + 1] *= alpha;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const __nv_bfloat162 pb =
            __floats2bfloat162_rn(exp2f(s[j][2 * r] - m_new), exp2f(s[j][2 * r + 1] - m_new));
        // Sum the rounded weights: numerator and denominator then use the same P.
        l_part[r] += __low2float(pb) + __high2float(pb);
        // A fragment of k-step j/2: regs 0/1 = rows g/g+8 of columns 0..7, regs 2/3 = columns 8..15.
        pa[j >> 1][(j & 1) * 2 + r] = *reinterpret_cast<const std::uint32_t*>(&pb);
      }
    }

    // O[16 rows][half·256 .. +255] += P (16 × 32) · V (32 × 256); V = the c_kv part of the tile rows.
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      const bf16* vrow = kv + (kk * 16 + v_lane_row) * kSmemRow + half * 256 + v_lane_col;
#pragma unroll
      for (int nd = 0; nd < 16; ++nd) {
        std::uint32_t b[4];
        ldmatrix_x4_trans(b, vrow + nd * 16);
        mma_bf16_16816(o[2 * nd], pa[kk], b[0], b[1]);
        mma_bf16_16816(o[2 * nd + 1], pa[kk], b[2], b[3]);
      }
    }
  }
  cp_async_wait<0>();  // nothing is in flight (trailing groups are empty), but leave no copy behind

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_part[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = 1.f / l;  // l ≥ 1: the row max contributes exp2(0) = 1
    const int h = h0 + rb * 16 + g + 8 * r;
    if (h < p.heads) {
      float* dst = out_row(h) + half * 256 + 2 * t4;
#pragma unroll
      for (int j = 0; j < 32; ++j)
        *reinterpret_cast<float2*>(dst + j * 8) = make_float2(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);
      if (p.num_splits > 1 && half == 0 && t4 == 0)
        p.lse[(static_cast<long long>(q) * p.num_splits + split) * p.heads + h] = m_run[r] + log2f(l);
    }
  }
}

/// Opts the kernel in to kSmemBytes of dynamic shared memory once per device (the attribute is per device and
/// kernel), not on every launch: a decode step launches this kernel once per layer. Devices 0..63 are remembered;
/// a racing first call merely sets the attribute twice.
template <class T>
void opt_in_smem() {
  static std::atomic<std::uint64_t> done{0};
  int dev = 0;
  HMOE_CUDA_CHECK(cudaGetDevice(&dev));
  const std::uint64_t bit = dev >= 0 && dev < 64 ? std::uint64_t{1} << dev : 0;
  if (bit != 0 && (done.load(std::memory_order_acquire) & bit) != 0) return;
  HMOE_CUDA_CHECK(cudaFuncSetAttribute(mla_attend_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  done.fetch_or(bit, std::memory_order_release);
}

}  // namespace

void launch_attend(const AttendParams& a, MlaDtype dtype, cudaStream_t stream) {
  require(a.num_queries >= 1 && a.heads >= 1 && a.num_splits >= 1 && a.num_splits <= 65535 && a.split_tokens >= 1,
          "bad attention launch shape");
  const dim3 grid(static_cast<unsigned>(a.num_queries),
                  static_cast<unsigned>((a.heads + kHeadsPerCta - 1) / kHeadsPerCta),
                  static_cast<unsigned>(a.num_splits));
  require(grid.y <= 65535u, "too many heads");
  if (dtype == MlaDtype::F32) {
    opt_in_smem<float>();
    mla_attend_kernel<float><<<grid, kThreads, kSmemBytes, stream>>>(a);
  } else {
    opt_in_smem<bf16>();
    mla_attend_kernel<bf16><<<grid, kThreads, kSmemBytes, stream>>>(a);
  }
  HMOE_CUDA_CHECK_LAUNCH("mla_attend_kernel");
}

}  // namespace hmoe::cuda::mla_detail
