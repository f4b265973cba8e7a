/// \file
/// \brief `PackedBF16`: bf16 weights (from any stored type, round to nearest even) in 16-channel panels laid
/// out as AMX B tiles, and its activation format (the row in bf16, round to nearest even).
///
/// Columns are zero-padded to a multiple of 32. Panel p, K chunk c is one 1 KiB B tile: bf16 at index
/// 32 g + 2 n + i = w[16 p + n][32 c + 2 g + i] (16 rows of K pairs x 16 channels). Rows past the matrix are 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

class PackedBF16 {
 public:
  static constexpr int chunk_k = 32;        ///< K per B tile
  static constexpr int chunk_bytes = 1024;  ///< one B tile

  static PackedBF16 pack(const WeightMatrix& w) {
    check_readable("PackedBF16", w);
    PackedBF16 p;
    p.rows_ = w.rows;
    p.cols_ = w.cols;
    p.kp_ = round_up(w.cols, chunk_k);
    p.data_ = AlignedBytes(static_cast<std::size_t>(panel_count(w.rows) * p.chunks() * chunk_bytes));
    auto* out = reinterpret_cast<std::uint16_t*>(p.data_.data());
    std::vector<float> x(static_cast<std::size_t>(w.cols));
    for (std::int64_t r = 0; r < w.rows; ++r) {
      w.dequantize_row(r, x.data());
      for (std::int64_t k = 0; k < w.cols; ++k) out[p.weight_index(r, k)] = quant::fp32_to_bf16(x[k]);
    }
    return p;
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t padded_cols() const { return kp_; }
  std::int64_t chunks() const { return kp_ / chunk_k; }

  /// B tile of panel p, K chunk c.
  const std::byte* chunk(std::int64_t p, std::int64_t c) const {
    return data_.data() + static_cast<std::size_t>((p * chunks() + c) * chunk_bytes);
  }
  /// bf16 bits of w[r][k].
  std::uint16_t weight(std::int64_t r, std::int64_t k) const {
    return reinterpret_cast<const std::uint16_t*>(data_.data())[weight_index(r, k)];
  }

 private:
  std::size_t weight_index(std::int64_t r, std::int64_t k) const {
    const std::int64_t p = r / panel_rows, n = r % panel_rows, c = k / chunk_k, g = (k % chunk_k) / 2, i = k % 2;
    return static_cast<std::size_t>((p * chunks() + c) * (chunk_bytes / 2) + 32 * g + 2 * n + i);
  }

  std::int64_t rows_ = 0, cols_ = 0, kp_ = 0;
  AlignedBytes data_;
};

/// padded_cols bf16 values (a multiple of 64 bytes).
inline std::size_t activation_row_bytes(const PackedBF16& w) { return static_cast<std::size_t>(w.padded_cols()) * 2; }

/// x (cols floats) to bf16, round to nearest even, zero padding.
inline void quantize_activation_row(const PackedBF16& w, const float* x, std::byte* out) {
  for (std::int64_t k = 0; k < w.cols(); ++k) {
    const std::uint16_t b = quant::fp32_to_bf16(x[k]);
    std::memcpy(out + 2 * k, &b, 2);
  }
  std::memset(out + 2 * w.cols(), 0, static_cast<std::size_t>(2 * (w.padded_cols() - w.cols())));
}

}  // namespace hmoe::cpu::amx
