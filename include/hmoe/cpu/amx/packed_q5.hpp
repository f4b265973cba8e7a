/// \file
/// \brief `PackedQ5Blocks`: Q5_0 weight rows regrouped into 16-row panels at 6 bits a weight (the numbers stay
/// exactly the file's: d * (q5 - 16)), against ggml's Q8_0 activations.
///
/// Why not widen Q5_0 to int8 like Q8_0 (`PackedQ8Blocks`, 10 bits a weight with its f32 scale and bias): decode
/// streams every weight once per token, so bytes are time. DeepSeek-V2-Lite's expert down matrices (1408 columns,
/// not a multiple of 256) are Q5_0 in llama.cpp's Q4_K_M, about a third of the expert bytes a token reads.
///
/// Per panel and 32-column block, one `Q5PanelBlock` (384 bytes, six cache lines):
/// - `qs[j]` (j < 4): byte 4 n + i holds row n's low 4 bits of column 4 j + i (low nibble) and of column
///   16 + 4 j + i (high nibble) -- exactly the file's `qs[4 j + i]`;
/// - `negative[g]` (g < 8, the VNNI group of columns 4 g .. 4 g + 3): bit 4 n + i is set when q5 - 16 < 0 for row n,
///   column 4 g + i (the file's fifth bit is 0). Then the signed weight is the nibble minus 16 under that mask
///   (one masked byte subtraction), an 8 x 64 VNNI row ready for VPDPBUSD or, unpacked, for a tile;
/// - the rows' f16 scales as in the file, and each row's sum of (q5 - 16), the bias the AVX-512 path subtracts
///   (times 128) because VPDPBUSD multiplies unsigned activations + 128 by signed weights.
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
#include "hmoe/quant/legacy_blocks.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

/// 16 rows x 32 columns of Q5_0.
struct alignas(64) Q5PanelBlock {
  std::uint8_t qs[4][64];        ///< [j][4 n + i]: columns 4 j + i (low nibble) and 16 + 4 j + i (high nibble)
  std::uint64_t negative[8];     ///< [VNNI group g]: bit 4 n + i set where the weight of column 4 g + i is < 0
  std::uint16_t d[panel_rows];   ///< f16, per row
  std::int16_t sum[panel_rows];  ///< per row: the sum of its 32 signed weights
};
static_assert(sizeof(Q5PanelBlock) == 384);

class PackedQ5Blocks {
 public:
  static constexpr int block_k = 32;

  static PackedQ5Blocks pack(const WeightMatrix& w) {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(pack_error("PackedQ5Blocks", w.name, what));
    };
    if (w.type != GgmlType::Q5_0) fail("stored as " + std::string(ggml_type_info(w.type).name) + ", not Q5_0");
    if (w.rows <= 0 || w.cols <= 0 || w.data == nullptr) fail("empty matrix or no data");
    if (w.cols % block_k != 0) fail(std::to_string(w.cols) + " columns are not a multiple of 32");
    const std::int64_t nb = w.cols / block_k;
    if (w.row_bytes < static_cast<std::size_t>(nb) * sizeof(quant::BlockQ5_0)) fail("row_bytes too small");
    PackedQ5Blocks p;
    p.rows_ = w.rows;
    p.cols_ = w.cols;
    p.blocks_ = PanelBlocks<Q5PanelBlock>(panel_count(w.rows), nb);
    for (std::int64_t r = 0; r < w.rows; ++r) {
      const int n = static_cast<int>(r % panel_rows);
      for (std::int64_t b = 0; b < nb; ++b) {
        quant::BlockQ5_0 src;  // rows may be unaligned
        std::memcpy(&src, w.row(r) + static_cast<std::size_t>(b) * sizeof src, sizeof src);
        std::uint32_t qh;
        std::memcpy(&qh, src.qh, 4);
        Q5PanelBlock& dst = p.blocks_.at(r / panel_rows, b);
        for (int j = 0; j < 4; ++j) std::memcpy(&dst.qs[j][4 * n], &src.qs[4 * j], 4);
        int sum = 0;
        for (int c = 0; c < block_k; ++c) {
          const bool fifth = (qh >> c) & 1u;  // ggml: bit c of qh is the fifth bit of column c
          const int nibble = c < 16 ? src.qs[c] & 0x0F : src.qs[c - 16] >> 4;
          sum += nibble + (fifth ? 16 : 0) - 16;
          if (!fifth) dst.negative[c / 4] |= std::uint64_t{1} << (4 * n + c % 4);
        }
        dst.d[n] = src.d;
        dst.sum[n] = static_cast<std::int16_t>(sum);
      }
    }
    return p;
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t blocks() const { return cols_ / block_k; }  ///< 32-blocks per row

  const Q5PanelBlock& block(std::int64_t panel, std::int64_t b) const {
    return blocks_.at(panel, b);
  }

  /// The signed weight q5 - 16 of row r, column k.
  std::int8_t weight(std::int64_t r, std::int64_t k) const {
    const Q5PanelBlock& pb = block(r / panel_rows, k / block_k);
    const int c = static_cast<int>(k % block_k), n = static_cast<int>(r % panel_rows);
    const int byte = pb.qs[c % 16 / 4][4 * n + c % 4];
    const int nibble = c < 16 ? byte & 0x0F : byte >> 4;
    return static_cast<std::int8_t>(nibble - (((pb.negative[c / 4] >> (4 * n + c % 4)) & 1u) ? 16 : 0));
  }
  float scale(std::int64_t r, std::int64_t b) const {
    return quant::fp16_to_fp32(block(r / panel_rows, b).d[r % panel_rows]);
  }

 private:
  std::int64_t rows_ = 0, cols_ = 0;
  PanelBlocks<Q5PanelBlock> blocks_;
};

/// ggml's Q8_0 blocks, cols / 32 of them (34 bytes each): the activations of Q5_0 rows, as in avx512's path.
inline std::size_t activation_row_bytes(const PackedQ5Blocks& w) {
  return static_cast<std::size_t>(w.blocks()) * sizeof(quant::BlockQ8_0);
}

/// x (cols floats) to Q8_0, bit-identical to quant::quantize_row_q8_0.
inline void quantize_activation_row(const PackedQ5Blocks& w, const float* x, std::byte* out) {
  avx512::quantize_row<quant::BlockQ8_0>(x, w.cols(), out);
}

}  // namespace hmoe::cpu::amx
