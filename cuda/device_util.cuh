/// \file
/// \brief Private to the unit: device-side helpers shared by the kernels — loading and storing the activation
/// types as f32, and warp reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "hmoe/cuda/types.hpp"
#include "hmoe/quant/half.hpp"

namespace hmoe::cuda::detail {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(Bf16 v) { return quant::bf16_to_fp32(v.bits); }

/// Rounds to nearest even exactly as the host's quant::fp32_to_bf16 does (NaN stays NaN).
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(Bf16* p, float v) { p->bits = quant::fp32_to_bf16(v); }

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

/// (value, index) with the order "larger value first, then lower index"; index < 0 means empty.
struct ArgBest {
  float v;
  int i;
};

__device__ __forceinline__ bool better(const ArgBest& a, const ArgBest& b) {
  if (a.i < 0) return false;
  if (b.i < 0) return true;
  return a.v > b.v || (a.v == b.v && a.i < b.i);
}

__device__ __forceinline__ ArgBest warp_best(ArgBest a) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const ArgBest b{__shfl_xor_sync(0xFFFFFFFFu, a.v, o), __shfl_xor_sync(0xFFFFFFFFu, a.i, o)};
    if (better(b, a)) a = b;
  }
  return a;  // the same on every lane: the order is total, so the butterfly agrees
}

/// The sum of v over a CTA of Threads threads (a multiple of 32), returned to every thread. Uses one
/// __syncthreads pair, so every thread of the CTA must call it.
template <int Threads>
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double partial[Threads / 32];
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    double w = threadIdx.x < Threads / 32 ? partial[threadIdx.x] : 0.0;
    w = warp_sum(w);
    if (threadIdx.x == 0) partial[0] = w;
  }
  __syncthreads();
  return partial[0];
}

/// RMSNorm's scale from the exact (double) sum of squares of n values, rounded to float once, as
/// layer/rms_norm.hpp computes it.
__device__ __forceinline__ float rms_scale(double sum_squares, long long n, float eps) {
  return static_cast<float>(1.0 / sqrt(sum_squares / static_cast<double>(n) + static_cast<double>(eps)));
}

/// Blocks for a grid-stride loop over n items, at most 65536 (the loop covers the rest).
inline unsigned grid_stride_blocks(long long n, int threads) {
  const long long b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < (1 << 16) ? b : (1 << 16));
}

}  // namespace hmoe::cuda::detail
