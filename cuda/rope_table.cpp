/// \file
/// \brief RopeTable: YaRN's per-pair frequencies, computed on the host in double as layer/rope.hpp's YarnRotary
/// computes them (tests/gpu/test_rope.cpp checks the two give the same rotation), then copied to the device.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "hmoe/cuda/rope.hpp"
#include "hmoe/model/hparams.hpp"

namespace hmoe::cuda {

namespace {
std::vector<float> yarn_inv_freq(const YarnRope& r) {
  const std::int64_t half = r.dims / 2;
  std::vector<float> out(static_cast<std::size_t>(half));
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
  for (std::int64_t i = 0; i < half; ++i) {
    const double extrap = std::pow(base, -2.0 * static_cast<double>(i) / dims);
    double f = extrap;
    if (r.yarn) {
      const double interp = extrap / r.factor;
      const double y = (static_cast<double>(i) - low) / std::max(0.001, high - low);
      const double keep = 1.0 - std::clamp(y, 0.0, 1.0);  // 1: keep the original frequency
      f = interp * (1 - keep) + extrap * keep;
    }
    out[static_cast<std::size_t>(i)] = static_cast<float>(f);
  }
  return out;
}
}  // namespace

RopeTable::RopeTable(const YarnRope& r)
    : pairs_(r.dims / 2), host_(yarn_inv_freq(r)), inv_freq_(Buffer::from(host_.data(), host_.size())) {}

}  // namespace hmoe::cuda
