/// \file
/// \brief Private to the unit: what the GEMV kernels share — 16-value vector loads of f32/bf16 activations and
/// the host-side alignment check their vector loads rely on.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "device_util.cuh"

namespace hmoe::cuda::detail {

/// Loads 16 consecutive activations (16-byte aligned) as f32.
__device__ __forceinline__ void load16(const float* p, float* out) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float4 v = reinterpret_cast<const float4*>(p)[i];
    out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
  }
}

__device__ __forceinline__ void load16(const Bf16* p, float* out) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const uint4 v = reinterpret_cast<const uint4*>(p)[i];
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {  // bf16 -> f32 is a shift into the high half
      out[8 * i + 2 * w] = __uint_as_float(words[w] << 16);
      out[8 * i + 2 * w + 1] = __uint_as_float(words[w] & 0xFFFF0000u);
    }
  }
}

/// Byte i (0..3) of word w, an integer 0..255, as an exact f32 without an int-to-float conversion (those run at a
/// quarter of the FMA rate and were the bottleneck): 0x4B0000bb is the float 2^23 + bb, and the subtraction is exact.
/// One PRMT and one FADD per value. `bias` is 2^23 plus what to take off the byte (128 for offset-binary int8).
template <int i>
__device__ __forceinline__ float byte_to_f32(unsigned w, float bias) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7650u | i)) - bias;
}

constexpr float magic_u8 = 8388608.0f;        // 2^23: byte_to_f32 gives the unsigned byte
constexpr float magic_s8 = 8388608.0f + 128;  // for a word xored with 0x80808080: gives the signed byte

/// A 16-byte load of weights read once per call: streaming (evict-first), so the activations stay in L1.
__device__ __forceinline__ uint4 load_stream(const void* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }

inline void check_aligned(const void* p, const char* fn, const char* what) {
  if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0)
    throw std::invalid_argument(std::string("hmoe::cuda::") + fn + ": " + what +
                                " must be 16-byte aligned (the kernel uses 16-byte loads)");
}

}  // namespace hmoe::cuda::detail
