/// \file
/// \brief Dot products of Q4_K, Q5_K and Q6_K weight rows with up to NT Q8_K activation rows, AVX-512 VNNI.
///
/// Each 256-value weight block is unpacked once into four vectors of 64 unsigned bytes holding values
/// 64c .. 64c+63 in order, so they line up with contiguous Q8_K bytes, and is then used for every token.
/// Per 64 values and token: `dpbusd` (u8 weight × s8 activation, 4 products per int32 lane) and `dpwssd` by
/// a vector of sub-block scales. That second step multiplies only the low 16 bits of each lane by the scale
/// (the high half meets a 0): a lane of 4 products is at most 4·63·128 = 32256 in magnitude, so it fits.
/// Everything up to the per-block float scale is exact integer arithmetic, as in ggml:
///   Q4_K/Q5_K: y.d·(d·Σ_j sc_j Σ q·a − dmin·Σ_j m_j·(bsums[2j] + bsums[2j+1]))
///   Q6_K:      y.d·d·(Σ_j sc_j Σ q·a − 32·Σ_j sc_j·bsums[j]), q = the unsigned 6-bit field.
/// Q4_K/Q5_K lanes stay below 2^24, so their conversion to float is exact; a Q6_K lane can pass 2^24 only
/// when nearly every scale, value and activation is extreme, and then rounds once (relative 6e-8).
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/avx512/shims.hpp"
#include "hmoe/quant/k_blocks.hpp"

// GCC 12's `_mm512_undefined_*` self-initialize, which -Wall's -Winit-self reports in every kernel that
// inlines an intrinsic built on them (GCC bug 105593, fixed in 12.3/13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hmoe::cpu::avx512::detail {

inline constexpr std::size_t q8k_qs = offsetof(quant::BlockQ8_K, qs);
inline constexpr std::size_t q8k_bsums = offsetof(quant::BlockQ8_K, bsums);

/// Σ over the block's 256 values of scale · weight · activation, as 16 int32 lanes added to `init`.
/// Two accumulation chains halve the dependency latency a single token would otherwise wait on.
HMOE_TARGET_AVX512 inline __m512i k_block_dot(const __m512i (&w)[4], const __m512i (&s)[4], const std::byte* qs,
                                              __m512i init) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i even = _mm512_dpwssd_epi32(init, _mm512_dpbusd_epi32(zero, w[0], load512(qs)), s[0]);
  __m512i odd = _mm512_dpwssd_epi32(zero, _mm512_dpbusd_epi32(zero, w[1], load512(qs + 64)), s[1]);
  even = _mm512_dpwssd_epi32(even, _mm512_dpbusd_epi32(zero, w[2], load512(qs + 128)), s[2]);
  odd = _mm512_dpwssd_epi32(odd, _mm512_dpbusd_epi32(zero, w[3], load512(qs + 192)), s[3]);
  return _mm512_add_epi32(even, odd);
}

/// 16 bytes as 16 int16 lanes (sign-extended), lanes 16..31 zero.
HMOE_TARGET_AVX512 inline __m512i widen_16_bytes(__m128i b) {
  return _mm512_cvtepi8_epi16(_mm256_set_m128i(_mm_setzero_si128(), b));
}

/// dpwssd operand that multiplies int32 lane i by the int16 lane idx[i] of e: the index sits in the low half
/// of each int32 of `idx`, and the high halves are zeroed so they meet nothing.
HMOE_TARGET_AVX512 inline __m512i lane_scales(__m512i idx, __m512i e) {
  return _mm512_maskz_permutexvar_epi16(0x55555555u, idx, e);
}

