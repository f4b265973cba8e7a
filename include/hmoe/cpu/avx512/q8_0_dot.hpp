/// \file
/// \brief Dot products of Q8_0 weight rows with up to NT Q8_0 activation rows, AVX-512 VNNI on 256-bit vectors.
///
/// A Q8_0 block is 32 values, so one block fills a 256-bit vector. Both sides are signed; `dpbusd` wants one
/// unsigned side, so it gets |w| and the activation with w's sign moved onto it (a zero w zeroes it, which
/// changes nothing since |w| is 0 too). Negating an activation byte of −128 would wrap, but Q8_0 activations
/// from ggml's quantizer (and `quantize_activation_row`) lie in [−127, 127]. Weights may be −128: |−128| is 128
/// as an unsigned byte. Per block and token: y.d·d·Σ w·a in float, as ggml.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/avx512/shims.hpp"
#include "hmoe/quant/legacy_blocks.hpp"

// GCC 12's `_mm512_undefined_*` self-initialize, which -Wall's -Winit-self reports in every kernel that
// inlines an intrinsic built on them (GCC bug 105593, fixed in 12.3/13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hmoe::cpu::avx512::detail {

/// The 32 values of the Q8_0 block at blk, value j in byte j.
HMOE_TARGET_AVX512 inline __m256i unpack_q8_0(const std::byte* blk) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(quant::BlockQ8_0, qs)));
}

/// y[t * ldy] = row · activation row t, for t < NT: a row of 32-value `Block`s, each starting with its f16 scale,
/// whose values `unpack` gives as signed bytes, against Q8_0 activation rows. Q8_0 and Q5_0 weights share it.
template <class Block, int NT, __m256i (*Unpack)(const std::byte*)>
HMOE_TARGET_AVX512 void block32_row(const std::byte* w, std::int64_t blocks, const std::byte* act,
                                    std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  constexpr std::size_t block_bytes = sizeof(Block);
  constexpr std::size_t act_block_bytes = sizeof(quant::BlockQ8_0);
  constexpr std::size_t act_qs_at = offsetof(quant::BlockQ8_0, qs);

  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();

  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::byte* blk = w + b * static_cast<std::int64_t>(block_bytes);
    prefetch_ahead(blk);
    const float d = half_to_float(load_scalar<std::uint16_t>(blk));
    const __m256i q = Unpack(blk);
    const __m256i magnitude = _mm256_abs_epi8(q);

    const std::byte* a = act + b * static_cast<std::int64_t>(act_block_bytes);
    for (int t = 0; t < NT; ++t, a += act_row_bytes) {
      const __m256i signed_a =
          _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + act_qs_at)), q);
      const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), magnitude, signed_a);
      const __m256 scale = _mm256_set1_ps(d * half_to_float(load_scalar<std::uint16_t>(a)));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) y[t * ldy] = hsum(acc[t]);
}

/// y[t * ldy] = row · activation row t, for t < NT.
template <int NT>
HMOE_TARGET_AVX512 void q8_0_row(const std::byte* w, std::int64_t blocks, const std::byte* act,
                                 std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  block32_row<quant::BlockQ8_0, NT, unpack_q8_0>(w, blocks, act, act_row_bytes, y, ldy);
}

}  // namespace hmoe::cpu::avx512::detail

#pragma GCC diagnostic pop
