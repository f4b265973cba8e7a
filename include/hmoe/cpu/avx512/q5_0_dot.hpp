/// \file
/// \brief Dot products of Q5_0 weight rows with up to NT Q8_0 activation rows, AVX-512 VNNI on 256-bit vectors.
///
/// A Q5_0 block is 32 values, d·(q − 16) with q = nibble | fifth bit << 4: the 16 `qs` bytes hold values 0..15
/// in their low nibbles and 16..31 in their high ones, bit j of the 32-bit `qh` is value j's fifth bit. One
/// block unpacks into a 256-bit vector of signed bytes q − 16 in [−16, 15]: the nibbles, less 16 where the
/// fifth bit is clear (`qh` is used directly as the byte mask of a blend). From there it is block32_row, as Q8_0: `dpbusd`
/// gets |w| and the activation with w's sign moved onto it, which is exact since Q8_0 activations lie in
/// [−127, 127]. Per block and token: y.d·d·Σ w·a in float, as ggml.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/avx512/q8_0_dot.hpp"
#include "hmoe/cpu/avx512/shims.hpp"
#include "hmoe/quant/legacy_blocks.hpp"

// GCC 12's `_mm512_undefined_*` self-initialize, which -Wall's -Winit-self reports in every kernel that
// inlines an intrinsic built on them (GCC bug 105593, fixed in 12.3/13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hmoe::cpu::avx512::detail {

/// The 32 values of the Q5_0 block at blk as signed bytes q − 16, value j in byte j.
HMOE_TARGET_AVX512 inline __m256i unpack_q5_0(const std::byte* blk) {
  const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(quant::BlockQ5_0, qs)));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(qs), _mm_srli_epi16(qs, 4), 1);
  const __m256i nibbles = _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
  // qh is little-endian in the file, as x86 loads it: bit j is value j's fifth bit.
  const auto high = static_cast<__mmask32>(load_scalar<std::uint32_t>(blk + offsetof(quant::BlockQ5_0, qh)));
  return _mm256_mask_blend_epi8(high, _mm256_sub_epi8(nibbles, _mm256_set1_epi8(16)), nibbles);
}

/// y[t * ldy] = row · activation row t, for t < NT.
template <int NT>
HMOE_TARGET_AVX512 void q5_0_row(const std::byte* w, std::int64_t blocks, const std::byte* act,
                                 std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  block32_row<quant::BlockQ5_0, NT, unpack_q5_0>(w, blocks, act, act_row_bytes, y, ldy);
}

}  // namespace hmoe::cpu::avx512::detail

#pragma GCC diagnostic pop
