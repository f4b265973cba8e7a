/// \file
/// \brief gemv_q4_k: each warp computes two output rows, eight lanes per Q4_K block, four blocks per warp step;
/// for few rows, two warps split a row's blocks and add their partial sums through shared memory.
///
/// Lane j (0..7) of a block reads the 16 bytes qs[16j .. 16j+15]: chunk c = j / 2 of 64 values, whose low nibbles
/// are values 64c + 16(j % 2) + m of sub-block 2c and high nibbles values 32 further on, in sub-block 2c + 1
/// (k_blocks.hpp's layout). Per sub-block it sums q·x and x, so the scale and the min are applied once:
/// (d·sc)·Σq·x − (dmin·m)·Σx. NT tokens share each weight load.
///
/// Bandwidth (decode is memory-bound): a warp step issues 16-byte streaming loads (block head and qs) for both rows,
/// and the next step's loads are issued before this step's arithmetic, so a lane keeps 8 × 16 bytes in flight.
/// The two rows share the activations (read from L1) and Σx, which halves the L1 traffic of the f32 activations
/// (8 bytes of x per weight byte and row otherwise). Nibbles become f32 through byte_to_f32 (PRMT + exact FADD),
/// not through int-to-float conversions, which run at a quarter rate and capped the first version near 1 TB/s.
#include <cuda_fp16.h>

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

__device__ __forceinline__ float half_bits_to_f32(std::uint16_t b) { return __half2float(__ushort_as_half(b)); }

/// Scales and mins of sub-blocks 2c and 2c + 1 (quant::detail::k4_scale_min) from the block's first 16 bytes
/// (scales start at byte 4: words y, z, w hold scales[0..3], [4..7], [8..11]), as 16-bit pairs (byte 0: sub-block
/// 2c, byte 1: 2c + 1), unpacked with a few word operations instead of per-byte selects.
__device__ __forceinline__ void scale_min_pair(const uint4& head, int c, unsigned& sc2, unsigned& m2) {
  const int sh = 16 * (c & 1);
  const unsigned y = head.y >> sh, z = head.z >> sh, wd = head.w >> sh;
  if (c < 2) {
    sc2 = y & 0x3F3Fu;
    m2 = z & 0x3F3Fu;
  } else {
    sc2 = (wd & 0x0F0Fu) | ((y >> 2) & 0x3030u);
    m2 = ((wd >> 4) & 0x0F0Fu) | ((z >> 2) & 0x3030u);
  }
}

/// KS warps of a CTA share R rows and split the row's blocks between them (warp kw takes the warp steps
/// kw, kw + KS, ...), then add their partial sums through shared memory: short rows (k = 2048..7168 is 8..28
/// blocks) still give every SM enough warps, and no output zeroing or atomics are needed.
template <class T, int NT, int KS>
__global__ void __launch_bounds__(32 * warps)
    gemv_q4_k_kernel(const quant::BlockQ4_K* __restrict__ w, const T* __restrict__ x, float* __restrict__ y,
                     std::int64_t rows, std::int64_t k) {
  constexpr int R = rows_per_warp;
  constexpr int G = warps / KS;  // row groups per CTA
  static_assert(warps % KS == 0, "KS must divide the warps of a CTA");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = warp / KS, kw = warp % KS;
  const std::int64_t row0 = (blockIdx.x * static_cast<std::int64_t>(G) + g) * R;
  const std::int64_t nb = k / quant::qk_k;
  const int j = lane & 7;                // 16-byte slice of qs within the block
  const int c = j >> 1;                  // 64-value chunk
  const int lo = 64 * c + 16 * (j & 1);  // first value of the low-nibble run; the high run is 32 further on
  const unsigned char* wrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {  // a row past the end re-reads the last row and stores nothing
    const std::int64_t rr = row0 + r < rows ? row0 + r : rows - 1;
    wrow[r] = reinterpret_cast<const unsigned char*>(w + rr * nb);
  }

  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;

  constexpr int bstep = 4 * KS;
  std::int64_t b = (lane >> 3) + 4 * kw;
  uint4 head[R], qv[R];
#pragma unroll
  for (int r = 0; r < R; ++r) head[r] = qv[r] = make_uint4(0, 0, 0, 0);
  if (b < nb) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = wrow[r] + b * sizeof(quant::BlockQ4_K);
      head[r] = detail::load_stream(blk);  // d, dmin, scales[12]
      qv[r] = detail::load_stream(blk + 16 + 16 * j);
    }
  }
  for (; b < nb; b += bstep) {
    // Issue the next step's loads first: they are in flight during this step's arithmetic.
    uint4 nhead[R], nqv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) nhead[r] = head[r], nqv[r] = qv[r];
    if (b + bstep < nb) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const unsigned char* blk = wrow[r] + (b + bstep) * sizeof(quant::BlockQ4_K);
        nhead[r] = detail::load_stream(blk);
        nqv[r] = detail::load_stream(blk + 16 + 16 * j);
      }
    }

    float qlo[R][16], qhi[R][16], ds0[R], dm0[R], ds1[R], dm1[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      unsigned sc2, m2;
      scale_min_pair(head[r], c, sc2, m2);
      const float d = half_bits_to_f32(static_cast<std::uint16_t>(head[r].x & 0xFFFFu));
      const float dmin = half_bits_to_f32(static_cast<std::uint16_t>(head[r].x >> 16));
      ds0[r] = d * detail::byte_to_f32<0>(sc2, detail::magic_u8);
      ds1[r] = d * detail::byte_to_f32<1>(sc2, detail::magic_u8);
      dm0[r] = dmin * detail::byte_to_f32<0>(m2, detail::magic_u8);
      dm1[r] = dmin * detail::byte_to_f32<1>(m2, detail::magic_u8);
      const unsigned words[4] = {qv[r].x, qv[r].y, qv[r].z, qv[r].w};
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const unsigned wl = words[q] & 0x0F0F0F0Fu, wh = (words[q] >> 4) & 0x0F0F0F0Fu;
        qlo[r][4 * q + 0] = detail::byte_to_f32<0>(wl, detail::magic_u8);
        qlo[r][4 * q + 1] = detail::byte_to_f32<1>(wl, detail::magic_u8);
        qlo[r][4 * q + 2] = detail::byte_to_f32<2>(wl, detail::magic_u8);
        qlo[r][4 * q + 3] = detail::byte_to_f32<3>(wl, detail::magic_u8);
        qhi[r][4 * q + 0] = detail::byte_to_f32<0>(wh, detail::magic_u8);
        qhi[r][4 * q + 1] = detail::byte_to_f32<1>(wh, detail::magic_u8);
        qhi[r][4 * q + 2] = detail::byte_to_f32<2>(wh, detail::magic_u8);
        qhi[r][4 * q + 3] = detail::byte_to_f32<3>(wh, detail::magic_u8);
      }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const T* xb = x + t * k + b * quant::qk_k + lo;
      float xv[16];
      detail::load16(xb, xv);
      float sx = 0.0f;
