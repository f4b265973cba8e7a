/// \file
/// \brief Elementwise kernels: SwiGLU's silu(gate) · up, and f32 <-> bf16 conversion of activations.
#pragma once

#include <cstdint>

#include "hmoe/cuda/types.hpp"

namespace hmoe::cuda {

class Stream;

/// out[r, c] = silu(gate[r, c]) · up[r, c] with silu(x) = x / (1 + exp(-x)) (layer/mlp.hpp), for rows × cols
/// values; gate and up rows are ld_in apart (so a fused gate|up GEMM output works: up = gate + cols), out rows
/// ld_out apart. Instantiated for Out = float and Bf16.
template <activation Out>
void silu_mul(const float* gate, const float* up, Out* out, std::int64_t rows, std::int64_t cols,
              std::int64_t ld_in, std::int64_t ld_out, const Stream& s);

/// y = bf16(x), round to nearest even (quant/half.hpp), n values.
void to_bf16(const float* x, Bf16* y, std::int64_t n, const Stream& s);
/// y = f32(x), exact, n values.
void to_f32(const Bf16* x, float* y, std::int64_t n, const Stream& s);

}  // namespace hmoe::cuda
