/// \file
/// \brief What every packed AMX format shares: 16-row weight panels, the tile-register plan of the kernels,
/// 64-byte-aligned storage, argument checks and the zero-padded last block of tokens.
///
/// Weights are the B operand of the tile product (K x 16 output channels, in VNNI layout) and activations
/// the A operand (16 tokens x K, read straight from the caller's activation rows), so a C tile is 16 tokens x
/// 16 channels: the layout of y. Kernels hold 2 token blocks x 2 panels at once: A in tiles 0-1, B in 2-3
/// and the four C tiles in 4-7, so each pair of A and B loads feeds four dot products.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/cpu/amx/tiles.hpp"
#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

inline constexpr int panel_rows = 16;    ///< output channels per panel (N of a C tile)
inline constexpr int token_rows = 16;    ///< tokens per A tile (M of a C tile)
inline constexpr int tile_a0 = 0, tile_a1 = 1, tile_b0 = 2, tile_b1 = 3;
/// C tile of token block ti (0, 1) and panel pi (0, 1).
template <int TI, int PI> inline constexpr int tile_c = 4 + 2 * TI + PI;

/// The kernels' config: A tiles 16 x a_colsb, B tiles b_rows x 64 (16 channels of 4 bytes), C tiles 16 x 64.
constexpr TileConfig kernel_tile_config(int a_colsb, int b_rows) {
  TileConfig c;
  c.tile(tile_a0, token_rows, a_colsb).tile(tile_a1, token_rows, a_colsb);
  c.tile(tile_b0, b_rows, 64).tile(tile_b1, b_rows, 64);
  for (int t = 4; t < 8; ++t) c.tile(t, token_rows, 64);
  return c;
}

inline std::int64_t panel_count(std::int64_t rows) { return (rows + panel_rows - 1) / panel_rows; }
inline std::int64_t round_up(std::int64_t v, std::int64_t m) { return (v + m - 1) / m * m; }

/// Zero-initialised bytes at 64-byte alignment (a tile row, a cache line).
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(std::size_t n)
      : p_(static_cast<std::byte*>(::operator new[](n, std::align_val_t{64}))), n_(n) {
    std::memset(p_.get(), 0, n);
  }
  std::byte* data() { return p_.get(); }
  const std::byte* data() const { return p_.get(); }
  std::size_t size() const { return n_; }

 private:
  struct Free {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<std::byte[], Free> p_;
  std::size_t n_ = 0;
};

/// A packed matrix's blocks, panel-major: `per_panel` blocks of type Block for each 16-row panel, zeroed (rows
/// past the matrix stay zero).
template <class Block>
class PanelBlocks {
 public:
  PanelBlocks() = default;
  PanelBlocks(std::int64_t panels, std::int64_t per_panel)
      : per_panel_(per_panel), bytes_(static_cast<std::size_t>(panels * per_panel) * sizeof(Block)) {}

  const Block& at(std::int64_t panel, std::int64_t b) const {
    return reinterpret_cast<const Block*>(bytes_.data())[panel * per_panel_ + b];
  }
  Block& at(std::int64_t panel, std::int64_t b) {
    return reinterpret_cast<Block*>(bytes_.data())[panel * per_panel_ + b];
  }

 private:
  std::int64_t per_panel_ = 0;
  AlignedBytes bytes_;
};

/// The start of every pack error: the format and the tensor's name.
inline std::string pack_error(const char* format, const std::string& name, const std::string& what) {
  return std::string("hmoe::cpu::amx::") + format + "::pack: " + name + ": " + what;
}

/// Checks that w's rows can be dequantized (any stored type packs to Int8 and BF16).
inline void check_readable(const char* format, const WeightMatrix& w) {
  if (w.rows <= 0 || w.cols <= 0 || w.data == nullptr)
    throw std::invalid_argument(pack_error(format, w.name, "empty matrix or no data"));
  if (!quant::can_dequantize(w.type))
    throw std::invalid_argument(pack_error(format, w.name, "cannot dequantize its stored type"));
  std::size_t need = 0;
  try {
    need = quant::row_bytes(w.type, w.cols);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(pack_error(format, w.name, e.what()));
  }
  if (w.row_bytes < need) throw std::invalid_argument(pack_error(format, w.name, "row_bytes too small"));
}

/// What the plain packed formats (`PackedInt8`, `PackedBF16`) share: K zero-padded to whole chunks of ChunkK,
/// and panel p, K chunk c stored as one 1 KiB B tile whose row g holds 16 channels of 4 bytes, each the
/// 4 / ElemBytes consecutive K values of one channel (VNNI layout). Rows past the matrix are zero.
template <int ChunkK, int ElemBytes>
class PanelTiles {
 public:
  static constexpr int chunk_k = ChunkK;                   ///< K per B tile
  static constexpr int chunk_bytes = 1024;                 ///< one B tile
  static constexpr int act_chunk_bytes = ChunkK * ElemBytes;  ///< one K chunk of an activation row (an A tile row)

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t padded_cols() const { return kp_; }
  std::int64_t chunks() const { return kp_ / chunk_k; }

