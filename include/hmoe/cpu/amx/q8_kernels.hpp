/// \file
/// \brief `PackedQ8Blocks` x Q8_0 products: TDPBSSD tiles for many tokens, VPDPBUSD on the same B tiles for few.
///
/// y = sum over 32-blocks of d_w * d_a * P, P the int32 dot product of the block's int8 weights and activations.
///
/// Tiles: one TDPBSSD (A 16 tokens x 32, B 8 x 64) per job (panel, block, token block); its C tile is read
/// out (int32 -> f32, times d_w per channel and d_a per token, added to f32 accumulators) once per job. Jobs
/// alternate between two C tiles and are software-pipelined like the Q4_K kernel: job k issues its product,
/// then stores job k - 1's C tile into a ring of 4 buffers, then reads out job k - 4's, so the vector loads of
/// a C buffer come 3 jobs after its tile store. Activations are packed once per call into 64-byte-aligned
/// 16 x 32 A tiles (stride 32) with their f32 scales; token blocks go in groups of about 1 MiB of them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hmoe/cpu/amx/drivers.hpp"
#include "hmoe/cpu/amx/packed_q8.hpp"
#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/legacy_blocks.hpp"

namespace hmoe::cpu::amx {

namespace detail {

inline constexpr TileConfig q8_tile_config = kernel_tile_config(32, 8);
inline constexpr std::size_t q8_0_bytes = sizeof(quant::BlockQ8_0);

/// One 32-block of one 16-token block, packed for the tiles. Rows past the tokens are zero.
struct alignas(64) Q8ATile {
  std::int8_t qs[token_rows][32];  ///< [token][32 values]
  float d[token_rows];             ///< [token]: the Q8_0 scale
};
static_assert(sizeof(Q8ATile) == 576);

/// Token block t of act into its nb packed blocks, block b at out[b * ntb].
inline void q8_pack_activations(const std::byte* act, std::size_t stride, std::int64_t tokens, std::int64_t t,
                                std::int64_t nb, std::int64_t ntb, Q8ATile* out) {
  const int count = static_cast<int>(std::min<std::int64_t>(token_rows, tokens - t * token_rows));
  for (std::int64_t b = 0; b < nb; ++b) {
    Q8ATile& o = out[b * ntb];
    for (int r = 0; r < count; ++r) {
      const std::byte* q = act + static_cast<std::size_t>(t * token_rows + r) * stride + b * q8_0_bytes;
      std::uint16_t d;
      std::memcpy(&d, q, 2);
      o.d[r] = quant::fp16_to_fp32(d);
      std::memcpy(o.qs[r], q + 2, 32);
    }
    for (int r = count; r < token_rows; ++r) {
      std::memset(o.qs[r], 0, 32);
      o.d[r] = 0.0f;
    }
  }
}

/// One job's C tile, stored 3 jobs before its read-out.
struct alignas(64) Q8CBuf {
  std::int32_t c[token_rows][panel_rows];
};

inline constexpr std::int64_t q8_c_ring = 4;

struct Q8Scratch {
  Q8CBuf cb[q8_c_ring];
  std::vector<Q8ATile> act;  ///< [block][token block]
  std::vector<Q8CBuf> acc;   ///< per token block: 16 x 16 f32
  std::vector<int> count;    ///< tokens of each token block
};

inline Q8Scratch& q8_scratch() {
  thread_local Q8Scratch s;
  return s;
}

template <int S> inline constexpr int q8_c = 4 + S;

template <int S>
HMOE_TARGET_AMX inline void q8_issue(const Q8PanelBlock& w, const Q8ATile& a) {
  constexpr int ta = S ? tile_a1 : tile_a0;
  constexpr int tb = S ? tile_b1 : tile_b0;
  tile_zero<q8_c<S>>();
  tile_load<ta>(a.qs, 32);
  tile_load<tb>(w.q, 64);
  tile_dpbssd<q8_c<S>, ta, tb>();
}

/// acc (16 tokens x 16 rows) += float(C) * d_w * d_a.
[[gnu::always_inline]] HMOE_TARGET_AVX512 inline void q8_readout(const Q8CBuf& cb, const Q8PanelBlock& w,
                                                                 const Q8ATile& a, int count, float* acc) {
  const __m512 dw = _mm512_loadu_ps(w.d);
  for (int r = 0; r < count; ++r) {
    float* o = acc + r * panel_rows;
    const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(a.d[r]));
    _mm512_store_ps(o, _mm512_fmadd_ps(vec::to_float(_mm512_load_si512(cb.c[r])), s, _mm512_load_ps(o)));
  }
}

[[gnu::always_inline]] HMOE_TARGET_AMX inline void q8_out(const Q8PanelBlock* panel, const Q8Scratch& s,
                                                          std::int64_t k, std::int64_t b, std::int64_t t, float* acc) {
  const std::size_t ntb = s.count.size();
  q8_readout(s.cb[k % q8_c_ring], panel[b], s.act[static_cast<std::size_t>(b) * ntb + static_cast<std::size_t>(t)],
             s.count[static_cast<std::size_t>(t)], acc + t * token_rows * panel_rows);
}

/// One panel (its nb blocks from `panel`), token blocks [t0, t1), into columns c0 .. c0 + n of y; jobs (b, t)
/// b-major, pipelined as described in the file comment.
HMOE_TARGET_AMX inline void q8_tile_panel(const Q8PanelBlock* panel, std::int64_t nb, Q8Scratch& s, std::int64_t t0,
                                          std::int64_t t1, std::int64_t tokens, std::int64_t c0, int n, float* y,
                                          std::int64_t ldy) {
  const std::int64_t ntb = static_cast<std::int64_t>(s.count.size());
  float* acc = reinterpret_cast<float*>(s.acc.data());
  std::fill(acc + t0 * token_rows * panel_rows, acc + t1 * token_rows * panel_rows, 0.0f);
  constexpr std::int64_t R = q8_c_ring;
  std::int64_t k = 0, jb[R] = {}, jt[R] = {};
  for (std::int64_t b = 0; b < nb; ++b) {
    const Q8PanelBlock& pb = panel[b];
    const Q8ATile* a = s.act.data() + b * ntb;
    for (std::int64_t t = t0; t < t1; ++t, ++k) {
      if (k % 2) q8_issue<1>(pb, a[t]);
      else q8_issue<0>(pb, a[t]);
      if (k >= 1) {
        if (k % 2) tile_store<q8_c<0>>(s.cb[(k - 1) % R].c, 64);  // job k - 1
        else tile_store<q8_c<1>>(s.cb[(k - 1) % R].c, 64);
      }
      if (k >= R) q8_out(panel, s, k - R, jb[k % R], jt[k % R], acc);
      jb[k % R] = b;
      jt[k % R] = t;
    }
  }
  if (k % 2) tile_store<q8_c<0>>(s.cb[(k - 1) % R].c, 64);
  else tile_store<q8_c<1>>(s.cb[(k - 1) % R].c, 64);
  for (std::int64_t j = std::max<std::int64_t>(0, k - R); j < k; ++j) q8_out(panel, s, j, jb[j % R], jt[j % R], acc);
  for (std::int64_t t = t0 * token_rows; t < std::min(tokens, t1 * token_rows); ++t)
    vec::store_first(y + t * ldy + c0, _mm512_load_ps(acc + t * panel_rows), n);
}

/// The end of one 32-block for NT tokens: acc[t] += float(sum[t] - bias) * d_w * d_a, where VPDPBUSD summed
/// (a + 128) * w (so bias = 128 * the row's sum of w) and d_a is token t's f16 Q8_0 scale at a[t] + scale_at.
template <int NT>
[[gnu::always_inline]] HMOE_TARGET_AVX512 inline void q8_finish_block(const __m512i* sum, __m512i bias, __m512 dw,
                                                                      const std::byte* const* a, std::size_t scale_at,
                                                                      __m512* acc) {
  for (int t = 0; t < NT; ++t) {
    std::uint16_t dh;
    std::memcpy(&dh, a[t] + scale_at, 2);
    const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(quant::fp16_to_fp32(dh)));
    acc[t] = _mm512_fmadd_ps(vec::to_float(_mm512_sub_epi32(sum[t], bias)), s, acc[t]);
  }
}

