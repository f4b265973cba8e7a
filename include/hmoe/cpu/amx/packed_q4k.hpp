/// \file
/// \brief `PackedQ4K`: Q4_K weights regrouped into 16-row panels for AMX (the numbers stay exactly Q4_K's:
/// d * sc * q - dmin * m), and its activation format, ggml's Q8_K.
///
/// Per panel and 256-column super-block, one `Q4KPanelBlock` (2432 bytes, 4.75 bits per weight): the 16 rows'
/// d and dmin as f32 (exact widenings of the f16s), the 8 six-bit scales and mins unpacked to bytes as
/// [sub-block][row] (one 16-byte load per sub-block gives all 16 rows), and the nibbles regrouped so that
/// byte 64 g + 4 n + i of chunk c holds, for row n, value 64 c + 4 g + i (low nibble, sub-block 2 c) and value
/// 64 c + 32 + 4 g + i (high nibble, sub-block 2 c + 1). Masking the low (or shifting out the high) nibbles of
/// the 8 rows of 64 bytes gives a ready 8 x 64 VNNI B tile of one sub-block (K = 32 x 16 channels), and the
/// same rows feed VPDPBUSD directly in the AVX-512 path. Rows past the matrix are zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/cpu/avx512/quantize.hpp"
#include "hmoe/quant/ggml_type.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/k_blocks.hpp"
#include "hmoe/quant/quantize.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

/// 16 rows x 256 columns of Q4_K.
struct alignas(64) Q4KPanelBlock {
  float d[panel_rows];
  float dmin[panel_rows];
  std::uint8_t sc[8][panel_rows];  ///< [sub-block][row]
  std::uint8_t m[8][panel_rows];   ///< [sub-block][row]
  std::uint8_t qs[4][8][64];       ///< [chunk][VNNI row][4 n + i]
};
static_assert(sizeof(Q4KPanelBlock) == 2432);

class PackedQ4K {
 public:
  static PackedQ4K pack(const WeightMatrix& w) {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(pack_error("PackedQ4K", w.name, what)); };
    if (w.type != GgmlType::Q4_K)
      fail("stored as " + std::string(ggml_type_info(w.type).name) + ", not Q4_K");
    if (w.rows <= 0 || w.cols <= 0 || w.data == nullptr) fail("empty matrix or no data");
    if (w.cols % quant::qk_k != 0) fail(std::to_string(w.cols) + " columns are not a multiple of 256");
    const std::int64_t nb = w.cols / quant::qk_k;
    if (w.row_bytes < static_cast<std::size_t>(nb) * sizeof(quant::BlockQ4_K)) fail("row_bytes too small");
    PackedQ4K p;
    p.rows_ = w.rows;
    p.cols_ = w.cols;
    p.blocks_ = PanelBlocks<Q4KPanelBlock>(panel_count(w.rows), nb);
    for (std::int64_t r = 0; r < w.rows; ++r) {
      const int n = static_cast<int>(r % panel_rows);
      for (std::int64_t b = 0; b < nb; ++b) {
        quant::BlockQ4_K src;
        std::memcpy(&src, w.row(r) + b * sizeof(quant::BlockQ4_K), sizeof src);  // rows may be unaligned
        Q4KPanelBlock& dst = p.blocks_.at(r / panel_rows, b);
        dst.d[n] = quant::fp16_to_fp32(src.d);
        dst.dmin[n] = quant::fp16_to_fp32(src.dmin);
        for (int j = 0; j < 8; ++j) {
          int sc = 0, m = 0;
          quant::detail::k4_scale_min(src.scales, j, sc, m);
          dst.sc[j][n] = static_cast<std::uint8_t>(sc);
          dst.m[j][n] = static_cast<std::uint8_t>(m);
        }
        for (int c = 0; c < 4; ++c)
          for (int g = 0; g < 8; ++g) std::memcpy(&dst.qs[c][g][4 * n], &src.qs[32 * c + 4 * g], 4);
      }
    }
    return p;
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t blocks() const { return cols_ / quant::qk_k; }  ///< super-blocks per row

  const Q4KPanelBlock& block(std::int64_t panel, std::int64_t b) const {
    return blocks_.at(panel, b);
  }

 private:
  std::int64_t rows_ = 0, cols_ = 0;
  PanelBlocks<Q4KPanelBlock> blocks_;
};

/// ggml's Q8_K blocks, cols / 256 of them (292 bytes each; rows need only 4-byte alignment).
inline std::size_t activation_row_bytes(const PackedQ4K& w) {
  return static_cast<std::size_t>(w.blocks()) * sizeof(quant::BlockQ8_K);
}

/// x (cols floats) to Q8_K with ggml's semantics (bit-identical to quant::quantize_row_q8_K).
inline void quantize_activation_row(const PackedQ4K& w, const float* x, std::byte* out) {
  avx512::quantize_row<quant::BlockQ8_K>(x, w.cols(), out);
}

}  // namespace hmoe::cpu::amx
