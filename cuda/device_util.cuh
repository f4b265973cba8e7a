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

}  // namespace hmoe::cuda::detail