  /// B tile of panel p, K chunk c.
  const std::byte* chunk(std::int64_t p, std::int64_t c) const {
    return data_.data() + static_cast<std::size_t>((p * chunks() + c) * chunk_bytes);
  }

 protected:
  /// The first pack steps: checks w, sets the geometry and allocates the zeroed tiles.
  void init(const char* format, const WeightMatrix& w) {
    check_readable(format, w);
    rows_ = w.rows;
    cols_ = w.cols;
    kp_ = round_up(w.cols, chunk_k);
    data_ = AlignedBytes(static_cast<std::size_t>(panel_count(w.rows) * chunks() * chunk_bytes));
  }

  /// f(r, x) for every row r of w, x its cols dequantized values.
  template <class F>
  static void for_each_row(const WeightMatrix& w, F&& f) {
    std::vector<float> x(static_cast<std::size_t>(w.cols));
    for (std::int64_t r = 0; r < w.rows; ++r) {
      w.dequantize_row(r, x.data());
      f(r, static_cast<const float*>(x.data()));
    }
  }

  /// w[r][k], of ElemBytes bytes.
  template <class T>
  T element(std::int64_t r, std::int64_t k) const {
    static_assert(sizeof(T) == ElemBytes);
    T v;
    std::memcpy(&v, data_.data() + offset(r, k), sizeof(T));
    return v;
  }
  template <class T>
  void set_element(std::int64_t r, std::int64_t k, T v) {
    static_assert(sizeof(T) == ElemBytes);
    std::memcpy(data_.data() + offset(r, k), &v, sizeof(T));
  }

 private:
  static constexpr int per_group = 4 / ElemBytes;  ///< K values per 4-byte VNNI group

  std::size_t offset(std::int64_t r, std::int64_t k) const {
    const std::int64_t p = r / panel_rows, n = r % panel_rows, c = k / chunk_k, g = (k % chunk_k) / per_group,
                       i = k % per_group;
    return static_cast<std::size_t>((p * chunks() + c) * chunk_bytes + 64 * g + 4 * n + ElemBytes * i);
  }

  std::int64_t rows_ = 0, cols_ = 0, kp_ = 0;
  AlignedBytes data_;
};

/// Checks what every matmul entry point assumes, once per call.
inline void check_matmul_args(const char* who, std::int64_t rows, std::int64_t row_begin, std::int64_t row_end,
                              const std::byte* act, std::size_t act_row_bytes, std::size_t need_row_bytes,
                              std::int64_t tokens, const float* y, std::int64_t ldy) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(who) + ": " + what); };
  if (row_begin < 0 || row_begin % panel_rows != 0) fail("row_begin must be a non-negative multiple of 16");
  if (row_end < row_begin || row_end > rows) fail("row range outside the matrix");
  if (tokens < 0) fail("negative token count");
  if (tokens > 0 && row_end > row_begin) {
    if (act == nullptr || y == nullptr) fail("null activations or output");
    if (act_row_bytes < need_row_bytes) fail("activation rows shorter than activation_row_bytes");
    if (tokens > 1 && ldy < row_end) fail("ldy smaller than row_end");
  }
}

/// 16 activation rows as the A operand sees them: count real tokens, the rest zero.
struct TokenBlock {
  const std::byte* base = nullptr;
  std::size_t stride = 0;
  int count = 0;
  const std::byte* row(int r) const { return base + static_cast<std::size_t>(r) * stride; }
};

/// This thread's buffer for the zero-padded last token block, grown (outside the hot loop) to 16 rows.
inline std::byte* padding_buffer(std::size_t row_bytes) {
  thread_local std::vector<std::byte> buf;
  if (buf.size() < token_rows * row_bytes) buf.resize(token_rows * row_bytes);
  return buf.data();
}

/// Tokens [t0, t0 + 16) of act. Fewer than 16 left: a zero-padded copy in pad, so a tile load never reads
/// past the caller's rows.
inline TokenBlock token_block(const std::byte* act, std::size_t stride, std::int64_t tokens, std::int64_t t0,
                              std::size_t row_bytes, std::byte* pad) {
  const int count = static_cast<int>(std::min<std::int64_t>(token_rows, tokens - t0));
  const std::byte* first = act + static_cast<std::size_t>(t0) * stride;
  if (count == token_rows) return {first, stride, count};
  for (int r = 0; r < count; ++r) std::memcpy(pad + r * row_bytes, first + r * stride, row_bytes);
  std::memset(pad + count * row_bytes, 0, (token_rows - count) * row_bytes);
  return {pad, row_bytes, count};
}

}  // namespace hmoe::cpu::amx
