/// \file
/// \brief AMX tile operations with the tile register numbers as template parameters, and, under
/// `HMOE_EMULATE_X86`, a scalar emulator of the same operations with AMX's exact semantics.
///
/// GCC's `_tile_loadd(dst, ...)` and friends are macros that stringify their tile-number token into the
/// instruction text, so they cannot take a template parameter; the wrappers below emit the same instructions
/// through inline asm with the number as an immediate operand (`%c`). Loads carry a "memory" clobber: the
/// compiler must not sink or drop the stores that fill a buffer a tile is then loaded from, which the
/// intrinsics' asm (a bare address in a register) would allow. Config load and release use the intrinsics.
///
/// Semantics (palette 1, 8 tiles of up to 16 rows x 64 bytes), which the emulator checks and reproduces:
///  * `tile_load<T>(p, stride)` reads rows[T] rows of colsb[T] bytes; the rest of the tile becomes zero.
///  * `tile_dpbssd<C, A, B>` (and dpbusd: A unsigned): C.i32[m][n] += sum_k sum_{i<4} A[m][4k+i] * B[k][4n+i],
///    m < rows[C], n < colsb[C] / 4, k < colsb[A] / 4. B is in "VNNI" layout: B row k holds, for each of the N
///    columns, the 4 consecutive K values 4k..4k+3. Shapes must agree: rows[A] = rows[C], colsb[A] = 4 rows[B],
///    colsb[B] = colsb[C].
///  * `tile_dpbf16ps<C, A, B>`: the same with pairs of bf16 (K groups of 2), accumulated in f32 one product at
///    a time (each bf16 x bf16 product is exact in f32).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hmoe/cpu/x86/intrinsics.hpp"

namespace hmoe::cpu::amx {

inline constexpr int tile_count = 8;       ///< palette 1
inline constexpr int tile_max_rows = 16;
inline constexpr int tile_max_colsb = 64;  ///< bytes per tile row

/// The 64-byte operand of LDTILECFG (palette 1): per tile, bytes per row and rows. Unused tiles stay 0.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};

  /// Tile t holds `rows` rows of `colsb` bytes.
  constexpr TileConfig& tile(int t, int rows_, int colsb_) {
    rows[t] = static_cast<std::uint8_t>(rows_);
    colsb[t] = static_cast<std::uint16_t>(colsb_);
    return *this;
  }
};
static_assert(sizeof(TileConfig) == 64);

#if defined(HMOE_EMULATE_X86)

