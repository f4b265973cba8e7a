/// \file
/// \brief `PackedQ4K` x Q8_K products: TDPBSSD tiles for many tokens, VPDPBUSD on the same nibbles for few.
///
/// y = sum over super-blocks of da * (d * X - dmin * M), X = sum_j sc_j * P_j, where P_j is the int32 dot
/// product of sub-block j (32 values), and M = sum_j m_j * S_j with S_j the sum of its activations (from the
/// Q8_K bsums).
///
/// Tiles: the 6-bit scale is folded into the int8 weights, so that one C tile accumulates a whole super-block
/// (K = 256, four K = 64 products) and is read out once per super-block instead of once per sub-block. As
/// q * sc (up to 945) does not fit a byte, sc = 8 hi + lo (hi, lo < 8) and each panel super-block is unpacked
/// into two int8 B operands, q * hi and q * lo (both <= 105; one VPMULLW per 64 bytes gives both bytes of
/// every word, as the 4 bytes of a VNNI group share their scale), accumulated in two C tiles: X = 8 C_hi + C_lo,
/// exact in int32. The unpacked panel super-block (8 KiB, L1) serves every token block of a group. Activations
/// are packed once per call into 64-byte-aligned 16 x 64 A tiles (stride 64) with their bsums and scales.
/// Jobs (super-block, token block) alternate between two C tile sets and are software-pipelined: job k issues
/// its products, then (first token block only) unpacks super-block b + 1 into the other B buffer, then stores
/// job k - 1's C tiles into a ring of 4 buffers, then reads out job k - 4's: no tile load waits on a vector
/// store just issued, and the vector loads of a C buffer come 3 jobs after its tile store (neither forwards;
/// both wait for the store to commit). Token blocks go in groups of about 1 MiB of packed activations, so a
/// panel's sweep stays in L2. The read-out keeps port 0 (shared with the tiles, and the only one for shifts,
/// conversions and VPDPWSSD) light: per token row one shift and one conversion there, and the mins term as 8
/// f32 FMAs (either FMA port) on sub-block sums converted once when the activations are packed; every partial
/// sum is an integer below 2^24, so M is exact as in int32.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hmoe/cpu/amx/drivers.hpp"
#include "hmoe/cpu/amx/packed_q4k.hpp"
#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/cpu/amx/vec.hpp"
#include "hmoe/quant/k_blocks.hpp"

