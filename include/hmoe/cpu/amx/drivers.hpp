/// \file
/// \brief The loops over panels and token blocks that the packed kernels share, parameterized by a kernel
/// policy K (a struct of static members, so every instruction stays under its target attribute):
///
/// - `vector_product<K>` (every format): panels x groups of up to 4 tokens, calling
///   `K::vector_block<NT>(w, p, act, stride, t0, n, y, ldy)` for NT (1..4) tokens of panel p (n real channels).
/// - `tile_product<K>` (the plain formats, `PackedInt8` and `PackedBF16`): 2 token blocks x 2 panels at a time,
///   the four C tiles (of `K::Acc`) accumulating the whole K through `K::dot<C, A, B>()`; each is then read out
///   row by row: `K::Readout(w, r0)` for the 16 channels from r0, whose `(c, act_row)` gives the f32 y lanes of
///   one token from its C row c and its activation row.
///
/// Both also take `using Matrix` (the packed type) from K.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"
#include "hmoe/cpu/x86/intrinsics.hpp"

namespace hmoe::cpu::amx::detail {

/// The plain formats' config: A rows are one 64-byte K chunk, B tiles 16 rows of 4-byte VNNI groups.
inline constexpr TileConfig plain_tile_config = kernel_tile_config(64, 16);

/// C tile (TI, PI) to y: token block tb x panel p + PI (channels past row_end are not written).
template <class K, int TI, int PI>
HMOE_TARGET_AMX void tile_readout(const typename K::Matrix& w, const TokenBlock& tb, std::int64_t p, std::int64_t t0,
                                  std::int64_t row_end, float* y, std::int64_t ldy) {
  alignas(64) typename K::Acc c[token_rows][panel_rows];
  tile_store<tile_c<TI, PI>>(c, 64);
  const std::int64_t r0 = (p + PI) * panel_rows;
  const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - r0));
  if (n <= 0) return;
  const typename K::Readout out(w, r0);
  for (int r = 0; r < tb.count; ++r)
    vec::store_first(y + (t0 + TI * token_rows + r) * ldy + r0, out(c[r], tb.row(r)), n);
}

/// NT (1, 2) token blocks x NP (1, 2) panels from p, the whole K.
template <class K, int NT, int NP>
HMOE_TARGET_AMX void tile_block(const typename K::Matrix& w, const TokenBlock* tb, std::int64_t p, std::int64_t t0,
                                std::int64_t row_end, float* y, std::int64_t ldy) {
  tile_zero<tile_c<0, 0>>();
  if constexpr (NP == 2) tile_zero<tile_c<0, 1>>();
  if constexpr (NT == 2) tile_zero<tile_c<1, 0>>();
  if constexpr (NT == 2 && NP == 2) tile_zero<tile_c<1, 1>>();
  for (std::int64_t c = 0; c < w.chunks(); ++c) {
    const std::size_t off = static_cast<std::size_t>(c * K::Matrix::act_chunk_bytes);
    tile_load<tile_a0>(tb[0].base + off, tb[0].stride);
    if constexpr (NT == 2) tile_load<tile_a1>(tb[1].base + off, tb[1].stride);
    tile_load<tile_b0>(w.chunk(p, c), 64);
    if constexpr (NP == 2) tile_load<tile_b1>(w.chunk(p + 1, c), 64);
    K::template dot<tile_c<0, 0>, tile_a0, tile_b0>();
    if constexpr (NP == 2) K::template dot<tile_c<0, 1>, tile_a0, tile_b1>();
    if constexpr (NT == 2) K::template dot<tile_c<1, 0>, tile_a1, tile_b0>();
    if constexpr (NT == 2 && NP == 2) K::template dot<tile_c<1, 1>, tile_a1, tile_b1>();
  }
  tile_readout<K, 0, 0>(w, tb[0], p, t0, row_end, y, ldy);
  if constexpr (NP == 2) tile_readout<K, 0, 1>(w, tb[0], p, t0, row_end, y, ldy);
  if constexpr (NT == 2) tile_readout<K, 1, 0>(w, tb[1], p, t0, row_end, y, ldy);
  if constexpr (NT == 2 && NP == 2) tile_readout<K, 1, 1>(w, tb[1], p, t0, row_end, y, ldy);
}

/// matmul_tiles for a plain format; who names the entry point in argument errors.
template <class K>
HMOE_TARGET_AMX void tile_product(const char* who, const typename K::Matrix& w, std::int64_t row_begin,
                                  std::int64_t row_end, const std::byte* act, std::size_t act_row_bytes,
                                  std::int64_t tokens, float* y, std::int64_t ldy) {
  const std::size_t row_bytes = activation_row_bytes(w);
  check_matmul_args(who, w.rows(), row_begin, row_end, act, act_row_bytes, row_bytes, tokens, y, ldy);
  if (tokens == 0 || row_end == row_begin) return;
  std::byte* pad = tokens % token_rows ? padding_buffer(row_bytes) : nullptr;
  const TileScope scope(plain_tile_config);
  const std::int64_t pe = panel_count(row_end);
  for (std::int64_t p = row_begin / panel_rows; p < pe; p += 2) {
    const bool two_panels = p + 1 < pe;
    for (std::int64_t t0 = 0; t0 < tokens; t0 += 2 * token_rows) {
      TokenBlock tb[2];
      tb[0] = token_block(act, act_row_bytes, tokens, t0, row_bytes, pad);
      const bool two_blocks = t0 + token_rows < tokens;
      if (two_blocks) tb[1] = token_block(act, act_row_bytes, tokens, t0 + token_rows, row_bytes, pad);
      if (two_blocks && two_panels) tile_block<K, 2, 2>(w, tb, p, t0, row_end, y, ldy);
      else if (two_blocks) tile_block<K, 2, 1>(w, tb, p, t0, row_end, y, ldy);
      else if (two_panels) tile_block<K, 1, 2>(w, tb, p, t0, row_end, y, ldy);
      else tile_block<K, 1, 1>(w, tb, p, t0, row_end, y, ldy);
    }
  }
}

/// matmul_vector for any format; who names the entry point in argument errors.
template <class K>
HMOE_TARGET_AVX512 void vector_product(const char* who, const typename K::Matrix& w, std::int64_t row_begin,
                                       std::int64_t row_end, const std::byte* act, std::size_t act_row_bytes,
                                       std::int64_t tokens, float* y, std::int64_t ldy) {
  check_matmul_args(who, w.rows(), row_begin, row_end, act, act_row_bytes, activation_row_bytes(w), tokens, y, ldy);
  for (std::int64_t p = row_begin / panel_rows; p < panel_count(row_end); ++p) {
    const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - p * panel_rows));
    std::int64_t t0 = 0;
    for (; t0 + 4 <= tokens; t0 += 4) K::template vector_block<4>(w, p, act, act_row_bytes, t0, n, y, ldy);
    switch (tokens - t0) {
      case 3: K::template vector_block<3>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      case 2: K::template vector_block<2>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      case 1: K::template vector_block<1>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      default: break;
    }
  }
}

}  // namespace hmoe::cpu::amx::detail