namespace detail {

/// One thread's tile state: the loaded config and 8 tiles of 16 x 64 bytes.
struct TileState {
  bool configured = false;
  TileConfig config;
  alignas(64) std::uint8_t data[tile_count][tile_max_rows][tile_max_colsb] = {};
};

inline TileState& tile_state() {
  thread_local TileState s;
  return s;
}

/// What real hardware would answer with #UD or #GP; the emulator makes it a test failure instead.
[[noreturn]] inline void tile_fault(const std::string& what) {
  throw std::logic_error("AMX emulator: " + what);
}

inline TileState& configured_state(int t, const char* op) {
  TileState& s = tile_state();
  if (!s.configured) tile_fault(std::string(op) + " without a loaded tile config");
  if (s.config.rows[t] == 0 || s.config.colsb[t] == 0)
    tile_fault(std::string(op) + " on unconfigured tile " + std::to_string(t));
  return s;
}

template <class Elem>
Elem tile_elem(const TileState& s, int t, int row, int index) {
  Elem e;
  std::memcpy(&e, &s.data[t][row][index * sizeof(Elem)], sizeof(Elem));
  return e;
}

/// Shape rules shared by all dot-product instructions.
inline void check_dp_shapes(const TileState& s, int c, int a, int b, const char* op) {
  if (c == a || c == b || a == b) tile_fault(std::string(op) + ": tile operands must differ");
  const TileConfig& k = s.config;
  if (k.rows[a] != k.rows[c] || k.colsb[a] != 4 * k.rows[b] || k.colsb[b] != k.colsb[c])
    tile_fault(std::string(op) + ": shapes disagree (C " + std::to_string(k.rows[c]) + "x" +
               std::to_string(k.colsb[c]) + ", A " + std::to_string(k.rows[a]) + "x" + std::to_string(k.colsb[a]) +
               ", B " + std::to_string(k.rows[b]) + "x" + std::to_string(k.colsb[b]) + ")");
}

template <bool ASigned>
void emulate_dp_int8(int c, int a, int b, const char* op) {
  TileState& s = configured_state(c, op);
  configured_state(a, op), configured_state(b, op);
  check_dp_shapes(s, c, a, b, op);
  const int m_rows = s.config.rows[c], n_cols = s.config.colsb[c] / 4, k_groups = s.config.colsb[a] / 4;
  for (int m = 0; m < m_rows; ++m)
    for (int n = 0; n < n_cols; ++n) {
      std::uint32_t acc = static_cast<std::uint32_t>(tile_elem<std::int32_t>(s, c, m, n));  // wraps as hardware does
      for (int k = 0; k < k_groups; ++k)
        for (int i = 0; i < 4; ++i) {
          const int av = ASigned ? static_cast<int>(static_cast<std::int8_t>(s.data[a][m][4 * k + i]))
                                 : static_cast<int>(s.data[a][m][4 * k + i]);
          const int bv = static_cast<std::int8_t>(s.data[b][k][4 * n + i]);
          acc += static_cast<std::uint32_t>(av * bv);
        }
      const std::int32_t r = static_cast<std::int32_t>(acc);
      std::memcpy(&s.data[c][m][4 * n], &r, 4);
    }
}

inline float bf16_bits_to_float(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace detail

inline void load_tile_config(const TileConfig& cfg) {
  if (cfg.palette != 1 || cfg.start_row != 0) detail::tile_fault("only palette 1 with start_row 0 is used");
  for (int t = 0; t < 16; ++t) {
    const bool used = cfg.rows[t] != 0 || cfg.colsb[t] != 0;
    if (t >= tile_count && used) detail::tile_fault("palette 1 has 8 tiles");
    if (used && (cfg.rows[t] == 0 || cfg.colsb[t] == 0 || cfg.rows[t] > tile_max_rows ||
                 cfg.colsb[t] > tile_max_colsb || cfg.colsb[t] % 4 != 0))
      detail::tile_fault("bad shape for tile " + std::to_string(t));
  }
  detail::TileState& s = detail::tile_state();
  s.config = cfg;
  s.configured = true;
  std::memset(s.data, 0, sizeof(s.data));  // LDTILECFG zeroes every tile
}

inline void release_tiles() {
  detail::TileState& s = detail::tile_state();
  s.configured = false;
  std::memset(s.data, 0, sizeof(s.data));
}

template <int T>
void tile_load(const void* base, std::size_t stride) {
  static_assert(T >= 0 && T < tile_count);
  detail::TileState& s = detail::configured_state(T, "tileloadd");
  std::memset(s.data[T], 0, sizeof(s.data[T]));
  const auto* p = static_cast<const std::uint8_t*>(base);
  for (int r = 0; r < s.config.rows[T]; ++r) std::memcpy(s.data[T][r], p + r * stride, s.config.colsb[T]);
}

template <int T>
void tile_store(void* base, std::size_t stride) {
  static_assert(T >= 0 && T < tile_count);
  detail::TileState& s = detail::configured_state(T, "tilestored");
  auto* p = static_cast<std::uint8_t*>(base);
  for (int r = 0; r < s.config.rows[T]; ++r) std::memcpy(p + r * stride, s.data[T][r], s.config.colsb[T]);
}

template <int T>
void tile_zero() {
  static_assert(T >= 0 && T < tile_count);
  detail::TileState& s = detail::configured_state(T, "tilezero");
  std::memset(s.data[T], 0, sizeof(s.data[T]));
}

template <int C, int A, int B>
void tile_dpbssd() {
  detail::emulate_dp_int8<true>(C, A, B, "tdpbssd");
}

template <int C, int A, int B>
void tile_dpbusd() {
  detail::emulate_dp_int8<false>(C, A, B, "tdpbusd");
}

template <int C, int A, int B>
void tile_dpbf16ps() {
  using namespace detail;
  TileState& s = configured_state(C, "tdpbf16ps");
  configured_state(A, "tdpbf16ps"), configured_state(B, "tdpbf16ps");
  check_dp_shapes(s, C, A, B, "tdpbf16ps");
  const int m_rows = s.config.rows[C], n_cols = s.config.colsb[C] / 4, k_groups = s.config.colsb[A] / 4;
  for (int m = 0; m < m_rows; ++m)
    for (int n = 0; n < n_cols; ++n) {
      float acc = tile_elem<float>(s, C, m, n);
      for (int k = 0; k < k_groups; ++k)
        for (int i = 0; i < 2; ++i)
          acc += bf16_bits_to_float(tile_elem<std::uint16_t>(s, A, m, 2 * k + i)) *
                 bf16_bits_to_float(tile_elem<std::uint16_t>(s, B, k, 2 * n + i));
      std::memcpy(&s.data[C][m][4 * n], &acc, 4);
    }
}

#else  // the real instructions

HMOE_TARGET_AMX inline void load_tile_config(const TileConfig& cfg) { _tile_loadconfig(&cfg); }
HMOE_TARGET_AMX inline void release_tiles() { _tile_release(); }

template <int T>
HMOE_TARGET_AMX inline void tile_load(const void* base, std::size_t stride) {
  static_assert(T >= 0 && T < tile_count);
  __asm__ volatile("{tileloadd\t(%0,%1,1), %%tmm%c2|tileloadd\t%%tmm%c2, [%0+%1*1]}"
                   :
                   : "r"(base), "r"(static_cast<long>(stride)), "n"(T)
                   : "memory");
}

template <int T>
HMOE_TARGET_AMX inline void tile_store(void* base, std::size_t stride) {
  static_assert(T >= 0 && T < tile_count);
  __asm__ volatile("{tilestored\t%%tmm%c2, (%0,%1,1)|tilestored\t[%0+%1*1], %%tmm%c2}"
                   :
                   : "r"(base), "r"(static_cast<long>(stride)), "n"(T)
                   : "memory");
}

template <int T>
HMOE_TARGET_AMX inline void tile_zero() {
  static_assert(T >= 0 && T < tile_count);
  __asm__ volatile("tilezero\t%%tmm%c0" : : "n"(T));
}

// AT&T operand order is B, A, C; Intel order is C, A, B.
template <int C, int A, int B>
HMOE_TARGET_AMX inline void tile_dpbssd() {
  static_assert(C != A && C != B && A != B && C < tile_count && A < tile_count && B < tile_count);
  __asm__ volatile("{tdpbssd\t%%tmm%c2, %%tmm%c1, %%tmm%c0|tdpbssd\t%%tmm%c0, %%tmm%c1, %%tmm%c2}"
                   :
                   : "n"(C), "n"(A), "n"(B));
}

template <int C, int A, int B>
HMOE_TARGET_AMX inline void tile_dpbusd() {
  static_assert(C != A && C != B && A != B && C < tile_count && A < tile_count && B < tile_count);
  __asm__ volatile("{tdpbusd\t%%tmm%c2, %%tmm%c1, %%tmm%c0|tdpbusd\t%%tmm%c0, %%tmm%c1, %%tmm%c2}"
                   :
                   : "n"(C), "n"(A), "n"(B));
}

template <int C, int A, int B>
HMOE_TARGET_AMX inline void tile_dpbf16ps() {
  static_assert(C != A && C != B && A != B && C < tile_count && A < tile_count && B < tile_count);
  __asm__ volatile("{tdpbf16ps\t%%tmm%c2, %%tmm%c1, %%tmm%c0|tdpbf16ps\t%%tmm%c0, %%tmm%c1, %%tmm%c2}"
                   :
                   : "n"(C), "n"(A), "n"(B));
}

#endif

/// Loads a config for the life of a kernel call on this thread and releases the tiles after (so the OS need
/// not save tile state for a thread that has stopped using it).
class TileScope {
 public:
  HMOE_TARGET_AMX explicit TileScope(const TileConfig& cfg) { load_tile_config(cfg); }
  HMOE_TARGET_AMX ~TileScope() { release_tiles(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

}  // namespace hmoe::cpu::amx