#pragma unroll
      for (int m = 0; m < 16; ++m) sx += xv[m];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float qx = 0.0f;
#pragma unroll
        for (int m = 0; m < 16; ++m) qx = fmaf(qlo[r][m], xv[m], qx);
        acc[r][t] += ds0[r] * qx - dm0[r] * sx;
      }
      detail::load16(xb + 32, xv);
      sx = 0.0f;
#pragma unroll
      for (int m = 0; m < 16; ++m) sx += xv[m];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float qx = 0.0f;
#pragma unroll
        for (int m = 0; m < 16; ++m) qx = fmaf(qhi[r][m], xv[m], qx);
        acc[r][t] += ds1[r] * qx - dm1[r] * sx;
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) head[r] = nhead[r], qv[r] = nqv[r];
  }
  if constexpr (KS == 1) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float v = detail::warp_sum(acc[r][t]);
        if (lane == 0 && row0 + r < rows) y[t * rows + row0 + r] = v;
      }
  } else {
    __shared__ float part[warps][R * NT];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float v = detail::warp_sum(acc[r][t]);
        if (lane == 0) part[warp][r * NT + t] = v;
      }
    __syncthreads();
    // The group's first warp adds the KS partial sums, one output per lane.
    if (kw == 0 && lane < R * NT) {
      const int r = lane / NT, t = lane % NT;
      float v = part[warp][lane];
#pragma unroll
      for (int i = 1; i < KS; ++i) v += part[warp + i][lane];
      if (row0 + r < rows) y[t * rows + row0 + r] = v;
    }
  }
}

template <class T, int NT, int KS>
void launch_ks(const quant::BlockQ4_K* w, const T* x, float* y, std::int64_t rows, std::int64_t k, cudaStream_t s) {
  gemv_q4_k_kernel<T, NT, KS>
      <<<detail::blocks_for(rows, warps / KS * rows_per_warp), 32 * warps, 0, s>>>(w, x, y, rows, k);
  HMOE_CUDA_CHECK_LAUNCH("gemv_q4_k_kernel");
}

/// Splits a row between 2 warps only when rows are few (< 4096: too few warps to fill 132 SMs otherwise) and the
/// row has at least 8 blocks. Measured on H100: splitting long rows (KS = 4, or 2 with many rows) is slower, since
/// the kernel is issue-bound rather than short of parallelism there (the kernel takes any KS dividing 4).
template <class T, int NT>
void launch(const quant::BlockQ4_K* w, const T* x, float* y, std::int64_t rows, std::int64_t k, cudaStream_t s) {
  const std::int64_t nb = k / quant::qk_k;
  if (rows < 4096 && nb >= 8) launch_ks<T, NT, 2>(w, x, y, rows, k, s);
  else launch_ks<T, NT, 1>(w, x, y, rows, k, s);
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
