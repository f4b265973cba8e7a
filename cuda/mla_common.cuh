/// \file
/// \brief Private helpers of the MLA kernels: argument checks, bf16 conversion loads, and the PTX wrappers
/// (cp.async, ldmatrix, mma.sync m16n8k16 bf16) the attention tile is built from.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "hmoe/cuda/mla.hpp"

namespace hmoe::cuda::mla_detail {

using bf16 = __nv_bfloat16;

/// Argument checks of the public entry points (CUDA failures go through HMOE_CUDA_CHECK → CudaError).
inline void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("hmoe::cuda mla: ") + what);
}

inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

/// 8 consecutive input values → 8 bf16 packed in a uint4 (one 16-byte shared/global store).
template <class T>
__device__ __forceinline__ uint4 load8_as_bf16(const T* src);

template <>
__device__ __forceinline__ uint4 load8_as_bf16<float>(const float* src) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(src));
  const float4 b = __ldg(reinterpret_cast<const float4*>(src) + 1);
  const __nv_bfloat162 p0 = __floats2bfloat162_rn(a.x, a.y), p1 = __floats2bfloat162_rn(a.z, a.w);
  const __nv_bfloat162 p2 = __floats2bfloat162_rn(b.x, b.y), p3 = __floats2bfloat162_rn(b.z, b.w);
  uint4 r;
  r.x = *reinterpret_cast<const std::uint32_t*>(&p0);
  r.y = *reinterpret_cast<const std::uint32_t*>(&p1);
  r.z = *reinterpret_cast<const std::uint32_t*>(&p2);
  r.w = *reinterpret_cast<const std::uint32_t*>(&p3);
  return r;
}

template <>
__device__ __forceinline__ uint4 load8_as_bf16<bf16>(const bf16* src) {
  return __ldg(reinterpret_cast<const uint4*>(src));
}

__device__ __forceinline__ std::uint32_t smem_addr(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

/// 16-byte async copy global → shared; src_bytes 0 zero-fills the destination without reading (masked rows).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/// Four 8×8 bf16 matrices; lane l gives the row address of matrix l/8. Non-transposed: thread (g = lane/4,
/// t = lane%4) gets row g, columns 2t, 2t+1 of each matrix.
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
/// Transposed: thread (g, t) gets rows 2t, 2t+1 of column g of each matrix.
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

/// d += a (16×16, row) · b (16×8, col), bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                               std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Two floats → packed bf16x2, the first in the low half (the lower column of an mma fragment).
__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

}  // namespace hmoe::cuda::mla_detail
