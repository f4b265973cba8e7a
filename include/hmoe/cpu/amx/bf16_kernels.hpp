/// \file
/// \brief `PackedBF16` products: TDPBF16PS tiles for many tokens, VDPBF16PS on the same B tiles for few.
///
/// The C tiles accumulate the whole K in f32 and are stored once, straight into y's layout.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/amx/drivers.hpp"
#include "hmoe/cpu/amx/packed_bf16.hpp"
#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"

namespace hmoe::cpu::amx {

namespace detail {

/// The kernel policy of `PackedBF16` for drivers.hpp.
struct BF16Kernel {
  using Matrix = PackedBF16;

  template <int C, int A, int B>
  [[gnu::always_inline]] HMOE_TARGET_AMX static void dot() {
    tile_dpbf16ps<C, A, B>();
  }

  using Acc = float;
  /// A C row is already y.
  struct Readout {
    HMOE_TARGET_AVX512 Readout(const PackedBF16&, std::int64_t) {}
    [[gnu::always_inline]] HMOE_TARGET_AVX512 __m512 operator()(const float* c, const std::byte*) const {
      return _mm512_loadu_ps(c);
    }
  };

  /// NT (1..4) tokens of one panel; each B row (a K pair x 16 channels) is loaded once for all of them.
  template <int NT>
  HMOE_TARGET_AVX512 static void vector_block(const PackedBF16& w, std::int64_t p, const std::byte* act,
                                              std::size_t stride, std::int64_t t0, int n, float* y,
                                              std::int64_t ldy) {
    __m512 acc[NT];
    const std::byte* a[NT];
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm512_setzero_ps();
      a[t] = act + static_cast<std::size_t>(t0 + t) * stride;
    }
    for (std::int64_t c = 0; c < w.chunks(); ++c) {
      const std::byte* b = w.chunk(p, c);
      const std::size_t off = static_cast<std::size_t>(c * PackedBF16::act_chunk_bytes);
      for (int g = 0; g < 16; ++g) {
        const __m512i wrow = _mm512_loadu_si512(b + 64 * g);
        for (int t = 0; t < NT; ++t) acc[t] = vec::dot_bf16(acc[t], vec::broadcast4(a[t] + off + 4 * g), wrow);
      }
    }
    for (int t = 0; t < NT; ++t) vec::store_first(y + (t0 + t) * ldy + p * panel_rows, acc[t], n);
  }
};

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedBF16& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  detail::tile_product<detail::BF16Kernel>("hmoe::cpu::amx::matmul_tiles(PackedBF16)", w, row_begin, row_end, act,
                                           act_row_bytes, tokens, y, ldy);
}

/// The same product with AVX-512 BF16 on the packed B tiles, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedBF16& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  detail::vector_product<detail::BF16Kernel>("hmoe::cpu::amx::matmul_vector(PackedBF16)", w, row_begin, row_end,
                                             act, act_row_bytes, tokens, y, ldy);
}

}  // namespace hmoe::cpu::amx
