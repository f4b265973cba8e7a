/// \file
/// \brief The reference matrix product: weights dequantized to f32 a tile of rows at a time, then an f32 GEMM.
///
/// Y(tokens, out) = X(tokens, in) · Wᵀ. Activations stay f32 (no activation quantization), so the result is
/// the exact answer for the file's weights up to f32 rounding. Work is split over output rows.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "hmoe/cpu/thread_pool.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// y (tokens × W.rows, row stride ldy) = x (tokens × W.cols, row stride ldx) · Wᵀ
inline void reference_matmul(ThreadPool& pool, const WeightMatrix& w, const float* x, std::int64_t ldx,
                             std::int64_t tokens, float* y, std::int64_t ldy) {
  using Stride = Eigen::OuterStride<>;
  constexpr std::int64_t tile_rows = 32;
  const std::int64_t tiles = (w.rows + tile_rows - 1) / tile_rows;
  pool.parallel_for(tiles, [&](std::int64_t t0, std::int64_t t1) {
    RowMatrix tile(tile_rows, w.cols);
    Eigen::Map<const RowMatrix, 0, Stride> xs(x, tokens, w.cols, Stride(ldx));
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t r0 = t * tile_rows, nr = std::min(tile_rows, w.rows - r0);
      for (std::int64_t r = 0; r < nr; ++r) w.dequantize_row(r0 + r, tile.row(r).data());
      Eigen::Map<RowMatrix, 0, Stride> ys(y + r0, tokens, nr, Stride(ldy));
      ys.noalias() = xs * tile.topRows(nr).transpose();
    }
  });
}

}  // namespace hmoe::cpu

namespace hmoe::cpu {

/// y (tokens × W.cols, stride ldy) = x (tokens × W.rows, stride ldx) · W — the product with W as stored, not
/// transposed. Used where a file keeps a matrix the other way round (the legacy attn_kv_b's K half). Runs on
/// the calling thread: the rows of W all add into every output, so splitting them would need a reduction.
inline void reference_matmul_transposed(const WeightMatrix& w, const float* x, std::int64_t ldx, std::int64_t tokens,
                                        float* y, std::int64_t ldy) {
  using Stride = Eigen::OuterStride<>;
  constexpr std::int64_t tile_rows = 32;
  RowMatrix tile(tile_rows, w.cols);
  Eigen::Map<RowMatrix, 0, Stride> ys(y, tokens, w.cols, Stride(ldy));
  ys.setZero();
  for (std::int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
    const std::int64_t nr = std::min(tile_rows, w.rows - r0);
    for (std::int64_t r = 0; r < nr; ++r) w.dequantize_row(r0 + r, tile.row(r).data());
    Eigen::Map<const RowMatrix, 0, Stride> xs(x + r0, tokens, nr, Stride(ldx));
    ys.noalias() += xs * tile.topRows(nr);
  }
}

}  // namespace hmoe::cpu
