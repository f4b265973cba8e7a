/// \file
/// \brief RMSNorm: y = x / sqrt(mean(x²) + eps) · w, the mean of squares summed in double as ggml does.
#pragma once

#include <cmath>
#include <cstdint>

namespace hmoe {

inline void rms_norm(const float* x, const float* w, float* y, std::int64_t n, float eps) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

}  // namespace hmoe
