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

#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

class PackedBF16 : public PanelTiles<32, 2> {
 public:
  static PackedBF16 pack(const WeightMatrix& w) {
    PackedBF16 p;
    p.init("PackedBF16", w);
    for_each_row(w, [&](std::int64_t r, const float* x) {
      for (std::int64_t k = 0; k < w.cols; ++k) p.set_element(r, k, quant::fp32_to_bf16(x[k]));
    });
    return p;
  }

  /// bf16 bits of w[r][k].
  std::uint16_t weight(std::int64_t r, std::int64_t k) const { return element<std::uint16_t>(r, k); }
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
