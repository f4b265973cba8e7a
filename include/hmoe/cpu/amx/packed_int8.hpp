/// \file
/// \brief `PackedInt8`: int8 weights with one f32 scale per output channel, in 16-channel panels laid out as
/// AMX B tiles, and its activation format (int8 with one f32 scale per token).
///
/// Weights: scale = amax / 127 per row, q = round-half-even(x / scale) from the dequantized stored row, so any
/// stored type packs. Columns are zero-padded to a multiple of 64. Panel p, K chunk c is one 1 KiB B tile:
/// byte 64 g + 4 n + i = q[16 p + n][64 c + 4 g + i] (16 rows of 4-K groups x 16 channels). Rows past the
/// matrix are zero with scale 0. 128 times each row's sum of q is kept for the AVX-512 path, which adds 128 to the
/// activations (VPDPBUSD multiplies unsigned by signed) and subtracts 128 * sum afterwards.
///
/// Activations: one symmetric scale per token (amax / 127), so a C tile accumulates the whole K in int32
/// (|sum| <= 127^2 K, exact for K < 133000) and is read out once; a per-256 scale would force a tile store
/// every 4 tile products. Row layout: kp int8 values, then the f32 scale in a 64-byte trailer (rows stay
/// 64-byte multiples).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "hmoe/cpu/amx/panel.hpp"
#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu::amx {

class PackedInt8 : public PanelTiles<64, 1> {
 public:
  static PackedInt8 pack(const WeightMatrix& w) {
    PackedInt8 p;
    p.init("PackedInt8", w);
    const auto padded_rows = static_cast<std::size_t>(panel_count(w.rows) * panel_rows);
    p.scale_.assign(padded_rows, 0.0f);
    p.bias_.assign(padded_rows, 0);
    for_each_row(w, [&](std::int64_t r, const float* x) {
      float amax = 0.0f;
      for (std::int64_t k = 0; k < w.cols; ++k) amax = std::max(amax, std::fabs(x[k]));
      const float scale = amax / 127.0f;
      std::int32_t sum = 0;
      for (std::int64_t k = 0; k < w.cols; ++k) {
        const float q = scale > 0.0f ? std::nearbyint(x[k] / scale) : 0.0f;
        const auto qi = static_cast<std::int8_t>(std::clamp(q, -127.0f, 127.0f));
        p.set_element(r, k, qi);
        sum += qi;
      }
      p.scale_[static_cast<std::size_t>(r)] = scale;
      p.bias_[static_cast<std::size_t>(r)] = 128 * sum;
    });
    return p;
  }

  const float* scales() const { return scale_.data(); }            ///< per row, padded to whole panels
  const std::int32_t* row_biases() const { return bias_.data(); }  ///< 128 * sum of q per row, padded

  std::int8_t weight(std::int64_t r, std::int64_t k) const { return element<std::int8_t>(r, k); }
  float scale(std::int64_t r) const { return scale_[static_cast<std::size_t>(r)]; }

 private:
  std::vector<float> scale_;
  std::vector<std::int32_t> bias_;
};

/// padded_cols int8 values and a 64-byte trailer holding the f32 scale.
inline std::size_t activation_row_bytes(const PackedInt8& w) {
  return static_cast<std::size_t>(w.padded_cols()) + 64;
}

/// The scale of an Int8 activation row.
inline float activation_scale(const PackedInt8& w, const std::byte* row) {
  float s;
  std::memcpy(&s, row + w.padded_cols(), 4);
  return s;
}

/// x (cols floats) to one activation row: scale = amax / 127, q = round-half-even(x / scale), zero padding.
inline void quantize_activation_row(const PackedInt8& w, const float* x, std::byte* out) {
  float amax = 0.0f;
  for (std::int64_t k = 0; k < w.cols(); ++k) amax = std::max(amax, std::fabs(x[k]));
  const float scale = amax / 127.0f;
  auto* q = reinterpret_cast<std::int8_t*>(out);
  for (std::int64_t k = 0; k < w.cols(); ++k)
    q[k] = static_cast<std::int8_t>(scale > 0.0f ? std::clamp(std::nearbyint(x[k] / scale), -127.0f, 127.0f) : 0.0f);
  std::memset(out + w.cols(), 0, static_cast<std::size_t>(w.padded_cols() - w.cols() + 64));
  std::memcpy(out + w.padded_cols(), &scale, 4);
}

}  // namespace hmoe::cpu::amx
