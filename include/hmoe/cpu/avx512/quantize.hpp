/// \file
/// \brief Activation rows to Q8_0 and Q8_K with AVX-512, bit-identical to `quant::quantize` (ggml's semantics).
///
/// Why: a decode step quantizes each MoE layer's input and its k experts' hidden rows; the scalar quantizer
/// (a libm rounding call per value) took ~100 µs of a ~520 µs V2-Lite layer on the 16-core Xeon, on one thread
/// while the others waited. Every float operation here is the scalar one (same products, same divisions, same
/// rounding rule), so the bytes are the same; tests/parity/test_avx512_kernels.cpp compares them.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hmoe/cpu/avx512/shims.hpp"
#include "hmoe/cpu/x86/intrinsics.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/k_blocks.hpp"
#include "hmoe/quant/legacy_blocks.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hmoe::cpu::avx512 {

namespace detail {

HMOE_TARGET_AVX512 inline __m512 abs_ps(__m512 v) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF)));
}

/// The largest lane.
HMOE_TARGET_AVX512 inline float hmax(__m512 v) {
  alignas(64) float f[16];
  _mm512_store_ps(f, v);
  float m = f[0];
  for (int i = 1; i < 16; ++i) m = f[i] > m ? f[i] : m;
  return m;
}

/// std::round: to nearest, ties away from zero. trunc(v) + sign(v) where the dropped fraction is ≥ 0.5; the
/// fraction v - trunc(v) is exact, so this is the rounding of v itself (adding 0.5 first is not: it rounds).
/// (Rounding immediates here leave out _MM_FROUND_NO_EXC: SIMDe 0.7.4 misreads that bit as a scale.)
HMOE_TARGET_AVX512 inline __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO);
  const __mmask16 up = _mm512_cmp_ps_mask(abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(_mm512_set1_ps(1.0f)),
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int>(0x80000000u)))));
  return _mm512_mask_add_ps(t, up, t, one);
}

/// 16 lanes holding whole numbers as int32.
HMOE_TARGET_AVX512 inline __m512i whole_to_int32(__m512 v) {
#if defined(HMOE_EMULATE_X86)  // SIMDe 0.7.4 has no vcvtps2dq
  alignas(64) float f[16];
  alignas(64) std::int32_t i[16];
  _mm512_store_ps(f, v);
  for (int l = 0; l < 16; ++l) i[l] = static_cast<std::int32_t>(f[l]);
  return _mm512_load_si512(i);
#else
  return _mm512_cvtps_epi32(v);
#endif
}

/// 16 int32 lanes (each in [-128, 127]) as 16 bytes at out.
HMOE_TARGET_AVX512 inline void store_int8(std::int8_t* out, __m512i v) {
#if defined(HMOE_EMULATE_X86)  // SIMDe 0.7.4 has no vpmovdb
  alignas(64) std::int32_t i[16];
  _mm512_store_si512(i, v);
  for (int l = 0; l < 16; ++l) out[l] = static_cast<std::int8_t>(i[l]);
#else
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(v));
#endif
}

}  // namespace detail

/// One Q8_0 block from 32 floats: quant::quantize(x, BlockQ8_0&), bit for bit.
HMOE_TARGET_AVX512 inline void quantize_block(const float* x, quant::BlockQ8_0& y) {
  const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
  const float amax = detail::hmax(_mm512_max_ps(detail::abs_ps(x0), detail::abs_ps(x1)));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = quant::fp32_to_fp16(d);
  const __m512 s = _mm512_set1_ps(id);
  detail::store_int8(y.qs, detail::whole_to_int32(detail::round_half_away(_mm512_mul_ps(x0, s))));
  detail::store_int8(y.qs + 16, detail::whole_to_int32(detail::round_half_away(_mm512_mul_ps(x1, s))));
}

/// One Q8_K block from 256 floats: quant::quantize(x, BlockQ8_K&), bit for bit (the signed value of largest
/// magnitude, the first on ties, maps to -127; values round to nearest even, as ggml's nearest_int).
HMOE_TARGET_AVX512 inline void quantize_block(const float* x, quant::BlockQ8_K& y) {
  __m512 m = _mm512_setzero_ps();
  for (int j = 0; j < quant::qk_k; j += 16) m = _mm512_max_ps(m, detail::abs_ps(_mm512_loadu_ps(x + j)));
  const float amax = detail::hmax(m);
  if (amax == 0.0f) {
    std::memset(&y, 0, sizeof y);
    return;
  }
  float max = 0.0f;  // the first lane whose magnitude is amax
  for (int j = 0; j < quant::qk_k; j += 16) {
    const __mmask16 hit = _mm512_cmp_ps_mask(detail::abs_ps(_mm512_loadu_ps(x + j)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
    if (hit) {
      max = x[j + std::countr_zero(static_cast<unsigned>(hit))];
      break;
    }
  }
  const float iscale = -127.0f / max;
  const __m512 s = _mm512_set1_ps(iscale);
  const __m512i top = _mm512_set1_epi32(127);
  for (int k = 0; k < quant::qk_k / 16; ++k) {
    const __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), s),
                                          _MM_FROUND_TO_NEAREST_INT);
    const __m512i q = _mm512_min_epi32(detail::whole_to_int32(v), top);
    detail::store_int8(y.qs + 16 * k, q);
    y.bsums[k] = static_cast<std::int16_t>(x86::hsum(q));
  }
  y.d = 1.0f / iscale;
}

/// n floats (a multiple of the block's size) to blocks at out, which need not be aligned.
template <class Block>
void quantize_row(const float* x, std::int64_t n, std::byte* out) {
  for (std::int64_t i = 0; i < n / Block::block_elems; ++i) {
    Block b;
    quantize_block(x + i * Block::block_elems, b);
    std::memcpy(out + i * static_cast<std::int64_t>(sizeof(Block)), &b, sizeof b);
  }
}

}  // namespace hmoe::cpu::avx512

#pragma GCC diagnostic pop
