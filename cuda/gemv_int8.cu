/// \file
/// \brief gemv_int8: one warp per output row; each lane takes 16 consecutive weights (one 16-byte load) per step.
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "device_util.cuh"
#include "gemv_common.cuh"
#include "hmoe/cuda/gemv.hpp"

namespace hmoe::cuda {

namespace {
constexpr int warps = 4;  // rows per block

template <class T, int NT>
__global__ void __launch_bounds__(32 * warps)
    gemv_int8_kernel(const std::int8_t* __restrict__ w, const float* __restrict__ scale, const T* __restrict__ x,
                     float* __restrict__ y, std::int64_t rows, std::int64_t k) {
  const int lane = threadIdx.x & 31;
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(warps) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const std::int8_t* wrow = w + row * k;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;

#pragma unroll 2
  for (std::int64_t i = 16 * lane; i < k; i += 16 * 32) {
    const int4 qv = *reinterpret_cast<const int4*>(wrow + i);
    const unsigned words[4] = {static_cast<unsigned>(qv.x), static_cast<unsigned>(qv.y), static_cast<unsigned>(qv.z),
                               static_cast<unsigned>(qv.w)};
    float q[16];
#pragma unroll
    for (int m = 0; m < 16; ++m)  // sign-extend byte m of the little-endian words
      q[m] = static_cast<float>(static_cast<int>(words[m >> 2] << (24 - 8 * (m & 3))) >> 24);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float xv[16];
      detail::load16(x + t * k + i, xv);
      float a = 0.0f;
#pragma unroll
      for (int m = 0; m < 16; ++m) a = fmaf(q[m], xv[m], a);
      acc[t] += a;
    }
  }
  const float sc = scale[row];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float v = detail::warp_sum(acc[t]);
    if (lane == 0) y[t * rows + row] = v * sc;
  }
}

template <class T, int NT>
void launch(const std::int8_t* w, const float* scale, const T* x, float* y, std::int64_t rows, std::int64_t k,
            cudaStream_t s) {
  gemv_int8_kernel<T, NT><<<detail::blocks_for(rows, warps), 32 * warps, 0, s>>>(w, scale, x, y, rows, k);
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