namespace hmoe::cpu::amx {

namespace detail {

inline constexpr TileConfig q4k_tile_config = kernel_tile_config(64, 16);
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

/// One panel super-block unpacked for the tiles: B operands with the scales folded in (8 KiB).
struct alignas(64) Q4KUnpacked {
  std::int8_t hi[4][16][64];  ///< [chunk][VNNI row][4 n + i]: q * (sc >> 3); rows 0-7 sub-block 2c, 8-15 2c + 1
  std::int8_t lo[4][16][64];  ///< the same with q * (sc & 7)
};

/// Super-block b of one 16-token block, packed once per call for the tiles: each A tile (16 x 64) is 1 KiB
/// contiguous and 64-byte aligned (a tile load touches 16 whole lines, not 32 split ones 8 KB apart that share
/// a few L1 sets), and the read-out's per-token terms sit next to it. Rows past the tokens are zero.
struct alignas(64) Q8KTileBlock {
  std::int8_t qs[4][token_rows][64];  ///< [chunk][token][64 values]
  float s[token_rows][8];             ///< [token][j]: S_j, the sum of sub-block j's 32 values (|S_j| <= 4096)
  float d[token_rows];                ///< [token]: the Q8_K scale
};
static_assert(sizeof(Q8KTileBlock) == 4672 && sizeof(Q8KTileBlock) % 64 == 0);

/// Nibbles times the split scales: B tile c of hi (lo) is the 64 values 64 c .. 64 c + 63 of the 16 rows.
HMOE_TARGET_AVX512 inline void q4k_unpack_scaled(const Q4KPanelBlock& w, Q4KUnpacked& u) {
  const __m512i low = _mm512_set1_epi8(0x0F), seven = _mm512_set1_epi16(7);
  for (int c = 0; c < 4; ++c) {
    const __m512i s0 = vec::bytes_to_word_pairs(w.sc[2 * c]), s1 = vec::bytes_to_word_pairs(w.sc[2 * c + 1]);
    const __m512i h0 = _mm512_srli_epi16(s0, 3), h1 = _mm512_srli_epi16(s1, 3);
    const __m512i l0 = _mm512_and_si512(s0, seven), l1 = _mm512_and_si512(s1, seven);
    for (int g = 0; g < 8; ++g) {
      const __m512i v = _mm512_loadu_si512(w.qs[c][g]);
      const __m512i q0 = _mm512_and_si512(v, low), q1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      // (q_a + 256 q_b) * s = q_a s + 256 q_b s with q s <= 105: both byte products, no carry between them.
      _mm512_store_si512(u.hi[c][g], _mm512_mullo_epi16(q0, h0));
      _mm512_store_si512(u.hi[c][8 + g], _mm512_mullo_epi16(q1, h1));
      _mm512_store_si512(u.lo[c][g], _mm512_mullo_epi16(q0, l0));
      _mm512_store_si512(u.lo[c][8 + g], _mm512_mullo_epi16(q1, l1));
    }
  }
}

/// Token block t of act (tokens rows of Q8_K, stride bytes apart) into its nb packed super-blocks, super-block
/// b at out[b * ntb].
inline void q4k_pack_activations(const std::byte* act, std::size_t stride, std::int64_t tokens, std::int64_t t,
                                 std::int64_t nb, std::int64_t ntb, Q8KTileBlock* out) {
  const int count = static_cast<int>(std::min<std::int64_t>(token_rows, tokens - t * token_rows));
  for (std::int64_t b = 0; b < nb; ++b) {
    Q8KTileBlock& o = out[b * ntb];
    for (int r = 0; r < count; ++r) {
      const std::byte* q = act + static_cast<std::size_t>(t * token_rows + r) * stride + b * q8k_bytes;
      for (int c = 0; c < 4; ++c) std::memcpy(o.qs[c][r], q + q8k_qs + 64 * c, 64);
      std::int16_t bs[16];
      std::memcpy(bs, q + q8k_bsums, sizeof bs);
      for (int j = 0; j < 8; ++j) o.s[r][j] = static_cast<float>(bs[2 * j] + bs[2 * j + 1]);
      std::memcpy(&o.d[r], q, 4);
    }
    for (int r = count; r < token_rows; ++r) {
      for (int c = 0; c < 4; ++c) std::memset(o.qs[c][r], 0, 64);
      for (int j = 0; j < 8; ++j) o.s[r][j] = 0.0f;
      o.d[r] = 0.0f;
    }
  }
}

/// C tiles of set S (0, 1): hi and lo.
template <int S> inline constexpr int q4k_c_hi = 4 + 2 * S;
template <int S> inline constexpr int q4k_c_lo = 5 + 2 * S;

/// What matmul_tiles does; every mode but full skips work and computes wrong numbers (micro-benchmark
/// ablations, resolved at compile time so that the full kernel carries no trace of them).
enum class Q4KMode {
  full,           ///< the kernel
  no_mins,        ///< read-out without the mins term (no VPDPWSSD)
  no_products,    ///< no TDPBSSD (tile loads, unpack and read-out kept)
  no_readout,     ///< no C tile stores and no f32 read-out
  no_unpack,      ///< B buffers never unpacked (products on whatever they hold)
  products_only,  ///< neither: activation packing, tile loads and TDPBSSDs
  loads_only,     ///< activation packing and tile loads only (no TDPBSSD, no unpack, no read-out)
  pack_only,      ///< activation packing only (its cost per call, whatever the row range)
};

template <Q4KMode M, int S, int C>
HMOE_TARGET_AMX inline void q4k_issue_chunk(const Q4KUnpacked& u, const Q8KTileBlock& a) {
  constexpr int ta = C % 2 ? tile_a1 : tile_a0;
  constexpr bool dp = M != Q4KMode::loads_only && M != Q4KMode::no_products;
  tile_load<ta>(a.qs[C], 64);
  tile_load<tile_b0>(u.hi[C], 64);
  if constexpr (dp) tile_dpbssd<q4k_c_hi<S>, ta, tile_b0>();
  tile_load<tile_b1>(u.lo[C], 64);
  if constexpr (dp) tile_dpbssd<q4k_c_lo<S>, ta, tile_b1>();
}

/// The products of one super-block and token block into C set S.
template <Q4KMode M, int S>
HMOE_TARGET_AMX inline void q4k_issue(const Q4KUnpacked& u, const Q8KTileBlock& a) {
  tile_zero<q4k_c_hi<S>>();
  tile_zero<q4k_c_lo<S>>();
  q4k_issue_chunk<M, S, 0>(u, a);
  q4k_issue_chunk<M, S, 1>(u, a);
  q4k_issue_chunk<M, S, 2>(u, a);
  q4k_issue_chunk<M, S, 3>(u, a);
}

/// The two C tiles of one job, stored by tilestored 3 jobs before the vector read-out loads them (a vector
/// load cannot be forwarded from a tile store; it waits for the store to commit, after it retires).
struct alignas(64) Q4KCBuf {
  std::int32_t c[2][token_rows][panel_rows];  ///< hi, lo
};

template <int S>
HMOE_TARGET_AMX inline void q4k_store_c(Q4KCBuf& cb) {
  tile_store<q4k_c_hi<S>>(cb.c[0], 64);
  tile_store<q4k_c_lo<S>>(cb.c[1], 64);
}

/// One job's C tiles (super-block w of count tokens a) into acc (16 tokens x 16 rows, f32):
/// acc += da * (d * (8 C_hi + C_lo) - dmin * M), M = sum_j m_j S_j in f32, exact (every partial sum is an
/// integer of magnitude below 8 * 63 * 4096 < 2^24). Mins false (an ablation only) leaves out M.
template <bool Mins>
[[gnu::always_inline]] HMOE_TARGET_AVX512 inline void q4k_readout(const Q4KCBuf& cb, const Q4KPanelBlock& w,
                                                                  const Q8KTileBlock& a, int count, float* acc) {
  const __m512 d = _mm512_loadu_ps(w.d), dmin = _mm512_loadu_ps(w.dmin);
  __m512 m[8];
  if constexpr (Mins)
    for (int j = 0; j < 8; ++j) m[j] = vec::bytes_to_float(w.m[j]);
  for (int r = 0; r < count; ++r) {
    const __m512i x = _mm512_add_epi32(vec::shift_left32<3>(_mm512_load_si512(cb.c[0][r])),
                                       _mm512_load_si512(cb.c[1][r]));
    __m512 v = _mm512_mul_ps(d, vec::to_float(x));
    if constexpr (Mins) {
      __m512 mm = _mm512_mul_ps(m[0], _mm512_set1_ps(a.s[r][0]));
      for (int j = 1; j < 8; ++j) mm = _mm512_fmadd_ps(m[j], _mm512_set1_ps(a.s[r][j]), mm);
      v = _mm512_fnmadd_ps(dmin, mm, v);
    }
    float* o = acc + r * panel_rows;
    _mm512_store_ps(o, _mm512_fmadd_ps(_mm512_set1_ps(a.d[r]), v, _mm512_load_ps(o)));
  }
}

/// Jobs between the tile store of a job's C tiles and their read-out, plus one (C buffers in the ring).
inline constexpr std::int64_t q4k_c_ring = 4;

/// This thread's scratch for matmul_tiles: two unpacked panel super-blocks (alternate super-blocks), a ring
/// of C-tile buffers (job k's in cb[k % q4k_c_ring]), the packed activations ([super-block][token block]) and the f32
/// accumulators of one panel. Grown outside the hot loop; 64-byte aligned throughout.
struct Q4KScratch {
  Q4KUnpacked u[2];
  Q4KCBuf cb[q4k_c_ring];
  std::vector<Q8KTileBlock> act;
  std::vector<Q4KCBuf> acc;  ///< per token block: 16 x 16 f32 (the same 1 KiB)
  std::vector<int> count;    ///< tokens of each token block
};

inline Q4KScratch& q4k_scratch() {
  thread_local Q4KScratch s;
  return s;
}

/// Reads out job k = (b, t) (its C tiles stored into cb[k % q4k_c_ring]). Not a lambda: a lambda would
/// not carry the target attribute, and the read-out would not be inlined.
template <Q4KMode M>
[[gnu::always_inline]] HMOE_TARGET_AMX inline void q4k_out(const PackedQ4K& w, std::int64_t p, const Q4KScratch& s,
                                                           std::int64_t k, std::int64_t b, std::int64_t t, float* acc) {
  const std::size_t ntb = s.count.size();
  q4k_readout<M != Q4KMode::no_mins>(s.cb[k % q4k_c_ring], w.block(p, b),
                                     s.act[static_cast<std::size_t>(b) * ntb + static_cast<std::size_t>(t)],
                                     s.count[static_cast<std::size_t>(t)], acc + t * token_rows * panel_rows);
}

/// One panel, token blocks [t0, t1). Jobs k = (b, t) run in order b-major; job k issues its products into C
/// set k % 2, then (after its first token block) unpacks super-block b + 1 into the other buffer, so a B
/// buffer is written a whole job before it is tile-loaded; then stores the C tiles of job k - 1 into
/// cb[(k - 1) % R] and reads out those of job k - R (R = q4k_c_ring), so no load waits on a just-issued store.
template <Q4KMode M>
HMOE_TARGET_AMX inline void q4k_tile_panel(const PackedQ4K& w, std::int64_t p, Q4KScratch& s, std::int64_t t0,
                                           std::int64_t t1, std::int64_t tokens, int n, float* y, std::int64_t ldy) {
  constexpr bool unpack = M == Q4KMode::full || M == Q4KMode::no_mins || M == Q4KMode::no_products ||
                          M == Q4KMode::no_readout;
  constexpr bool readout = M == Q4KMode::full || M == Q4KMode::no_mins || M == Q4KMode::no_products ||
                           M == Q4KMode::no_unpack;
  const std::int64_t ntb = static_cast<std::int64_t>(s.count.size()), nb = w.blocks();
  float* acc = reinterpret_cast<float*>(s.acc.data());
  std::fill(acc + t0 * token_rows * panel_rows, acc + t1 * token_rows * panel_rows, 0.0f);
  const Q8KTileBlock* act = s.act.data();
  if constexpr (unpack) q4k_unpack_scaled(w.block(p, 0), s.u[0]);
  constexpr std::int64_t R = q4k_c_ring;
  std::int64_t k = 0, jb[R] = {}, jt[R] = {};  // super-block and token block of the last R jobs (k % R)
  for (std::int64_t b = 0; b < nb; ++b) {
    const Q4KUnpacked& u = s.u[b % 2];
    const Q8KTileBlock* a = act + b * ntb;
    for (std::int64_t t = t0; t < t1; ++t, ++k) {
      if (k % 2) q4k_issue<M, 1>(u, a[t]);
      else q4k_issue<M, 0>(u, a[t]);
      if constexpr (unpack)
        if (t == t0 && b + 1 < nb) q4k_unpack_scaled(w.block(p, b + 1), s.u[(b + 1) % 2]);
      if constexpr (readout) {
        if (k >= 1) {
          if (k % 2) q4k_store_c<0>(s.cb[(k - 1) % R]);  // job k - 1 (its buffer's job k - 1 - R is read out)
          else q4k_store_c<1>(s.cb[(k - 1) % R]);
        }
        if (k >= R) q4k_out<M>(w, p, s, k - R, jb[k % R], jt[k % R], acc);
        jb[k % R] = b;
        jt[k % R] = t;
      }
    }
  }
  if constexpr (readout) {
    if (k % 2) q4k_store_c<0>(s.cb[(k - 1) % R]);  // job k - 1
    else q4k_store_c<1>(s.cb[(k - 1) % R]);
    for (std::int64_t j = std::max<std::int64_t>(0, k - R); j < k; ++j)
      q4k_out<M>(w, p, s, j, jb[j % R], jt[j % R], acc);
  }
  for (std::int64_t t = t0 * token_rows; t < std::min(tokens, t1 * token_rows); ++t)
    vec::store_first(y + t * ldy + p * panel_rows, _mm512_load_ps(acc + t * panel_rows), n);
}

/// matmul_tiles with the work of mode M (only full computes the product), token blocks in groups of
/// group_blocks (0: as many as keep the group's packed activations within about 1 MiB).
template <Q4KMode M>
HMOE_TARGET_AMX inline void matmul_tiles_mode(const PackedQ4K& w, std::int64_t row_begin, std::int64_t row_end,
                                              const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                              float* y, std::int64_t ldy, std::int64_t group_blocks = 0) {
  const std::size_t row_bytes = activation_row_bytes(w);
  check_matmul_args("hmoe::cpu::amx::matmul_tiles(PackedQ4K)", w.rows(), row_begin, row_end, act, act_row_bytes,
                    row_bytes, tokens, y, ldy);
  if (tokens == 0 || row_end == row_begin) return;
  Q4KScratch& s = q4k_scratch();
  const std::int64_t ntb = (tokens + token_rows - 1) / token_rows, nb = w.blocks();
  s.act.resize(static_cast<std::size_t>(ntb * nb));  // [super-block][token block]: the order jobs read them
  s.acc.resize(static_cast<std::size_t>(ntb));
  s.count.resize(static_cast<std::size_t>(ntb));
  for (std::int64_t t = 0; t < ntb; ++t) {
    q4k_pack_activations(act, act_row_bytes, tokens, t, nb, ntb, s.act.data() + t);
    s.count[static_cast<std::size_t>(t)] =
        static_cast<int>(std::min<std::int64_t>(token_rows, tokens - t * token_rows));
  }
  if constexpr (M == Q4KMode::pack_only) return;
  // Token blocks in groups whose packed activations (swept once per panel) stay within about 1 MiB of L2;
  // each group re-unpacks the weights, once per 8 token blocks at DeepSeek's K = 7168.
  const std::int64_t group =
      group_blocks > 0 ? group_blocks
                       : std::max<std::int64_t>(1, (std::int64_t{1} << 20) / (nb * std::int64_t{sizeof(Q8KTileBlock)}));
  const TileScope scope(q4k_tile_config);
  for (std::int64_t t0 = 0; t0 < ntb; t0 += group) {
    const std::int64_t t1 = std::min(ntb, t0 + group);
    for (std::int64_t p = row_begin / panel_rows; p < panel_count(row_end); ++p) {
      const int n = static_cast<int>(std::min<std::int64_t>(panel_rows, row_end - p * panel_rows));
      q4k_tile_panel<M>(w, p, s, t0, t1, tokens, n, y, ldy);
    }
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

/// The vector path's policy for drivers.hpp.
struct Q4KVector {
  using Matrix = PackedQ4K;
  template <int NT>
  [[gnu::always_inline]] HMOE_TARGET_AVX512 static void vector_block(const PackedQ4K& w, std::int64_t p,
                                                                     const std::byte* act, std::size_t stride,
                                                                     std::int64_t t0, int n, float* y,
                                                                     std::int64_t ldy) {
    q4k_vector_block<NT>(w, p, act, stride, t0, n, y, ldy);
  }
};

}  // namespace detail

/// y[t * ldy + r] = row r . token t, for r in [row_begin, row_end) (row_begin a multiple of 16), with AMX tiles.
HMOE_TARGET_AMX inline void matmul_tiles(const PackedQ4K& w, std::int64_t row_begin, std::int64_t row_end,
                                         const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                         float* y, std::int64_t ldy) {
  detail::matmul_tiles_mode<detail::Q4KMode::full>(w, row_begin, row_end, act, act_row_bytes, tokens, y, ldy);
}

/// The same product with AVX-512 VNNI on the packed nibbles, for few tokens.
HMOE_TARGET_AVX512 inline void matmul_vector(const PackedQ4K& w, std::int64_t row_begin, std::int64_t row_end,
                                             const std::byte* act, std::size_t act_row_bytes, std::int64_t tokens,
                                             float* y, std::int64_t ldy) {
  detail::vector_product<detail::Q4KVector>("hmoe::cpu::amx::matmul_vector(PackedQ4K)", w, row_begin, row_end, act,
                                            act_row_bytes, tokens, y, ldy);
}

}  // namespace hmoe::cpu::amx
