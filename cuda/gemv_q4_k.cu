/// \file
/// \brief gemv_q4_k: one warp per output row, eight lanes per Q4_K block, four blocks per warp step.
///
/// Lane j (0..7) of a block reads the 16 bytes qs[16j .. 16j+15]: chunk c = j / 2 of 64 values, whose low nibbles
/// are values 64c + 16(j % 2) + m of sub-block 2c and high nibbles values 32 further on, in sub-block 2c + 1
/// (k_blocks.hpp's layout). Per sub-block it sums q·x and x, so the scale and the min are applied once:
/// (d·sc)·Σq·x − (dmin·m)·Σx. NT tokens share each weight load.
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "check.hpp"
#include "device_util.cuh"
#include "gemv_common.cuh"
#include "hmoe/cuda/gemv.hpp"

namespace hmoe::cuda {

namespace {
constexpr int warps = 4;  // rows per block

__device__ __forceinline__ float half_bits_to_f32(std::uint16_t b) { return __half2float(__ushort_as_half(b)); }

/// Byte i (0..15) of a 16-byte register value, selected without spilling it to local memory.
__device__ __forceinline__ int byte_of(const uint4& v, int i) {
  const unsigned w = i < 4 ? v.x : i < 8 ? v.y : i < 12 ? v.z : v.w;
  return static_cast<int>((w >> (8 * (i & 3))) & 0xFFu);
}

/// quant::detail::k4_scale_min on the block's first 16 bytes (scales start at byte 4), kept in registers.
__device__ __forceinline__ void scale_min(const uint4& head, int j, int& sc, int& m) {
  const auto s = [&](int i) { return byte_of(head, 4 + i); };
  if (j < 4) {
    sc = s(j) & 63;
    m = s(j + 4) & 63;
  } else {
    sc = (s(j + 4) & 0x0F) | ((s(j - 4) >> 6) << 4);
    m = (s(j + 4) >> 4) | ((s(j) >> 6) << 4);
  }
}

template <class T, int NT>
__global__ void __launch_bounds__(32 * warps)
    gemv_q4_k_kernel(const quant::BlockQ4_K* __restrict__ w, const T* __restrict__ x, float* __restrict__ y,
                     std::int64_t rows, std::int64_t k) {
  const int lane = threadIdx.x & 31;
  const std::int64_t row = blockIdx.x * static_cast<std::int64_t>(warps) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const std::int64_t nb = k / quant::qk_k;
  const int j = lane & 7;        // 16-byte slice of qs within the block
  const int c = j >> 1;          // 64-value chunk
  const int lo = 64 * c + 16 * (j & 1);  // first value of the low-nibble run; the high run is 32 further on
  const unsigned char* wrow = reinterpret_cast<const unsigned char*>(w + row * nb);

  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;

#pragma unroll 2
  for (std::int64_t b = lane >> 3; b < nb; b += 4) {
    const unsigned char* blk = wrow + b * sizeof(quant::BlockQ4_K);
    const uint4 head = *reinterpret_cast<const uint4*>(blk);  // d, dmin, scales[12]
    const uint4 qv = *reinterpret_cast<const uint4*>(blk + 16 + 16 * j);
    int sc0, m0, sc1, m1;
    scale_min(head, 2 * c, sc0, m0);
    scale_min(head, 2 * c + 1, sc1, m1);
    const float d = half_bits_to_f32(static_cast<std::uint16_t>(head.x & 0xFFFFu));
    const float dmin = half_bits_to_f32(static_cast<std::uint16_t>(head.x >> 16));
    const float ds0 = d * static_cast<float>(sc0), dm0 = dmin * static_cast<float>(m0);
    const float ds1 = d * static_cast<float>(sc1), dm1 = dmin * static_cast<float>(m1);
    float qlo[16], qhi[16];
    const unsigned words[4] = {qv.x, qv.y, qv.z, qv.w};
#pragma unroll
    for (int m = 0; m < 16; ++m) {
      const unsigned byte = (words[m >> 2] >> (8 * (m & 3))) & 0xFFu;
      qlo[m] = static_cast<float>(byte & 0x0Fu);
      qhi[m] = static_cast<float>(byte >> 4);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const T* xb = x + t * k + b * quant::qk_k + lo;
      float xlo[16], xhi[16];
      detail::load16(xb, xlo);
      detail::load16(xb + 32, xhi);
      float qx0 = 0.0f, sx0 = 0.0f, qx1 = 0.0f, sx1 = 0.0f;
#pragma unroll
      for (int m = 0; m < 16; ++m) {
        qx0 = fmaf(qlo[m], xlo[m], qx0);
        sx0 += xlo[m];
        qx1 = fmaf(qhi[m], xhi[m], qx1);
        sx1 += xhi[m];
      }
      acc[t] += ds0 * qx0 - dm0 * sx0 + ds1 * qx1 - dm1 * sx1;
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float v = detail::warp_sum(acc[t]);
    if (lane == 0) y[t * rows + row] = v;
  }
}

template <class T, int NT>
void launch(const quant::BlockQ4_K* w, const T* x, float* y, std::int64_t rows, std::int64_t k, cudaStream_t s) {
  gemv_q4_k_kernel<T, NT><<<detail::blocks_for(rows, warps), 32 * warps, 0, s>>>(w, x, y, rows, k);
  HMOE_CUDA_CHECK_LAUNCH("gemv_q4_k_kernel");
}
}  // namespace

template <activation T>
void gemv_q4_k(const quant::BlockQ4_K* w, const T* x, float* y, std::int64_t rows, std::int64_t k,
               std::int64_t tokens, const Stream& s) {
  if (k <= 0 || k % quant::qk_k != 0)
    throw std::invalid_argument("hmoe::cuda::gemv_q4_k: k = " + std::to_string(k) + " is not a positive multiple of 256");
  detail::check_aligned(w, "gemv_q4_k", "w");
  detail::check_aligned(x, "gemv_q4_k", "x");
  if (rows <= 0 || tokens <= 0) return;
  const cudaStream_t st = detail::native(s);
  // Tokens in chunks of 8, 4, 2, 1: each chunk reads the weights once.
  for (std::int64_t t0 = 0; t0 < tokens;) {
    const std::int64_t left = tokens - t0;
    const T* xt = x + t0 * k;
    float* yt = y + t0 * rows;
    if (left >= 8) launch<T, 8>(w, xt, yt, rows, k, st), t0 += 8;
    else if (left >= 4) launch<T, 4>(w, xt, yt, rows, k, st), t0 += 4;
    else if (left >= 2) launch<T, 2>(w, xt, yt, rows, k, st), t0 += 2;
    else launch<T, 1>(w, xt, yt, rows, k, st), t0 += 1;
  }
}

template void gemv_q4_k<float>(const quant::BlockQ4_K*, const float*, float*, std::int64_t, std::int64_t,
                               std::int64_t, const Stream&);
template void gemv_q4_k<Bf16>(const quant::BlockQ4_K*, const Bf16*, float*, std::int64_t, std::int64_t,
                              std::int64_t, const Stream&);

}  // namespace hmoe::cuda
