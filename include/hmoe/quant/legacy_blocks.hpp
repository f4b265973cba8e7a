/// \file
/// \brief ggml's 32-value block formats Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, byte for byte, and their decoders.
///
/// Decoders match gguf-py's `gguf.quants.dequantize` (llama.cpp's reference) bit for bit. d * q is exact in float
/// (11 significant bits of f16 times at most 8), so the only rounding is the add of m, and a compiler that fuses
/// `d * q + m` into an FMA gets the same bits. Value j of a block comes from the low nibble of
/// qs[j] for j < 16 and from the high nibble of qs[j - 16] otherwise; Q5's fifth bit j is bit j of qh.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmoe/quant/ggml_type.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/host_device.hpp"

namespace hmoe::quant {

/// d * (q - 8), q in [0, 16).
struct BlockQ4_0 {
  static constexpr int block_elems = 32;
  static constexpr GgmlType type = GgmlType::Q4_0;
  std::uint16_t d;  ///< f16 bits
  std::uint8_t qs[block_elems / 2];
};

/// d * q + m, q in [0, 16).
struct BlockQ4_1 {
  static constexpr int block_elems = 32;
  static constexpr GgmlType type = GgmlType::Q4_1;
  std::uint16_t d;  ///< f16 bits
  std::uint16_t m;  ///< f16 bits
  std::uint8_t qs[block_elems / 2];
};

/// d * (q - 16), q in [0, 32).
struct BlockQ5_0 {
  static constexpr int block_elems = 32;
  static constexpr GgmlType type = GgmlType::Q5_0;
  std::uint16_t d;  ///< f16 bits
  std::uint8_t qh[4];  ///< fifth bits, a little-endian uint32 (bytes, because ggml does not align it)
  std::uint8_t qs[block_elems / 2];
};

/// d * q + m, q in [0, 32).
struct BlockQ5_1 {
  static constexpr int block_elems = 32;
  static constexpr GgmlType type = GgmlType::Q5_1;
  std::uint16_t d;  ///< f16 bits
  std::uint16_t m;  ///< f16 bits
  std::uint8_t qh[4];
  std::uint8_t qs[block_elems / 2];
};

/// d * q, q in [-128, 128).
struct BlockQ8_0 {
  static constexpr int block_elems = 32;
  static constexpr GgmlType type = GgmlType::Q8_0;
  std::uint16_t d;  ///< f16 bits
  std::int8_t qs[block_elems];
};

static_assert(sizeof(BlockQ4_0) == 18 && offsetof(BlockQ4_0, qs) == 2);
static_assert(sizeof(BlockQ4_1) == 20 && offsetof(BlockQ4_1, qs) == 4);
static_assert(sizeof(BlockQ5_0) == 22 && offsetof(BlockQ5_0, qh) == 2 && offsetof(BlockQ5_0, qs) == 6);
static_assert(sizeof(BlockQ5_1) == 24 && offsetof(BlockQ5_1, qh) == 4 && offsetof(BlockQ5_1, qs) == 8);
static_assert(sizeof(BlockQ8_0) == 34 && offsetof(BlockQ8_0, qs) == 2);

namespace detail {
HMOE_HOST_DEVICE inline std::uint32_t load_le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
}  // namespace detail

HMOE_HOST_DEVICE inline void dequantize(const BlockQ4_0& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((b.qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((b.qs[j] >> 4) - 8);
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ4_1& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  const float m = fp16_to_fp32(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(b.qs[j] & 0x0F) + m;
    y[j + 16] = d * static_cast<float>(b.qs[j] >> 4) + m;
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ5_0& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  const std::uint32_t qh = detail::load_le32(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo - 16);
    y[j + 16] = d * static_cast<float>(hi - 16);
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ5_1& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  const float m = fp16_to_fp32(b.m);
  const std::uint32_t qh = detail::load_le32(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + 16] = d * static_cast<float>(hi) + m;
  }
}

HMOE_HOST_DEVICE inline void dequantize(const BlockQ8_0& b, float* y) {
  const float d = fp16_to_fp32(b.d);
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(b.qs[j]);
}

}  // namespace hmoe::quant
