/// \file
/// \brief Private to the unit: the kernels behind matmul (matrix.cpp), for any type matmul_supports.
#pragma once

#include <cstdint>

#include "hmoe/cuda/types.hpp"
#include "hmoe/quant/ggml_type.hpp"

namespace hmoe::cuda {
class Stream;
}

namespace hmoe::cuda::detail {

/// Tokens one GEMV pass serves: every pass reads W once.
inline constexpr int gemv_pass_tokens = 8;

/// y[t · ldy + r] = Σ_c W[r, c] · x[t · ldx + c] for t < tokens ≤ gemv_pass_tokens: W (rows × cols of `type`, rows
/// packed) is dequantized block by block in registers, f32 products and sums. matrix_gemv.cu.
void gemv_any(GgmlType type, const void* w, std::int64_t rows, std::int64_t cols, const float* x, std::int64_t ldx,
              float* y, std::int64_t ldy, int tokens, const Stream& s);

/// out (n_rows × cols, dense) = rows first_row .. first_row + n_rows - 1 of W, exactly as quant::dequantize_row
/// decodes them, then (Out = Bf16) rounded to nearest even. out must be 16-byte aligned. matrix_dequantize.cu.
template <activation Out>
void dequantize_rows(GgmlType type, const void* w, std::int64_t first_row, std::int64_t n_rows, std::int64_t cols,
                     Out* out, const Stream& s);

/// out (rows × cols, dense) = bf16(x), x rows ldx apart. matrix_dequantize.cu.
void rows_to_bf16(const float* x, std::int64_t ldx, Bf16* out, std::int64_t rows, std::int64_t cols, const Stream& s);

}  // namespace hmoe::cuda::detail
