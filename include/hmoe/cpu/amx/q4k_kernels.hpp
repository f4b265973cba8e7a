/// \file
/// \brief `PackedQ4K` x Q8_K products: TDPBSSD tiles for many tokens, VPDPBUSD on the same nibbles for few.
///
/// y = sum over super-blocks of da * (d * sum_j sc_j * P_j - dmin * sum_j m_j * S_j), where P_j is the int32
/// dot product of sub-block j (32 values) and S_j the sum of its activations (from the Q8_K bsums). As every
/// sub-block has its own scale per row, a tile product covers one sub-block (K = 32: A 16 x 32 bytes, B 8 x 64);
/// its C tile is stored and scaled into an f32 super-block sum by AVX-512. To keep the TMUL fed for that
/// read-out, each step runs four products (2 token blocks x 2 panels, from 2 A and 2 B loads) before the four
/// C tiles are read out, and the nibbles of a 64-value chunk are unpacked once for both of its sub-blocks.
/// The mins term needs no tile work: 8 FMAs per token and super-block from the bsums.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hmoe/cpu/amx/packed_q4k.hpp"
#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"
#include "hmoe/quant/k_blocks.hpp"

namespace hmoe::cpu::amx {

namespace detail {

inline constexpr TileConfig q4k_tile_config = kernel_tile_config(32, 8);
inline constexpr std::size_t q8k_bytes = sizeof(quant::BlockQ8_K);
inline constexpr std::size_t q8k_qs = offsetof(quant::BlockQ8_K, qs);
inline constexpr std::size_t q8k_bsums = offsetof(quant::BlockQ8_K, bsums);

/// The Q8_K scale of super-block b of an activation row.
inline float q8k_scale(const std::byte* row, std::int64_t b) {
  float d;
  std::memcpy(&d, row + b * q8k_bytes, 4);
  return d;
}

/// da * (d * sb - dmin * sum_j m_j S_j) added to acc: the end of one super-block for one token.
HMOE_TARGET_AVX512 inline __m512 q4k_finish_block(const Q4KPanelBlock& w, const __m512* mins, const std::byte* row,
                                                  std::int64_t b, __m512 sb, __m512 acc) {
  std::int16_t bs[16];
  std::memcpy(bs, row + b * q8k_bytes + q8k_bsums, sizeof bs);
  __m512 msum = _mm512_setzero_ps();
  for (int j = 0; j < 8; ++j)
    msum = _mm512_fmadd_ps(mins[j], _mm512_set1_ps(static_cast<float>(bs[2 * j] + bs[2 * j + 1])), msum);
  const __m512 v = _mm512_fnmadd_ps(_mm512_loadu_ps(w.dmin), msum, _mm512_mul_ps(_mm512_loadu_ps(w.d), sb));
  return _mm512_fmadd_ps(_mm512_set1_ps(q8k_scale(row, b)), v, acc);
}

HMOE_TARGET_AVX512 inline void q4k_load_mins(const Q4KPanelBlock& w, __m512* mins) {
  for (int j = 0; j < 8; ++j) mins[j] = vec::bytes_to_float(w.m[j]);
}

/// Per (token block, panel): f32 accumulators of y and of the current super-block.
struct Q4KAcc {
  alignas(64) float y[token_rows][panel_rows];
  alignas(64) float sb[token_rows][panel_rows];
};

/// C tile (TI, PI) of sub-block j: sb += float(C) * sc_j, then the tile is zeroed for the next sub-block.
template <int TI, int PI>
HMOE_TARGET_AMX void q4k_scale_tile(Q4KAcc& a, const Q4KPanelBlock& w, int j, int count) {
  alignas(64) std::int32_t c[token_rows][panel_rows];
  tile_store<tile_c<TI, PI>>(c, 64);
  tile_zero<tile_c<TI, PI>>();
  const __m512 sc = vec::bytes_to_float(w.sc[j]);
  for (int r = 0; r < count; ++r)
    _mm512_storeu_ps(a.sb[r], _mm512_fmadd_ps(vec::to_float(_mm512_loadu_si512(c[r])), sc, _mm512_loadu_ps(a.sb[r])));
}

HMOE_TARGET_AVX512 inline void q4k_finish_tile_block(Q4KAcc& a, const Q4KPanelBlock& w, const TokenBlock& tb,
                                                     std::int64_t b) {
  __m512 mins[8];
  q4k_load_mins(w, mins);
  for (int r = 0; r < tb.count; ++r)
    _mm512_storeu_ps(a.y[r], q4k_finish_block(w, mins, tb.row(r), b, _mm512_loadu_ps(a.sb[r]), _mm512_loadu_ps(a.y[r])));
}

/// The nibbles of chunk c as two 8 x 64 B tiles: out[0] sub-block 2c, out[1] sub-block 2c + 1.
HMOE_TARGET_AVX512 inline void q4k_unpack_chunk(const Q4KPanelBlock& w, int c, std::uint8_t (*out)[8][64]) {
  const __m512i low = _mm512_set1_epi8(0x0F);
  for (int g = 0; g < 8; ++g) {
    const __m512i v = _mm512_loadu_si512(w.qs[c][g]);
    _mm512_storeu_si512(out[0][g], _mm512_and_si512(v, low));
    _mm512_storeu_si512(out[1][g], _mm512_and_si512(_mm512_srli_epi16(v, 4), low));
  }
}

template <int NT, int NP>
HMOE_TARGET_AMX void q4k_tile_block(const PackedQ4K& w, const TokenBlock* tb, std::int64_t p, std::int64_t t0,
                                    std::int64_t row_end, float* y, std::int64_t ldy) {
  Q4KAcc acc[NT][NP];
  alignas(64) std::uint8_t bq[NP][2][8][64];
  for (int ti = 0; ti < NT; ++ti)
    for (int pi = 0; pi < NP; ++pi) std::memset(acc[ti][pi].y, 0, sizeof acc[ti][pi].y);
  tile_zero<tile_c<0, 0>>();
  if constexpr (NP == 2) tile_zero<tile_c<0, 1>>();
  if constexpr (NT == 2) tile_zero<tile_c<1, 0>>();
  if constexpr (NT == 2 && NP == 2) tile_zero<tile_c<1, 1>>();
  for (std::int64_t b = 0; b < w.blocks(); ++b) {
    const Q4KPanelBlock* pb[2] = {&w.block(p, b), NP == 2 ? &w.block(p + 1, b) : nullptr};
    for (int ti = 0; ti < NT; ++ti)
      for (int pi = 0; pi < NP; ++pi) std::memset(acc[ti][pi].sb, 0, sizeof acc[ti][pi].sb);
    for (int c = 0; c < 4; ++c) {
      for (int pi = 0; pi < NP; ++pi) q4k_unpack_chunk(*pb[pi], c, bq[pi]);
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * c + h;
        const std::size_t off = static_cast<std::size_t>(b) * q8k_bytes + q8k_qs + 32 * j;
        tile_load<tile_a0>(tb[0].base + off, tb[0].stride);
        if constexpr (NT == 2) tile_load<tile_a1>(tb[1].base + off, tb[1].stride);
        tile_load<tile_b0>(bq[0][h], 64);
        if constexpr (NP == 2) tile_load<tile_b1>(bq[1][h], 64);
        tile_dpbssd<tile_c<0, 0>, tile_a0, tile_b0>();  // weights 0..15 read as signed are the same
        if constexpr (NP == 2) tile_dpbssd<tile_c<0, 1>, tile_a0, tile_b1>();
        if constexpr (NT == 2) tile_dpbssd<tile_c<1, 0>, tile_a1, tile_b0>();
        if constexpr (NT == 2 && NP == 2) tile_dpbssd<tile_c<1, 1>, tile_a1, tile_b1>();
        q4k_scale_tile<0, 0>(acc[0][0], *pb[0], j, tb[0].count);
        if constexpr (NP == 2) q4k_scale_tile<0, 1>(acc[0][NP - 1], *pb[1], j, tb[0].count);
        if constexpr (NT == 2) q4k_scale_tile<1, 0>(acc[NT - 1][0], *pb[0], j, tb[1].count);
        if constexpr (NT == 2 && NP == 2) q4k_scale_tile<1, 1>(acc[NT - 1][NP - 1], *pb[1], j, tb[1].count);
      }
    }
    for (int ti = 0; ti < NT; ++ti)
      for (int pi = 0; pi < NP; ++pi) q4k_finish_tile_block(acc[ti][pi], *pb[pi], tb[ti], b);
  }
  for (int ti = 0; ti < NT; ++ti)
    for (int pi = 0; pi < NP; ++pi) {
      const std::int64_t r0 = (p + pi) * panel_rows;
      const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - r0));
      for (int r = 0; n > 0 && r < tb[ti].count; ++r)
        vec::store_first(y + (t0 + ti * token_rows + r) * ldy + r0, _mm512_loadu_ps(acc[ti][pi].y[r]), n);
    }
}

