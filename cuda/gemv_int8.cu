/// \file
/// \brief gemv_int8: each warp computes two output rows; a lane takes 2 × 16 consecutive weights per row and step
/// (16-byte streaming loads at i and i + 512), and issues the next step's loads before this step's arithmetic, so it
/// keeps 8 × 16 bytes in flight. The two rows share the activation loads (L1) — f32 activations are 4 bytes per
/// weight byte. Weights become f32 through byte_to_f32 (xor 0x80, PRMT, exact FADD) instead of quarter-rate
/// int-to-float conversions.
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "device_util.cuh"
#include "gemv_common.cuh"
#include "hmoe/cuda/gemv.hpp"

namespace hmoe::cuda {

namespace {
constexpr int warps = 4;          // warps per block
constexpr int rows_per_warp = 2;  // rows sharing each activation load
constexpr int step = 2 * 16 * 32;  // weights of a row per warp step

/// Adds Σ q·x over 16 weights (one 16-byte word group) of R rows to acc, for the 16 activations at xp.
template <int R, class T>
__device__ __forceinline__ void dot16(const uint4 (&qv)[R], const T* xp, float (&part)[R]) {
  float xv[16];
  detail::load16(xp, xv);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const unsigned words[4] = {qv[r].x ^ 0x80808080u, qv[r].y ^ 0x80808080u, qv[r].z ^ 0x80808080u,
                               qv[r].w ^ 0x80808080u};
    float a = 0.0f;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      a = fmaf(detail::byte_to_f32<0>(words[q], detail::magic_s8), xv[4 * q + 0], a);
      a = fmaf(detail::byte_to_f32<1>(words[q], detail::magic_s8), xv[4 * q + 1], a);
      a = fmaf(detail::byte_to_f32<2>(words[q], detail::magic_s8), xv[4 * q + 2], a);
      a = fmaf(detail::byte_to_f32<3>(words[q], detail::magic_s8), xv[4 * q + 3], a);
    }
    part[r] += a;
  }
}

template <class T, int NT>
__global__ void __launch_bounds__(32 * warps)
    gemv_int8_kernel(const std::int8_t* __restrict__ w, const float* __restrict__ scale, const T* __restrict__ x,
                     float* __restrict__ y, std::int64_t rows, std::int64_t k) {
  constexpr int R = rows_per_warp;
  const int lane = threadIdx.x & 31;
  const std::int64_t row0 = (blockIdx.x * static_cast<std::int64_t>(warps) + (threadIdx.x >> 5)) * R;
  if (row0 >= rows) return;
  const std::int8_t* wrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r)  // a row past the end re-reads the last row and stores nothing
    wrow[r] = w + (row0 + r < rows ? row0 + r : rows - 1) * k;
  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;

  const uint4 zero = make_uint4(0, 0, 0, 0);
  // Word groups at i (a) and i + 512 (b); a group past k is zero and its product skipped.
  std::int64_t i = 16 * lane;
  uint4 qa[R], qb[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    qa[r] = i < k ? detail::load_stream(wrow[r] + i) : zero;
    qb[r] = i + 512 < k ? detail::load_stream(wrow[r] + i + 512) : zero;
  }
  for (; i < k; i += step) {
    const std::int64_t in = i + step;
    uint4 na[R], nb[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      na[r] = in < k ? detail::load_stream(wrow[r] + in) : zero;
      nb[r] = in + 512 < k ? detail::load_stream(wrow[r] + in + 512) : zero;
    }
    const bool has_b = i + 512 < k;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float part[R];
#pragma unroll
      for (int r = 0; r < R; ++r) part[r] = 0.0f;
      dot16<R>(qa, x + t * k + i, part);
      if (has_b) dot16<R>(qb, x + t * k + i + 512, part);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][t] += part[r];
    }
#pragma unroll
    for (int r = 0; r < R; ++r) qa[r] = na[r], qb[r] = nb[r];
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (row0 + r >= rows) continue;
    const float sc = scale[row0 + r];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float v = detail::warp_sum(acc[r][t]);
      if (lane == 0) y[t * rows + row0 + r] = v * sc;
    }
  }
}

template <class T, int NT>
void launch(const std::int8_t* w, const float* scale, const T* x, float* y, std::int64_t rows, std::int64_t k,
            cudaStream_t s) {
  gemv_int8_kernel<T, NT><<<detail::blocks_for(rows, warps * rows_per_warp), 32 * warps, 0, s>>>(w, scale, x, y,
                                                                                                   rows, k);
  HMOE_CUDA_CHECK_LAUNCH("gemv_int8_kernel");
}
}  // namespace

template <activation T>
void gemv_int8(const std::int8_t* w, const float* scale, const T* x, float* y, std::int64_t rows, std::int64_t k,
               std::int64_t tokens, const Stream& s) {
  if (k <= 0 || k % 16 != 0)
    throw std::invalid_argument("hmoe::cuda::gemv_int8: k = " + std::to_string(k) + " is not a positive multiple of 16");
  detail::check_aligned(w, "gemv_int8", "w");
  detail::check_aligned(x, "gemv_int8", "x");
  if (rows <= 0 || tokens <= 0) return;
  const cudaStream_t st = detail::native(s);
  for (std::int64_t t0 = 0; t0 < tokens;) {
    const std::int64_t left = tokens - t0;
    const T* xt = x + t0 * k;
    float* yt = y + t0 * rows;
    if (left >= 8) launch<T, 8>(w, scale, xt, yt, rows, k, st), t0 += 8;
    else if (left >= 4) launch<T, 4>(w, scale, xt, yt, rows, k, st), t0 += 4;
    else if (left >= 2) launch<T, 2>(w, scale, xt, yt, rows, k, st), t0 += 2;
    else launch<T, 1>(w, scale, xt, yt, rows, k, st), t0 += 1;
  }
}

template void gemv_int8<float>(const std::int8_t*, const float*, const float*, float*, std::int64_t, std::int64_t,
                               std::int64_t, const Stream&);
template void gemv_int8<Bf16>(const std::int8_t*, const float*, const Bf16*, float*, std::int64_t, std::int64_t,
                              std::int64_t, const Stream&);

}  // namespace hmoe::cuda