/// Q4_K (FifthBit = false) or Q5_K (true): y[t * ldy] = row · activation row t, for t < NT.
template <int NT, bool FifthBit>
HMOE_TARGET_AVX512 void q45_k_row(const std::byte* w, std::int64_t blocks, const std::byte* act,
                                  std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  using Block = std::conditional_t<FifthBit, quant::BlockQ5_K, quant::BlockQ4_K>;
  constexpr std::size_t block_bytes = sizeof(Block);
  constexpr std::size_t scales_at = offsetof(Block, scales), qs_at = offsetof(Block, qs);

  const __m512i nibble = _mm512_set1_epi8(0x0F);
  // Upper 32 bytes of each weight vector take the high nibbles: shift their 16-bit lanes by 4.
  const __m512i hi_shift = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4 << 16 | 4, 4 << 16 | 4, 4 << 16 | 4,
                                             4 << 16 | 4, 4 << 16 | 4, 4 << 16 | 4, 4 << 16 | 4, 4 << 16 | 4);
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  // Int16 lanes 2i and 2i+1 of the bsums both meet min i (the int16 lanes 8.. of the widened scale bytes).
  const __m512i min_idx = _mm512_setr_epi32(0x80008, 0x90009, 0xA000A, 0xB000B, 0xC000C, 0xD000D, 0xE000E, 0xF000F,
                                            0x80008, 0x90009, 0xA000A, 0xB000B, 0xC000C, 0xD000D, 0xE000E, 0xF000F);

  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();

  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::byte* blk = w + b * static_cast<std::int64_t>(block_bytes);
    prefetch_ahead(blk);
    const __m512 d = _mm512_set1_ps(half_to_float(load_scalar<std::uint16_t>(blk)));
    const __m512 neg_dmin = _mm512_set1_ps(-half_to_float(load_scalar<std::uint16_t>(blk + 2)));

    // Eight 6-bit scales and eight 6-bit mins, packed in 12 bytes (see quant::detail::k4_scale_min),
    // unpacked four at a time as bytes of 32-bit words.
    const auto s0 = load_scalar<std::uint32_t>(blk + scales_at);
    const auto s1 = load_scalar<std::uint32_t>(blk + scales_at + 4);
    const auto s2 = load_scalar<std::uint32_t>(blk + scales_at + 8);
    const std::uint32_t sc_lo = s0 & 0x3F3F3F3Fu, m_lo = s1 & 0x3F3F3F3Fu;
    const std::uint32_t sc_hi = (s2 & 0x0F0F0F0Fu) | ((s0 >> 2) & 0x30303030u);
    const std::uint32_t m_hi = ((s2 >> 4) & 0x0F0F0F0Fu) | ((s1 >> 2) & 0x30303030u);
    const __m512i e = widen_16_bytes(_mm_set_epi32(static_cast<int>(m_hi), static_cast<int>(m_lo),
                                                   static_cast<int>(sc_hi), static_cast<int>(sc_lo)));
    const __m512i mins = _mm512_permutexvar_epi16(min_idx, e);

    __m512i wv[4], sv[4];
    [[maybe_unused]] __m512i qh;
    if constexpr (FifthBit) qh = load_broadcast256(blk + offsetof(quant::BlockQ5_K, qh));
    for (int c = 0; c < 4; ++c) {
      // Values 64c .. 64c+31 are the low nibbles of qs[32c ..], 64c+32 .. 64c+63 their high nibbles.
      const __m512i q = load_broadcast256(blk + qs_at + 32 * c);
      wv[c] = _mm512_and_si512(_mm512_srlv_epi16(q, hi_shift), nibble);
      if constexpr (FifthBit) {
        // Their fifth bits: bit 2c (low half) and 2c+1 (high half) of qh[0 .. 31].
        const __m512i bit = _mm512_setr_epi32(0x01010101 << (2 * c), 0x01010101 << (2 * c), 0x01010101 << (2 * c),
                                              0x01010101 << (2 * c), 0x01010101 << (2 * c), 0x01010101 << (2 * c),
                                              0x01010101 << (2 * c), 0x01010101 << (2 * c), 0x02020202 << (2 * c),
                                              0x02020202 << (2 * c), 0x02020202 << (2 * c), 0x02020202 << (2 * c),
                                              0x02020202 << (2 * c), 0x02020202 << (2 * c), 0x02020202 << (2 * c),
                                              0x02020202 << (2 * c));
        wv[c] = _mm512_mask_add_epi8(wv[c], _mm512_test_epi8_mask(qh, bit), wv[c], _mm512_set1_epi8(16));
      }
      // Int32 lanes 0..7 are sub-block 2c, lanes 8..15 sub-block 2c+1.
      sv[c] = lane_scales(_mm512_add_epi32(halves, _mm512_set1_epi32(2 * c)), e);
    }

    const std::byte* a = act + b * static_cast<std::int64_t>(sizeof(quant::BlockQ8_K));
    for (int t = 0; t < NT; ++t, a += act_row_bytes) {
      const __m512 ad = _mm512_set1_ps(load_scalar<float>(a));
      const __m512i dot = k_block_dot(wv, sv, a + q8k_qs, _mm512_setzero_si512());
      const __m512i min_dot = _mm512_dpwssd_epi32(_mm512_setzero_si512(), load_zext256(a + q8k_bsums), mins);
      acc[t] = _mm512_fmadd_ps(to_float(dot), _mm512_mul_ps(d, ad), acc[t]);
      acc[t] = _mm512_fmadd_ps(to_float(min_dot), _mm512_mul_ps(neg_dmin, ad), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ldy] = x86::hsum(acc[t]);
}

