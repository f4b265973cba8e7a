/// \file
/// \brief YaRN rotary embedding as llama.cpp applies it to deepseek2: adjacent pairs (x[2i], x[2i+1]) rotate.
///
/// Frequencies below the YaRN correction range are interpolated (divided by the factor), those above it are
/// kept, and a linear ramp mixes the two between; this equals HF's `yarn` rope for DeepSeek. The magnitude
/// correction (mscale) is folded into the attention scale (`DeepSeekHParams::kq_scale`), not into cos/sin,
/// exactly as llama.cpp passes `attn_factor` so that the two cancel.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "hmoe/model/hparams.hpp"

namespace hmoe {

class YarnRotary {
 public:
  explicit YarnRotary(const YarnRope& r) : half_(r.dims / 2), inv_freq_(static_cast<std::size_t>(r.dims / 2)) {
    const double base = r.freq_base, dims = static_cast<double>(r.dims);
    double low = 0, high = 0;
    if (r.yarn) {
      // Dimension index at which a frequency completes `rotations` turns over the original context.
      auto corr_dim = [&](double rotations) {
        return dims * std::log(static_cast<double>(r.original_context) / (rotations * 2 * std::numbers::pi)) /
               (2 * std::log(base));
      };
      low = std::max(0.0, std::floor(corr_dim(r.beta_fast)));
      high = std::min(dims - 1, std::ceil(corr_dim(r.beta_slow)));
    }
    for (std::int64_t i = 0; i < half_; ++i) {
      const double extrap = std::pow(base, -2.0 * static_cast<double>(i) / dims);
      double f = extrap;
      if (r.yarn) {
        const double interp = extrap / r.factor;
        const double y = (static_cast<double>(i) - low) / std::max(0.001, high - low);
        const double keep = 1.0 - std::clamp(y, 0.0, 1.0);  // 1: keep the original frequency
        f = interp * (1 - keep) + extrap * keep;
      }
      inv_freq_[static_cast<std::size_t>(i)] = static_cast<float>(f);
    }
  }

  /// The rotation frequency of each pair (what the CUDA unit's rope table copies to the device).
  const std::vector<float>& inv_freq() const { return inv_freq_; }

  /// Rotates x (2·half values) in place for position `pos`.
  void apply(float* x, std::int64_t pos) const {
    for (std::int64_t i = 0; i < half_; ++i) {
      // The angle is an f32 product, as in HF's and llama.cpp's rope, so long positions round the same way.
      const float theta = static_cast<float>(pos) * inv_freq_[static_cast<std::size_t>(i)];
      const float c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      x[2 * i] = x0 * c - x1 * s;
      x[2 * i + 1] = x0 * s + x1 * c;
    }
  }

 private:
  std::int64_t half_;
  std::vector<float> inv_freq_;
};

}  // namespace hmoe
