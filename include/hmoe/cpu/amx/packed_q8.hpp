/// \file
/// \brief `PackedQ8Blocks`: Q8_0 or Q5_0 weight rows regrouped into 16-row panels for AMX (the numbers stay
/// exactly the file's: d * q, Q5_0's q5 - 16 widened to int8), against ggml's Q8_0 activations (the same bytes
/// as avx512's Q8_0 activation rows). Models pack Q5_0 as the 6-bit `PackedQ5Blocks` (fewer bytes for decode);
/// Q5_0 here is the widened form that one's tile path unpacks to, and the tests' cross-check of it.
///
/// Per panel and 32-column block, one `Q8PanelBlock` (640 bytes): the int8 weights as an 8 x 64 VNNI B tile
/// (byte 64 g + 4 n + i = q[row n][4 g + i], K = 32 x 16 channels), the 16 rows' f16 scales widened to f32 and
/// 128 times each row's sum of q (for the AVX-512 path, which adds 128 to the activations because VPDPBUSD
/// multiplies unsigned by signed). Rows past the matrix are zero with scale 0.
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
#include "hmoe/quant/quantize.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

/// 16 rows x 32 columns of Q8_0 or Q5_0.
struct alignas(64) Q8PanelBlock {
  std::int8_t q[8][64];           ///< [VNNI row g][4 n + i]
  float d[panel_rows];            ///< per row
  std::int32_t bias[panel_rows];  ///< 128 * sum of the row's 32 q
};
static_assert(sizeof(Q8PanelBlock) == 640);

class PackedQ8Blocks {
 public:
  static constexpr int block_k = 32;

  static PackedQ8Blocks pack(const WeightMatrix& w) {
    auto fail = [&](const std::string& what) {
      throw std::invalid_argument(pack_error("PackedQ8Blocks", w.name, what));
    };
    if (w.type != GgmlType::Q8_0 && w.type != GgmlType::Q5_0)
      fail("stored as " + std::string(ggml_type_info(w.type).name) + ", not Q8_0 or Q5_0");
    if (w.rows <= 0 || w.cols <= 0 || w.data == nullptr) fail("empty matrix or no data");
    if (w.cols % block_k != 0) fail(std::to_string(w.cols) + " columns are not a multiple of 32");
    const std::int64_t nb = w.cols / block_k;
    const std::size_t bb = w.type == GgmlType::Q8_0 ? sizeof(quant::BlockQ8_0) : sizeof(quant::BlockQ5_0);
    if (w.row_bytes < static_cast<std::size_t>(nb) * bb) fail("row_bytes too small");
    PackedQ8Blocks p;
    p.rows_ = w.rows;
    p.cols_ = w.cols;
    p.source_ = w.type;
    p.blocks_ = PanelBlocks<Q8PanelBlock>(panel_count(w.rows), nb);
    for (std::int64_t r = 0; r < w.rows; ++r) {
      const int n = static_cast<int>(r % panel_rows);
      for (std::int64_t b = 0; b < nb; ++b) {
        std::int8_t q[block_k];
        std::uint16_t d = 0;
        const std::byte* src = w.row(r) + static_cast<std::size_t>(b) * bb;  // rows may be unaligned
        if (w.type == GgmlType::Q8_0) {
          quant::BlockQ8_0 blk;
          std::memcpy(&blk, src, sizeof blk);
          d = blk.d;
          std::memcpy(q, blk.qs, block_k);
        } else {
          quant::BlockQ5_0 blk;
          std::memcpy(&blk, src, sizeof blk);
          d = blk.d;
          std::uint32_t qh;
          std::memcpy(&qh, blk.qh, 4);
          for (int j = 0; j < 16; ++j) {
            const int x0 = (blk.qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10);
            const int x1 = (blk.qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
            q[j] = static_cast<std::int8_t>(x0 - 16);
            q[j + 16] = static_cast<std::int8_t>(x1 - 16);
          }
        }
        Q8PanelBlock& dst = p.blocks_.at(r / panel_rows, b);
        std::int32_t sum = 0;
        for (int g = 0; g < 8; ++g)
          for (int i = 0; i < 4; ++i) {
            dst.q[g][4 * n + i] = q[4 * g + i];
            sum += q[4 * g + i];
          }
        dst.d[n] = quant::fp16_to_fp32(d);
        dst.bias[n] = 128 * sum;
      }
    }
    return p;
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t blocks() const { return cols_ / block_k; }  ///< 32-blocks per row
  GgmlType source_type() const { return source_; }          ///< Q8_0 or Q5_0

  const Q8PanelBlock& block(std::int64_t panel, std::int64_t b) const {
    return blocks_.at(panel, b);
  }

  /// The int8 weight of row r, column k (Q5_0: q5 - 16).
  std::int8_t weight(std::int64_t r, std::int64_t k) const {
    const std::int64_t kk = k % block_k;
    return block(r / panel_rows, k / block_k).q[kk / 4][4 * (r % panel_rows) + kk % 4];
  }
  float scale(std::int64_t r, std::int64_t b) const { return block(r / panel_rows, b).d[r % panel_rows]; }

 private:
  std::int64_t rows_ = 0, cols_ = 0;
  GgmlType source_ = GgmlType::Q8_0;
  PanelBlocks<Q8PanelBlock> blocks_;
};

/// ggml's Q8_0 blocks, cols / 32 of them (34 bytes each; rows need no alignment): avx512's Q8_0 rows.
inline std::size_t activation_row_bytes(const PackedQ8Blocks& w) {
  return static_cast<std::size_t>(w.blocks()) * sizeof(quant::BlockQ8_0);
}

/// x (cols floats) to Q8_0 with ggml's semantics (quant::quantize_row_q8_0), bit-identical to
/// avx512::quantize_activation_row<Q8_0>.
inline void quantize_activation_row(const PackedQ8Blocks& w, const float* x, std::byte* out) {
  avx512::quantize_row<quant::BlockQ8_0>(x, w.cols(), out);
}

}  // namespace hmoe::cpu::amx
