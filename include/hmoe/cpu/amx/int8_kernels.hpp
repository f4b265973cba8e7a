/// \file
/// \brief `PackedInt8` products: TDPBSSD tiles for many tokens, VPDPBUSD on the same B tiles for few.
///
/// Tile path: per 2 token blocks x 2 panels, the four C tiles accumulate the whole K (one A and one B load per
/// dot product pair), then y = float(C) * token scale * channel scale.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/amx/drivers.hpp"
#include "hmoe/cpu/amx/packed_int8.hpp"
#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"

namespace hmoe::cpu::amx {

namespace detail {

/// The kernel policy of `PackedInt8` for drivers.hpp.
struct Int8Kernel {
  using Matrix = PackedInt8;

  template <int C, int A, int B>
  [[gnu::always_inline]] HMOE_TARGET_AMX static void dot() {
    tile_dpbssd<C, A, B>();
  }

  using Acc = std::int32_t;
  /// int32 sums x token scale x channel scale.
  struct Readout {
    const PackedInt8& w;
    __m512 sw;
    HMOE_TARGET_AVX512 Readout(const PackedInt8& m, std::int64_t r0) : w(m), sw(_mm512_loadu_ps(m.scales() + r0)) {}
    [[gnu::always_inline]] HMOE_TARGET_AVX512 __m512 operator()(const std::int32_t* c, const std::byte* row) const {
      const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(activation_scale(w, row)));
      return _mm512_mul_ps(vec::to_float(_mm512_loadu_si512(c)), s);
    }
  };

  /// NT (1..4) tokens of one panel: each B row (4 K values x 16 channels) is loaded once for all of them.
  template <int NT>
  HMOE_TARGET_AVX512 static void vector_block(const PackedInt8& w, std::int64_t p, const std::byte* act,
                                              std::size_t stride, std::int64_t t0, int n, float* y,
                                              std::int64_t ldy) {
    __m512i acc[NT];
    const std::byte* a[NT];
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm512_setzero_si512();
      a[t] = act + static_cast<std::size_t>(t0 + t) * stride;
    }
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));  // int8 + 128 as uint8
    for (std::int64_t c = 0; c < w.chunks(); ++c) {
      const std::byte* b = w.chunk(p, c);
      const std::size_t off = static_cast<std::size_t>(c * PackedInt8::act_chunk_bytes);
      for (int g = 0; g < 16; ++g) {
        const __m512i wrow = _mm512_loadu_si512(b + 64 * g);
        for (int t = 0; t < NT; ++t)
          acc[t] = _mm512_dpbusd_epi32(acc[t], _mm512_xor_si512(vec::broadcast4(a[t] + off + 4 * g), flip), wrow);
      }
    }
    const std::int64_t r0 = p * panel_rows;
    const __m512i bias = _mm512_loadu_si512(w.row_biases() + r0);
    const __m512 sw = _mm512_loadu_ps(w.scales() + r0);
    for (int t = 0; t < NT; ++t) {
      const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(activation_scale(w, a[t])));
      const __m512 v = _mm512_mul_ps(vec::to_float(_mm512_sub_epi32(acc[t], bias)), s);
      vec::store_first(y + (t0 + t) * ldy + r0, v, n);
    }
  }
};

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedInt8& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  detail::tile_product<detail::Int8Kernel>("hmoe::cpu::amx::matmul_tiles(PackedInt8)", w, row_begin, row_end, act,
                                           act_row_bytes, tokens, y, ldy);
}

/// The same product with AVX-512 VNNI on the packed B tiles, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedInt8& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  detail::vector_product<detail::Int8Kernel>("hmoe::cpu::amx::matmul_vector(PackedInt8)", w, row_begin, row_end,
                                             act, act_row_bytes, tokens, y, ldy);
}

}  // namespace hmoe::cpu::amx