/// Q6_K: y[t * ldy] = row · activation row t, for t < NT.
template <int NT>
HMOE_TARGET_AVX512 void q6_k_row(const std::byte* w, std::int64_t blocks, const std::byte* act,
                                 std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  using Block = quant::BlockQ6_K;
  constexpr std::size_t block_bytes = sizeof(Block);

  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const __m512i top_bits = _mm512_set1_epi8(0x30);
  // The 2-bit fields of qh[j] for the low/high half of weight vector 2c+h sit at bits 4h and 4h+2; moved to
  // bits 4..5 by a left shift of 4 and 2 (h = 0) or a right shift of 0 and 2 (h = 1).
  const __m512i shift_h0 = _mm512_setr_epi32(0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004,
                                             0x20002, 0x20002, 0x20002, 0x20002, 0x20002, 0x20002, 0x20002, 0x20002);
  const __m512i shift_h1 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0x20002, 0x20002, 0x20002, 0x20002, 0x20002,
                                             0x20002, 0x20002, 0x20002);
  const __m512i quarters = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);

  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();

  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::byte* blk = w + b * static_cast<std::int64_t>(block_bytes);
    prefetch_ahead(blk);
    const __m512 d = _mm512_set1_ps(half_to_float(load_scalar<std::uint16_t>(blk + offsetof(Block, d))));
    const __m512i e = widen_16_bytes(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(Block, scales))));
    // −32·sc_j per bsum lane: the −32 offset of every 6-bit value, applied through the activations' sums.
    const __m512i offset_scales = _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16(e, 5));

    __m512i wv[4], sv[4];
    for (int c = 0; c < 2; ++c) {
      const __m512i lo = load512(blk + offsetof(Block, ql) + 64 * c);
      const __m512i hi = load_broadcast256(blk + offsetof(Block, qh) + 32 * c);
      // Vector 2c holds values 128c .. 128c+63 (low nibbles of ql), vector 2c+1 the next 64 (high nibbles).
      wv[2 * c] = _mm512_or_si512(_mm512_and_si512(lo, nibble),
                                  _mm512_and_si512(_mm512_sllv_epi16(hi, shift_h0), top_bits));
      wv[2 * c + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo, 4), nibble),
                                      _mm512_and_si512(_mm512_srlv_epi16(hi, shift_h1), top_bits));
    }
    // Weight vector q covers sub-blocks 4q .. 4q+3 of 16 values, four int32 lanes each.
    for (int q = 0; q < 4; ++q) sv[q] = lane_scales(_mm512_add_epi32(quarters, _mm512_set1_epi32(4 * q)), e);

    const std::byte* a = act + b * static_cast<std::int64_t>(sizeof(quant::BlockQ8_K));
    for (int t = 0; t < NT; ++t, a += act_row_bytes) {
      const __m512 ad = _mm512_set1_ps(load_scalar<float>(a));
      const __m512i offset = _mm512_dpwssd_epi32(_mm512_setzero_si512(), load_zext256(a + q8k_bsums), offset_scales);
      const __m512i dot = k_block_dot(wv, sv, a + q8k_qs, offset);
      acc[t] = _mm512_fmadd_ps(to_float(dot), _mm512_mul_ps(d, ad), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ldy] = x86::hsum(acc[t]);
}

}  // namespace hmoe::cpu::avx512::detail

#pragma GCC diagnostic pop
