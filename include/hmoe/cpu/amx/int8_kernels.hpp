/// \file
/// \brief `PackedInt8` products: TDPBSSD tiles for many tokens, VPDPBUSD on the same B tiles for few.
///
/// Tile path: per 2 token blocks x 2 panels, the four C tiles accumulate the whole K (one A and one B load per
/// dot product pair), then y = float(C) * token scale * channel scale.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/amx/packed_int8.hpp"
#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"

namespace hmoe::cpu::amx {

namespace detail {

inline constexpr TileConfig int8_tile_config = kernel_tile_config(64, 16);

/// C tile (TI, PI) to y: 16 tokens x 16 channels of int32 sums, scaled.
template <int TI, int PI>
HMOE_TARGET_AMX void int8_store(const PackedInt8& w, const TokenBlock& tb, std::int64_t p, std::int64_t t0,
                                std::int64_t row_end, float* y, std::int64_t ldy) {
  alignas(64) std::int32_t c[token_rows][panel_rows];
  tile_store<tile_c<TI, PI>>(c, 64);
  const std::int64_t r0 = (p + PI) * panel_rows;
  const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - r0));
  if (n <= 0) return;
  const __m512 sw = _mm512_loadu_ps(w.scales() + r0);
  for (int r = 0; r < tb.count; ++r) {
    const __m512 s = _mm512_mul_ps(sw, _mm512_set1_ps(activation_scale(w, tb.row(r))));
    const __m512 v = _mm512_mul_ps(vec::to_float(_mm512_loadu_si512(c[r])), s);
    vec::store_first(y + (t0 + TI * token_rows + r) * ldy + r0, v, n);
  }
}

template <int NT, int NP>
HMOE_TARGET_AMX void int8_tile_block(const PackedInt8& w, const TokenBlock* tb, std::int64_t p, std::int64_t t0,
                                     std::int64_t row_end, float* y, std::int64_t ldy) {
  tile_zero<tile_c<0, 0>>();
  if constexpr (NP == 2) tile_zero<tile_c<0, 1>>();
  if constexpr (NT == 2) tile_zero<tile_c<1, 0>>();
  if constexpr (NT == 2 && NP == 2) tile_zero<tile_c<1, 1>>();
  for (std::int64_t c = 0; c < w.chunks(); ++c) {
    const std::size_t off = static_cast<std::size_t>(c * PackedInt8::chunk_k);
    tile_load<tile_a0>(tb[0].base + off, tb[0].stride);
    if constexpr (NT == 2) tile_load<tile_a1>(tb[1].base + off, tb[1].stride);
    tile_load<tile_b0>(w.chunk(p, c), 64);
    if constexpr (NP == 2) tile_load<tile_b1>(w.chunk(p + 1, c), 64);
    tile_dpbssd<tile_c<0, 0>, tile_a0, tile_b0>();
    if constexpr (NP == 2) tile_dpbssd<tile_c<0, 1>, tile_a0, tile_b1>();
    if constexpr (NT == 2) tile_dpbssd<tile_c<1, 0>, tile_a1, tile_b0>();
    if constexpr (NT == 2 && NP == 2) tile_dpbssd<tile_c<1, 1>, tile_a1, tile_b1>();
  }
  int8_store<0, 0>(w, tb[0], p, t0, row_end, y, ldy);
  if constexpr (NP == 2) int8_store<0, 1>(w, tb[0], p, t0, row_end, y, ldy);
  if constexpr (NT == 2) int8_store<1, 0>(w, tb[1], p, t0, row_end, y, ldy);
  if constexpr (NT == 2 && NP == 2) int8_store<1, 1>(w, tb[1], p, t0, row_end, y, ldy);
}

/// NT (1..4) tokens of one panel: each B row (4 K values x 16 channels) is loaded once for all of them.
template <int NT>
HMOE_TARGET_AVX512 void int8_vector_block(const PackedInt8& w, std::int64_t p, const std::byte* act,
                                          std::size_t stride, std::int64_t t0, int n, float* y, std::int64_t ldy) {
  __m512i acc[NT];
  const std::byte* a[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_si512();
    a[t] = act + static_cast<std::size_t>(t0 + t) * stride;
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));  // int8 + 128 as uint8
  for (std::int64_t c = 0; c < w.chunks(); ++c) {
    const std::byte* b = w.chunk(p, c);
    const std::size_t off = static_cast<std::size_t>(c * PackedInt8::chunk_k);
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

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedInt8& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  const std::size_t row_bytes = activation_row_bytes(w);
  check_matmul_args("hmoe::cpu::amx::matmul_tiles(PackedInt8)", w.rows(), row_begin, row_end, act, act_row_bytes,
                    row_bytes, tokens, y, ldy);
  if (tokens == 0 || row_end == row_begin) return;
  std::byte* pad = tokens % token_rows ? padding_buffer(row_bytes) : nullptr;
  const TileScope scope(detail::int8_tile_config);
  const std::int64_t pe = panel_count(row_end);
  for (std::int64_t p = row_begin / panel_rows; p < pe; p += 2) {
    const bool two_panels = p + 1 < pe;
    for (std::int64_t t0 = 0; t0 < tokens; t0 += 2 * token_rows) {
      TokenBlock tb[2];
      tb[0] = token_block(act, act_row_bytes, tokens, t0, row_bytes, pad);
      const bool two_blocks = t0 + token_rows < tokens;
      if (two_blocks) tb[1] = token_block(act, act_row_bytes, tokens, t0 + token_rows, row_bytes, pad);
      if (two_blocks && two_panels) detail::int8_tile_block<2, 2>(w, tb, p, t0, row_end, y, ldy);
      else if (two_blocks) detail::int8_tile_block<2, 1>(w, tb, p, t0, row_end, y, ldy);
      else if (two_panels) detail::int8_tile_block<1, 2>(w, tb, p, t0, row_end, y, ldy);
      else detail::int8_tile_block<1, 1>(w, tb, p, t0, row_end, y, ldy);
    }
  }
}

/// The same product with AVX-512 VNNI on the packed B tiles, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedInt8& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  check_matmul_args("hmoe::cpu::amx::matmul_vector(PackedInt8)", w.rows(), row_begin, row_end, act, act_row_bytes,
                    activation_row_bytes(w), tokens, y, ldy);
  for (std::int64_t p = row_begin / panel_rows; p < panel_count(row_end); ++p) {
    const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - p * panel_rows));
    std::int64_t t0 = 0;
    for (; t0 + 4 <= tokens; t0 += 4) detail::int8_vector_block<4>(w, p, act, act_row_bytes, t0, n, y, ldy);
    switch (tokens - t0) {
      case 3: detail::int8_vector_block<3>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      case 2: detail::int8_vector_block<2>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      case 1: detail::int8_vector_block<1>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      default: break;
    }
  }
}

}  // namespace hmoe::cpu::amx
