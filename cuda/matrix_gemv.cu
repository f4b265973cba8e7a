/// \file
/// \brief gemv_any: the GEMV for every type matmul takes (Q4_K has its own tuned kernel, gemv_q4_k.cu, used when
/// the strides allow). One warp per output row; all ≤ 8 tokens share each weight load.
///
/// Block types: the warp stages the row's next 32 blocks in shared memory with coalesced 16-byte loads (blocks are
/// 18..210 bytes and only 2-byte aligned, so a lane reading its own block would issue many narrow scattered
/// loads), then lane j decodes block j with the quant/ decoder (the CPU's code, so the same values) into local
/// memory and dots it with the tokens' x. Element types: lanes take 16-byte groups of the row (scalar values when
/// the row length is not a multiple of the group). Partial sums are added across the warp with shuffles.
#include <cstring>

#include "check.hpp"
#include "device_util.cuh"
#include "matrix_kernels.hpp"
#include "matrix_types.cuh"

namespace hmoe::cuda::detail {

namespace {
constexpr int warps = 4;  // rows per CTA
constexpr int nt_max = gemv_pass_tokens;

/// acc[t] += Σ_j v[j] · x[t · ldx + j] for t < tokens; v is read once (for K blocks it lives in local memory).
template <int N>
__device__ __forceinline__ void dot_tokens(const float* v, const float* __restrict__ x, std::int64_t ldx, int tokens,
                                           float* acc) {
  for (int j = 0; j < N; ++j) {
    const float vj = v[j];
#pragma unroll
    for (int t = 0; t < nt_max; ++t)
      if (t < tokens) acc[t] = fmaf(vj, __ldg(x + t * ldx + j), acc[t]);
  }
}

/// Lane 0 writes the warp's sums: y[t · ldy + row].
__device__ __forceinline__ void store_row(float* acc, float* __restrict__ y, std::int64_t ldy, std::int64_t row,
                                          int tokens, int lane) {
#pragma unroll
  for (int t = 0; t < nt_max; ++t) {
    if (t < tokens) {  // the same on every lane: the shuffles see the full warp
      const float v = warp_sum(acc[t]);
      if (lane == 0) y[t * ldy + row] = v;
    }
  }
}

/// The warp copies n bytes from global src to shared dst, where dst ≡ src (mod 16): 16-byte streaming loads for
/// the aligned middle, bytes at the two ends.
__device__ __forceinline__ void warp_copy(unsigned char* dst, const unsigned char* src, int n, int lane) {
  const int head = min(n, static_cast<int>((16 - (reinterpret_cast<std::uintptr_t>(src) & 15)) & 15));
  const int vecs = (n - head) / 16;
  for (int i = lane; i < head; i += 32) dst[i] = src[i];
  const auto* s4 = reinterpret_cast<const uint4*>(src + head);
  auto* d4 = reinterpret_cast<uint4*>(dst + head);
  for (int i = lane; i < vecs; i += 32) d4[i] = __ldcs(s4 + i);
  for (int i = head + 16 * vecs + lane; i < n; i += 32) dst[i] = src[i];
}

template <class B>
__global__ void __launch_bounds__(32 * warps)
    gemv_blocks_kernel(const unsigned char* __restrict__ w, std::int64_t rows, std::int64_t nb,
                       const float* __restrict__ x, std::int64_t ldx, float* __restrict__ y, std::int64_t ldy,
                       int tokens) {
  constexpr int E = B::block_elems;
  constexpr int stage_bytes = (32 * static_cast<int>(sizeof(B)) + 16 + 15) / 16 * 16;
  __shared__ alignas(16) unsigned char stage[warps][stage_bytes];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * warps + warp;
  if (row >= rows) return;  // only warp-level synchronization below
  const unsigned char* wr = w + row * nb * static_cast<std::int64_t>(sizeof(B));

  float acc[nt_max];
#pragma unroll
  for (int t = 0; t < nt_max; ++t) acc[t] = 0.0f;
  for (std::int64_t b0 = 0; b0 < nb; b0 += 32) {
    const int n = static_cast<int>(min(std::int64_t{32}, nb - b0));
    const unsigned char* src = wr + b0 * static_cast<std::int64_t>(sizeof(B));
    // Offset so that shared and global addresses agree mod 16; blocks stay 2-byte aligned (sizeof(B) is even).
    unsigned char* dst = stage[warp] + (reinterpret_cast<std::uintptr_t>(src) & 15);
    warp_copy(dst, src, n * static_cast<int>(sizeof(B)), lane);
    __syncwarp();
    if (lane < n) {
      float v[E];
      quant::dequantize(*reinterpret_cast<const B*>(dst + lane * sizeof(B)), v);
      dot_tokens<E>(v, x + (b0 + lane) * E, ldx, tokens, acc);
    }
    __syncwarp();  // the stage is refilled next step
  }
  store_row(acc, y, ldy, row, tokens, lane);
}

/// Vec: the row length is a multiple of V = 16 / sizeof(raw), so every row is 16-byte aligned and read in groups.
template <class E, bool Vec>
__global__ void __launch_bounds__(32 * warps)
    gemv_elems_kernel(const typename E::raw* __restrict__ w, std::int64_t rows, std::int64_t cols,
                      const float* __restrict__ x, std::int64_t ldx, float* __restrict__ y, std::int64_t ldy,
                      int tokens) {
  using raw = typename E::raw;
  constexpr int V = 16 / sizeof(raw);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * warps + warp;
  if (row >= rows) return;
  const raw* wr = w + row * cols;

  float acc[nt_max];
#pragma unroll
  for (int t = 0; t < nt_max; ++t) acc[t] = 0.0f;
  if constexpr (Vec) {
    for (std::int64_t g = lane; g < cols / V; g += 32) {
      const uint4 q = __ldcs(reinterpret_cast<const uint4*>(wr) + g);
      raw r[V];
      std::memcpy(r, &q, sizeof(q));  // register moves
      float v[V];
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = E::widen(r[j]);
      dot_tokens<V>(v, x + g * V, ldx, tokens, acc);
    }
  } else {
    for (std::int64_t c = lane; c < cols; c += 32) {
      const float v = E::widen(wr[c]);
      dot_tokens<1>(&v, x + c, ldx, tokens, acc);
    }
  }
  store_row(acc, y, ldy, row, tokens, lane);
}
}  // namespace

void gemv_any(GgmlType type, const void* w, std::int64_t rows, std::int64_t cols, const float* x, std::int64_t ldx,
              float* y, std::int64_t ldy, int tokens, const Stream& s) {
  if (rows <= 0 || tokens <= 0) return;
  if (tokens > nt_max) throw std::logic_error("hmoe::cuda::gemv_any: more than 8 tokens in one pass");
  const unsigned grid = blocks_for(rows, warps);
  const cudaStream_t st = native(s);
  visit_matmul_type(type, [&]<class T>(std::type_identity<T>) {
    if constexpr (element_type<T>) {
      const auto* wt = static_cast<const typename T::raw*>(w);
      if (cols % (16 / sizeof(typename T::raw)) == 0)
        gemv_elems_kernel<T, true><<<grid, 32 * warps, 0, st>>>(wt, rows, cols, x, ldx, y, ldy, tokens);
      else
        gemv_elems_kernel<T, false><<<grid, 32 * warps, 0, st>>>(wt, rows, cols, x, ldx, y, ldy, tokens);
      HMOE_CUDA_CHECK_LAUNCH("gemv_elems_kernel");
    } else {
      gemv_blocks_kernel<T><<<grid, 32 * warps, 0, st>>>(static_cast<const unsigned char*>(w), rows,
                                                         cols / T::block_elems, x, ldx, y, ldy, tokens);
      HMOE_CUDA_CHECK_LAUNCH("gemv_blocks_kernel");
    }
  });
}

}  // namespace hmoe::cuda::detail
