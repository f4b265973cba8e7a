/// \file
/// \brief Exact conversions between float and the 16-bit formats ggml stores (IEEE binary16 and bfloat16).
///
/// Widening is exact and keeps NaN payloads. Narrowing rounds to nearest, ties to even, as ggml does; a NaN
/// narrows to a quiet NaN of the same sign (f16: 0x7E00, as ggml's reference; bf16: the top half with the quiet
/// bit forced on, as ggml_compute_fp32_to_bf16). All of it is integer bit work, so no FPU mode
/// (flush-to-zero, contraction) can change a result.
#pragma once

#include <cstdint>

#include "hmoe/quant/host_device.hpp"

namespace hmoe::quant {

/// binary16 bits -> float, exact.
HMOE_HOST_DEVICE inline float fp16_to_fp32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return float_from_bits(sign | 0x7F800000u | (mant << 13));  // inf, NaN (payload kept)
  if (exp != 0) return float_from_bits(sign | ((exp + (127 - 15)) << 23) | (mant << 13));
  if (mant == 0) return float_from_bits(sign);
  // Subnormal: shift the leading one up to the implicit position; each shift lowers the exponent by one.
  std::uint32_t e = 127 - 15 + 1;
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return float_from_bits(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

/// float -> binary16 bits, round to nearest even; overflow gives inf.
HMOE_HOST_DEVICE inline std::uint16_t fp32_to_fp16(float f) {
  const std::uint32_t u = bits_of(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7FFFFFFFu;
  std::uint32_t h;
  if (a > 0x7F800000u) {
    h = 0x7E00u;
  } else if (a >= 0x477FF000u) {  // >= 65520, the midpoint above 65504, ties to the even inf
    h = 0x7C00u;
  } else if (a >= 0x38800000u) {  // normal half (>= 2^-14): rebias, then round off 13 bits; a carry bumps the exponent
    const std::uint32_t m = a - ((127u - 15u) << 23);
    h = (m + 0xFFFu + ((m >> 13) & 1u)) >> 13;
  } else if (a <= 0x33000000u) {  // <= 2^-25, half the smallest subnormal: ties to the even zero
    h = 0;
  } else {  // subnormal half: value = mant * 2^(e-150), in units of 2^-24 that is mant >> (126 - e)
    const std::uint32_t e = a >> 23;
    const std::uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // 14..24
    h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
  }
  return static_cast<std::uint16_t>(sign | h);
}

/// bfloat16 bits -> float, exact.
HMOE_HOST_DEVICE inline float bf16_to_fp32(std::uint16_t b) { return float_from_bits(static_cast<std::uint32_t>(b) << 16); }

/// float -> bfloat16 bits, round to nearest even (inf past the largest finite value).
HMOE_HOST_DEVICE inline std::uint16_t fp32_to_bf16(float f) {
  const std::uint32_t u = bits_of(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace hmoe::quant
