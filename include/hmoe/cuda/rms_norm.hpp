/// \file
/// \brief RMSNorm fused with the residual add: x += delta; y = x / sqrt(mean(x²) + eps) · w, row by row.
///
/// The mean of squares is summed in double, as the CPU reference (layer/rms_norm.hpp) does, so only the order
/// of the sum differs; the scale is rounded to float and applied as x · scale · w in that order.
#pragma once

#include <cstdint>

#include "hmoe/cuda/types.hpp"

namespace hmoe::cuda {

class Stream;

/// x (rows × n, f32, device) is the residual stream: when delta is not null it is updated in place
/// (x += delta) before the norm. y (rows × n) gets the normalized rows, f32 or bf16 (to feed a bf16 GEMM).
/// w: n weights (f32). Instantiated for Out = float and Bf16.
template <activation Out>
void rms_norm_residual(float* x, const float* delta, const float* w, Out* y, std::int64_t rows, std::int64_t n,
                       float eps, const Stream& s);

}  // namespace hmoe::cuda