/// NT (1..4) tokens of one panel: VPDPBUSD on the B tiles, activations + 128 and 128 * sum(q) subtracted.
template <int NT>
HMOE_TARGET_AVX512 void q8_vector_block(const PackedQ8Blocks& w, std::int64_t p, const std::byte* act,
                                        std::size_t stride, std::int64_t t0, int n, float* y, std::int64_t ldy) {
  __m512 acc[NT];
  const std::byte* a[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm512_setzero_ps();
    a[t] = act + static_cast<std::size_t>(t0 + t) * stride;
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (std::int64_t b = 0; b < w.blocks(); ++b) {
    const Q8PanelBlock& pb = w.block(p, b);
    const __m512i bias = _mm512_loadu_si512(pb.bias);
    __m512i sum[NT];
    for (int t = 0; t < NT; ++t) sum[t] = _mm512_setzero_si512();
    const std::size_t off = static_cast<std::size_t>(b) * q8_0_bytes;
    for (int g = 0; g < 8; ++g) {
      const __m512i wrow = _mm512_loadu_si512(pb.q[g]);
      for (int t = 0; t < NT; ++t)
        sum[t] = _mm512_dpbusd_epi32(sum[t], _mm512_xor_si512(vec::broadcast4(a[t] + off + 2 + 4 * g), flip), wrow);
    }
    q8_finish_block<NT>(sum, bias, _mm512_loadu_ps(pb.d), a, off, acc);
  }
  for (int t = 0; t < NT; ++t) vec::store_first(y + (t0 + t) * ldy + p * panel_rows, acc[t], n);
}

struct Q8Vector {
  using Matrix = PackedQ8Blocks;
  template <int NT>
  [[gnu::always_inline]] HMOE_TARGET_AVX512 static void vector_block(const PackedQ8Blocks& w, std::int64_t p,
                                                                     const std::byte* act, std::size_t stride,
                                                                     std::int64_t t0, int n, float* y,
                                                                     std::int64_t ldy) {
    q8_vector_block<NT>(w, p, act, stride, t0, n, y, ldy);
  }
};

/// The tile product over a matrix of 32-column int8 blocks: `panel_blocks(p)` gives panel p's blocks as
/// Q8PanelBlocks (PackedQ8Blocks holds them; PackedQ5Blocks unpacks its own into a scratch). who names the entry
/// point in argument errors.
template <class Matrix, class PanelBlocks>
HMOE_TARGET_AMX void q8_tile_product(const char* who, const Matrix& w, PanelBlocks&& panel_blocks,
                                     std::int64_t row_begin, std::int64_t row_end, const std::byte* act,
                                     std::size_t act_row_bytes, std::int64_t tokens, float* y, std::int64_t ldy) {
  check_matmul_args(who, w.rows(), row_begin, row_end, act, act_row_bytes, activation_row_bytes(w), tokens, y, ldy);
  if (tokens == 0 || row_end == row_begin) return;
  Q8Scratch& s = q8_scratch();
  const std::int64_t ntb = (tokens + token_rows - 1) / token_rows, nb = w.blocks();
  s.act.resize(static_cast<std::size_t>(ntb * nb));
  s.acc.resize(static_cast<std::size_t>(ntb));
  s.count.resize(static_cast<std::size_t>(ntb));
  for (std::int64_t t = 0; t < ntb; ++t) {
    q8_pack_activations(act, act_row_bytes, tokens, t, nb, ntb, s.act.data() + t);
    s.count[static_cast<std::size_t>(t)] = static_cast<int>(std::min<std::int64_t>(token_rows, tokens - t * token_rows));
  }
  const std::int64_t group =
      std::max<std::int64_t>(1, (std::int64_t{1} << 20) / (nb * std::int64_t{sizeof(Q8ATile)}));
  const TileScope scope(q8_tile_config);
  for (std::int64_t t0 = 0; t0 < ntb; t0 += group) {
    const std::int64_t t1 = std::min(ntb, t0 + group);
    for (std::int64_t p = row_begin / panel_rows; p < panel_count(row_end); ++p) {
      const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - p * panel_rows));
      q8_tile_panel(panel_blocks(p), nb, s, t0, t1, tokens, p * panel_rows, n, y, ldy);
    }
  }
}

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedQ8Blocks& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  detail::q8_tile_product("hmoe::cpu::amx::matmul_tiles(PackedQ8Blocks)", w,
                          [&](std::int64_t p) { return &w.block(p, 0); }, row_begin, row_end, act, act_row_bytes,
                          tokens, y, ldy);
}

/// The same product with AVX-512 VNNI on the packed B tiles, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedQ8Blocks& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  detail::vector_product<detail::Q8Vector>("hmoe::cpu::amx::matmul_vector(PackedQ8Blocks)", w, row_begin, row_end,
                                           act, act_row_bytes, tokens, y, ldy);
}

}  // namespace hmoe::cpu::amx
