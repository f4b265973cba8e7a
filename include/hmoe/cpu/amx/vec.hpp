/// \file
/// \brief The few AVX-512 operations the packed kernels need that SIMDe 0.7.4 lacks (bytes, int16 and f16 ->
/// 32-bit lanes, a partial store, bf16 vector casts), with scalar stand-ins under `HMOE_EMULATE_X86`; int32 -> f32 comes from
/// the AVX-512 kernels' shims.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "hmoe/cpu/avx512/shims.hpp"
#include "hmoe/cpu/x86/intrinsics.hpp"
#include "hmoe/quant/half.hpp"

namespace hmoe::cpu::amx::vec {

#if defined(HMOE_EMULATE_X86)
using BF16x32 = simde__m512bh;
#else
using BF16x32 = __m512bh;
#endif

/// int32 lanes to f32: the AVX-512 kernels' helper.
using avx512::detail::to_float;

/// 16 unsigned bytes to 16 f32 lanes.
HMOE_TARGET_AVX512 inline __m512 bytes_to_float(const std::uint8_t* p) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) float f[16];
  for (int l = 0; l < 16; ++l) f[l] = static_cast<float>(p[l]);
  return _mm512_loadu_ps(f);
#else
  return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
}

/// 16 int16 to 16 int32 lanes.
HMOE_TARGET_AVX512 inline __m512i int16_to_int32(const std::int16_t* p) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) std::int32_t i[16];
  for (int l = 0; l < 16; ++l) i[l] = p[l];
  return _mm512_loadu_si512(i);
#else
  return _mm512_maskz_cvtepi16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#endif
}

/// 16 f16 bit patterns to 16 f32 lanes (exact).
HMOE_TARGET_AVX512 inline __m512 halves_to_float(const std::uint16_t* p) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) float f[16];
  for (int l = 0; l < 16; ++l) f[l] = quant::fp16_to_fp32(p[l]);
  return _mm512_loadu_ps(f);
#else
  return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#endif
}

/// v << N per 32-bit lane.
template <unsigned N>
HMOE_TARGET_AVX512 inline __m512i shift_left32(__m512i v) {
#if defined(HMOE_EMULATE_X86)
  return _mm512_slli_epi32(v, N);
#else
  return _mm512_maskz_slli_epi32(0xFFFF, v, N);  // the unmasked form trips GCC 12's -Wmaybe-uninitialized
#endif
}

/// 16 unsigned bytes to 16 32-bit lanes, each holding its byte in both 16-bit halves (v | v << 16): a scale
/// for the two bytes of every word (vpmullw) or an int16 pair (vpdpwssd).
HMOE_TARGET_AVX512 inline __m512i bytes_to_word_pairs(const std::uint8_t* p) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) std::int32_t i[16];
  for (int l = 0; l < 16; ++l) i[l] = static_cast<std::int32_t>(p[l] * 0x10001u);
  return _mm512_loadu_si512(i);
#else
  const __m512i v = _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_or_si512(v, _mm512_maskz_slli_epi32(0xFFFF, v, 16));
#endif
}

/// Stores lanes [0, n) of v (n in 1..16); memory past them is not touched.
HMOE_TARGET_AVX512 inline void store_first(float* p, __m512 v, int n) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) float f[16];
  _mm512_storeu_ps(f, v);
  std::memcpy(p, f, sizeof(float) * static_cast<unsigned>(n));
#else
  if (n == 16) {
    _mm512_storeu_ps(p, v);
  } else {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
  }
#endif
}

/// The 4 bytes at p in every 32-bit lane (one VNNI group of activations against 16 output channels).
HMOE_TARGET_AVX512 inline __m512i broadcast4(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// acc + pairwise bf16 products of a and b (vdpbf16ps).
HMOE_TARGET_AVX512 inline __m512 dot_bf16(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, std::bit_cast<BF16x32>(a), std::bit_cast<BF16x32>(b));
}

}  // namespace hmoe::cpu::amx::vec