/// NT (1..4) tokens of one panel, straight from the packed nibbles (VPDPBUSD: weights unsigned, activations
/// signed, so no bias correction).
template <int NT>
HMOE_TARGET_AVX512 void q4k_vector_block(const PackedQ4K& w, std::int64_t p, const std::byte* act, std::size_t stride,
                                         std::int64_t t0, int n, float* y, std::int64_t ldy) {
  __m512 acc[NT];
  const std::byte* a[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    a[t] = act + static_cast<std::size_t>(t0 + t) * stride;
  }
  const __m512i low = _mm512_set1_epi8(0x0F);
  for (std::int64_t b = 0; b < w.blocks(); ++b) {
    const Q4KPanelBlock& pb = w.block(p, b);
    __m512 sb[NT];
    for (int t = 0; t < NT; ++t) sb[t] = _mm512_setzero_ps();
    const std::size_t off = static_cast<std::size_t>(b) * q8k_bytes + q8k_qs;
    for (int c = 0; c < 4; ++c) {
      __m512i lo_sum[NT], hi_sum[NT];
      for (int t = 0; t < NT; ++t) lo_sum[t] = hi_sum[t] = _mm512_setzero_si512();
      for (int g = 0; g < 8; ++g) {
        const __m512i v = _mm512_loadu_si512(pb.qs[c][g]);
        const __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        for (int t = 0; t < NT; ++t) {
          const std::byte* q = a[t] + off + 64 * c + 4 * g;
          lo_sum[t] = _mm512_dpbusd_epi32(lo_sum[t], lo, vec::broadcast4(q));
          hi_sum[t] = _mm512_dpbusd_epi32(hi_sum[t], hi, vec::broadcast4(q + 32));
        }
      }
      const __m512 sc_lo = vec::bytes_to_float(pb.sc[2 * c]), sc_hi = vec::bytes_to_float(pb.sc[2 * c + 1]);
      for (int t = 0; t < NT; ++t) {
        sb[t] = _mm512_fmadd_ps(vec::to_float(lo_sum[t]), sc_lo, sb[t]);
        sb[t] = _mm512_fmadd_ps(vec::to_float(hi_sum[t]), sc_hi, sb[t]);
      }
    }
    __m512 mins[8];
    q4k_load_mins(pb, mins);
    for (int t = 0; t < NT; ++t) acc[t] = q4k_finish_block(pb, mins, a[t], b, sb[t], acc[t]);
  }
  for (int t = 0; t < NT; ++t) vec::store_first(y + (t0 + t) * ldy + p * panel_rows, acc[t], n);
}

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedQ4K& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  const std::size_t row_bytes = activation_row_bytes(w);
  check_matmul_args("hmoe::cpu::amx::matmul_tiles(PackedQ4K)", w.rows(), row_begin, row_end, act, act_row_bytes,
                    row_bytes, tokens, y, ldy);
  if (tokens == 0 || row_end == row_begin) return;
  std::byte* pad = tokens % token_rows ? padding_buffer(row_bytes) : nullptr;
  const TileScope scope(detail::q4k_tile_config);
  const std::int64_t pe = panel_count(row_end);
  for (std::int64_t p = row_begin / panel_rows; p < pe; p += 2) {
    const bool two_panels = p + 1 < pe;
    for (std::int64_t t0 = 0; t0 < tokens; t0 += 2 * token_rows) {
      TokenBlock tb[2];
      tb[0] = token_block(act, act_row_bytes, tokens, t0, row_bytes, pad);
      const bool two_blocks = t0 + token_rows < tokens;
      if (two_blocks) tb[1] = token_block(act, act_row_bytes, tokens, t0 + token_rows, row_bytes, pad);
      if (two_blocks && two_panels) detail::q4k_tile_block<2, 2>(w, tb, p, t0, row_end, y, ldy);
      else if (two_blocks) detail::q4k_tile_block<2, 1>(w, tb, p, t0, row_end, y, ldy);
      else if (two_panels) detail::q4k_tile_block<1, 2>(w, tb, p, t0, row_end, y, ldy);
      else detail::q4k_tile_block<1, 1>(w, tb, p, t0, row_end, y, ldy);
    }
  }
}

/// The same product with AVX-512 VNNI on the packed nibbles, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedQ4K& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  check_matmul_args("hmoe::cpu::amx::matmul_vector(PackedQ4K)", w.rows(), row_begin, row_end, act, act_row_bytes,
                    activation_row_bytes(w), tokens, y, ldy);
  for (std::int64_t p = row_begin / panel_rows; p < panel_count(row_end); ++p) {
    const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - p * panel_rows));
    std::int64_t t0 = 0;
    for (; t0 + 4 <= tokens; t0 += 4) detail::q4k_vector_block<4>(w, p, act, act_row_bytes, t0, n, y, ldy);
    switch (tokens - t0) {
      case 3: detail::q4k_vector_block<3>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      case 2: detail::q4k_vector_block<2>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      case 1: detail::q4k_vector_block<1>(w, p, act, act_row_bytes, t0, n, y, ldy); break;
      default: break;
    }
  }
}

}  // namespace hmoe::cpu::amx
