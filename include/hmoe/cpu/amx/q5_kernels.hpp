/// \file
/// \brief `PackedQ5Blocks` x Q8_0 products: VPDPBUSD straight from the 6-bit panels for few tokens (decode
/// reads the fewest bytes), and for many the Q8_0 tile kernel on each panel unpacked to int8 (q8_kernels.hpp).
///
/// y = sum over 32-blocks of d_w * d_a * P, P the int32 dot product of the block's signed weights and int8
/// activations: the same integers and the same f32 operations as `PackedQ8Blocks` on the file's Q5_0.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "hmoe/cpu/amx/drivers.hpp"
#include "hmoe/cpu/amx/packed_q5.hpp"
#include "hmoe/cpu/amx/packed_q8.hpp"
#include "hmoe/cpu/amx/q8_kernels.hpp"
#include "hmoe/cpu/amx/vec.hpp"

namespace hmoe::cpu::amx {

namespace detail {

/// The signed weights of VNNI groups j (low nibbles) and j + 4 (high nibbles) of one block.
struct Q5Groups {
  __m512i lo, hi;
};

HMOE_TARGET_AVX512 inline Q5Groups q5_groups(const Q5PanelBlock& pb, int j) {
  const __m512i low = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(16);
  const __m512i v = _mm512_loadu_si512(pb.qs[j]);
  const __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  return {_mm512_mask_sub_epi8(lo, static_cast<__mmask64>(pb.negative[j]), lo, sixteen),
          _mm512_mask_sub_epi8(hi, static_cast<__mmask64>(pb.negative[j + 4]), hi, sixteen)};
}

/// NT (1..4) tokens of one panel: VPDPBUSD of activations + 128 (unsigned) and the signed weights, then
/// 128 * (row sum) subtracted.
template <int NT>
HMOE_TARGET_AVX512 void q5_vector_block(const PackedQ5Blocks& w, std::int64_t p, const std::byte* act,
                                        std::size_t stride, std::int64_t t0, int n, float* y, std::int64_t ldy) {
  __m512 acc[NT];
  const std::byte* a[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    a[t] = act + static_cast<std::size_t>(t0 + t) * stride;
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (std::int64_t b = 0; b < w.blocks(); ++b) {
    const Q5PanelBlock& pb = w.block(p, b);
    __m512i sum[NT];
    for (int t = 0; t < NT; ++t) sum[t] = _mm512_setzero_si512();
    const std::size_t off = static_cast<std::size_t>(b) * q8_0_bytes + 2;  // past the block's f16 scale
    for (int j = 0; j < 4; ++j) {
      const Q5Groups g = q5_groups(pb, j);
      for (int t = 0; t < NT; ++t) {
        sum[t] = _mm512_dpbusd_epi32(sum[t], _mm512_xor_si512(vec::broadcast4(a[t] + off + 4 * j), flip), g.lo);
        sum[t] = _mm512_dpbusd_epi32(sum[t], _mm512_xor_si512(vec::broadcast4(a[t] + off + 16 + 4 * j), flip), g.hi);
      }
    }
    q8_finish_block<NT>(sum, vec::shift_left32<7>(vec::int16_to_int32(pb.sum)), vec::halves_to_float(pb.d), a,
                        off - 2, acc);
  }
  for (int t = 0; t < NT; ++t) vec::store_first(y + (t0 + t) * ldy + p * panel_rows, acc[t], n);
}

struct Q5Vector {
  using Matrix = PackedQ5Blocks;
  template <int NT>
  [[gnu::always_inline]] HMOE_TARGET_AVX512 static void vector_block(const PackedQ5Blocks& w, std::int64_t p,
                                                                     const std::byte* act, std::size_t stride,
                                                                     std::int64_t t0, int n, float* y,
                                                                     std::int64_t ldy) {
    q5_vector_block<NT>(w, p, act, stride, t0, n, y, ldy);
  }
};

/// Panel p's blocks widened to the Q8_0 tile kernel's int8 blocks, into a per-thread scratch.
HMOE_TARGET_AVX512 inline const Q8PanelBlock* q5_unpack_panel(const PackedQ5Blocks& w, std::int64_t p) {
  thread_local std::vector<Q8PanelBlock> panel;
  panel.resize(static_cast<std::size_t>(w.blocks()));
  for (std::int64_t b = 0; b < w.blocks(); ++b) {
    const Q5PanelBlock& src = w.block(p, b);
    Q8PanelBlock& dst = panel[static_cast<std::size_t>(b)];
    for (int j = 0; j < 4; ++j) {
      const Q5Groups g = q5_groups(src, j);
      _mm512_storeu_si512(dst.q[j], g.lo);
      _mm512_storeu_si512(dst.q[j + 4], g.hi);
    }
    _mm512_storeu_ps(dst.d, vec::halves_to_float(src.d));
    _mm512_storeu_si512(dst.bias, vec::shift_left32<7>(vec::int16_to_int32(src.sum)));
  }
  return panel.data();
}

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedQ5Blocks& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  detail::q8_tile_product("hmoe::cpu::amx::matmul_tiles(PackedQ5Blocks)", w,
                          [&](std::int64_t p) { return detail::q5_unpack_panel(w, p); }, row_begin, row_end, act,
                          act_row_bytes, tokens, y, ldy);
}

/// The same product with AVX-512 VNNI on the 6-bit panels, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedQ5Blocks& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  detail::vector_product<detail::Q5Vector>("hmoe::cpu::amx::matmul_vector(PackedQ5Blocks)", w, row_begin, row_end,
                                           act, act_row_bytes, tokens, y, ldy);
}

}  // namespace hmoe::cpu::amx
