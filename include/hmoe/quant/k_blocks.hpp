/// \file
/// \brief ggml's 256-value "K" block formats Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K, byte for byte, and their
/// decoders.
///
/// A K block is a super-block of 16 (Q2/Q3/Q6) or 8 (Q4/Q5) sub-blocks, each with a small integer scale (and min)
/// multiplied by the f16 super-scale d (and dmin). Decoders match gguf-py's `gguf.quants.dequantize` bit for bit,
/// computing (d * sc) * q - dmin * m in numpy's order. Where a subtraction follows (Q2_K, Q4_K, Q5_K) both products
/// are exact in float (11 bits of f16, at most 6 of sc, 5 of q), so an FMA-contracting compiler gets the same bits;
/// Q6_K's (d * sc) * q can round, but nothing is added to it.
/// Q8_K is the activation format of ggml's K dot products (an f32 scale and 16-value partial sums).
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmoe/quant/ggml_type.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/host_device.hpp"

namespace hmoe::quant {

inline constexpr int qk_k = 256;  ///< values in a K super-block

/// 2-bit: value = (d * (scales[s] & 15)) * q - dmin * (scales[s] >> 4), 16 sub-blocks of 16.
struct BlockQ2_K {
  static constexpr int block_elems = qk_k;
  static constexpr GgmlType type = GgmlType::Q2_K;
  std::uint8_t scales[qk_k / 16];  ///< low nibble scale, high nibble min
  std::uint8_t qs[qk_k / 4];
  std::uint16_t d;     ///< f16 bits
  std::uint16_t dmin;  ///< f16 bits
};

/// 3-bit: value = (d * (sc - 32)) * (q2 - (hbit ? 0 : 4)), 16 sub-blocks of 16 with 6-bit scales.
struct BlockQ3_K {
  static constexpr int block_elems = qk_k;
  static constexpr GgmlType type = GgmlType::Q3_K;
  std::uint8_t hmask[qk_k / 8];
  std::uint8_t qs[qk_k / 4];
  std::uint8_t scales[12];  ///< 16 packed 6-bit scales
  std::uint16_t d;          ///< f16 bits
};

/// 4-bit: value = (d * sc) * q - dmin * m, 8 sub-blocks of 32 with 6-bit scales and mins.
struct BlockQ4_K {
  static constexpr int block_elems = qk_k;
  static constexpr GgmlType type = GgmlType::Q4_K;
  std::uint16_t d;     ///< f16 bits
  std::uint16_t dmin;  ///< f16 bits
  std::uint8_t scales[12];
  std::uint8_t qs[qk_k / 2];
};

/// 5-bit: as Q4_K with a fifth bit per value in qh.
struct BlockQ5_K {
  static constexpr int block_elems = qk_k;
  static constexpr GgmlType type = GgmlType::Q5_K;
  std::uint16_t d;     ///< f16 bits
  std::uint16_t dmin;  ///< f16 bits
  std::uint8_t scales[12];
  std::uint8_t qh[qk_k / 8];
  std::uint8_t qs[qk_k / 2];
};

/// 6-bit: value = (d * scales[s]) * (q - 32), 16 sub-blocks of 16 with signed 8-bit scales.
struct BlockQ6_K {
  static constexpr int block_elems = qk_k;
  static constexpr GgmlType type = GgmlType::Q6_K;
  std::uint8_t ql[qk_k / 2];  ///< low 4 bits
  std::uint8_t qh[qk_k / 4];  ///< high 2 bits
  std::int8_t scales[qk_k / 16];
  std::uint16_t d;  ///< f16 bits
};

/// 8-bit activations: value = d * qs[i]; bsums[k] is the sum of qs[16k .. 16k+15].
struct BlockQ8_K {
  static constexpr int block_elems = qk_k;
  static constexpr GgmlType type = GgmlType::Q8_K;
  float d;
  std::int8_t qs[qk_k];
  std::int16_t bsums[qk_k / 16];
};

static_assert(sizeof(BlockQ2_K) == 84 && offsetof(BlockQ2_K, d) == 80);
static_assert(sizeof(BlockQ3_K) == 110 && offsetof(BlockQ3_K, scales) == 96 && offsetof(BlockQ3_K, d) == 108);
static_assert(sizeof(BlockQ4_K) == 144 && offsetof(BlockQ4_K, scales) == 4 && offsetof(BlockQ4_K, qs) == 16);
static_assert(sizeof(BlockQ5_K) == 176 && offsetof(BlockQ5_K, qh) == 16 && offsetof(BlockQ5_K, qs) == 48);
static_assert(sizeof(BlockQ6_K) == 210 && offsetof(BlockQ6_K, scales) == 192 && offsetof(BlockQ6_K, d) == 208);
static_assert(sizeof(BlockQ8_K) == 292 && offsetof(BlockQ8_K, bsums) == 260);

namespace detail {

/// Sub-block j (0..7) scale and min of Q4_K/Q5_K: 6 bits each; j < 4 in the low bits of bytes j and j + 4, j >= 4
/// split between a nibble of byte j + 4 and the top two bits of bytes j - 4 (scale) and j (min).
HMOE_HOST_DEVICE inline void k4_scale_min(const std::uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

/// Sub-block k (0..15) scale of Q3_K, unbiased: low nibble from byte k (k < 8) or the high nibble of byte k - 8,
/// top two bits from byte 8 + k % 4 at bit 2 * (k / 4).
HMOE_HOST_DEVICE inline int k3_scale(const std::uint8_t* s, int k) {
  const int lo = k < 8 ? (s[k] & 0x0F) : (s[k - 8] >> 4);
  const int hi = (s[8 + (k & 3)] >> (2 * (k >> 2))) & 3;
  return (lo | (hi << 4)) - 32;
}

}  // namespace detail

// Value index i of a 256 block is laid out in chunks of 128 (Q2/Q3/Q6) or 64 (Q4/Q5): within a chunk,
// consecutive bit fields of the same byte run 32 values apart.

HMOE_HOST_DEVICE inline void dequantize(const BlockQ2_K& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  const float dmin = fp16_to_fp32(b.dmin);
  for (int c = 0; c < 2; ++c) {
    const std::uint8_t* q = b.qs + 32 * c;
    for (int s = 0; s < 4; ++s) {
      for (int h = 0; h < 2; ++h) {  // two sub-blocks of 16 per 32 values
        const int sub = 8 * c + 2 * s + h;
        const float dl = d * static_cast<float>(b.scales[sub] & 0x0F);
        const float ml = dmin * static_cast<float>(b.scales[sub] >> 4);
        float* out = y + 16 * sub;
        for (int l = 0; l < 16; ++l) out[l] = dl * static_cast<float>((q[16 * h + l] >> (2 * s)) & 3) - ml;
      }
    }
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ3_K& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  for (int c = 0; c < 2; ++c) {
    const std::uint8_t* q = b.qs + 32 * c;
    for (int s = 0; s < 4; ++s) {
      const int hbit = 4 * c + s;  // hmask bit of these 32 values
      for (int h = 0; h < 2; ++h) {
        const int sub = 8 * c + 2 * s + h;
        const float dl = d * static_cast<float>(detail::k3_scale(b.scales, sub));
        float* out = y + 16 * sub;
        for (int l = 0; l < 16; ++l) {
          const int lane = 16 * h + l;
          const int v = ((q[lane] >> (2 * s)) & 3) - (((b.hmask[lane] >> hbit) & 1) ? 0 : 4);
          out[l] = dl * static_cast<float>(v);
        }
      }
    }
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ4_K& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  const float dmin = fp16_to_fp32(b.dmin);
  for (int c = 0; c < 4; ++c) {
    const std::uint8_t* q = b.qs + 32 * c;
    for (int h = 0; h < 2; ++h) {
      const int sub = 2 * c + h;
      int sc = 0, m = 0;
      detail::k4_scale_min(b.scales, sub, sc, m);
      const float ds = d * static_cast<float>(sc);
      const float dm = dmin * static_cast<float>(m);
      float* out = y + 32 * sub;
      for (int l = 0; l < 32; ++l) out[l] = ds * static_cast<float>((q[l] >> (4 * h)) & 0x0F) - dm;
    }
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ5_K& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  const float dmin = fp16_to_fp32(b.dmin);
  for (int c = 0; c < 4; ++c) {
    const std::uint8_t* q = b.qs + 32 * c;
    for (int h = 0; h < 2; ++h) {
      const int sub = 2 * c + h;  // also the qh bit of these 32 values
      int sc = 0, m = 0;
      detail::k4_scale_min(b.scales, sub, sc, m);
      const float ds = d * static_cast<float>(sc);
      const float dm = dmin * static_cast<float>(m);
      float* out = y + 32 * sub;
      for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> (4 * h)) & 0x0F) | (((b.qh[l] >> sub) & 1) << 4);
        out[l] = ds * static_cast<float>(v) - dm;
      }
    }
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ6_K& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  for (int c = 0; c < 2; ++c) {
    const std::uint8_t* ql = b.ql + 64 * c;
    const std::uint8_t* qh = b.qh + 32 * c;
    for (int r = 0; r < 128; r += 16) {  // one sub-block of 16 per step
      const int sub = 8 * c + r / 16;
      const float ds = d * static_cast<float>(b.scales[sub]);  // rounded before the multiply by q, as numpy does
      const int lo_shift = 4 * (r / 64);  // values 64..127 of the chunk use the high nibbles
      const int hi_shift = 2 * (r / 32);
      float* out = y + 16 * sub;
      for (int l = 0; l < 16; ++l) {
        const int i = r + l;
        const int v = ((ql[i % 64] >> lo_shift) & 0x0F) | (((qh[i % 32] >> hi_shift) & 3) << 4);
        out[l] = ds * static_cast<float>(v - 32);
      }
    }
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ8_K& b, float* y) {
  for (int i = 0; i < qk_k; ++i) y[i] = b.d * static_cast<float>(b.qs[i]);
}

}  // namespace hmoe::quant
