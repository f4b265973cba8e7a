/// \file
/// \brief Weight matrices on the GPU in the file's own format, and y = x · Wᵀ for any token count.
///
/// A `DeviceMatrix` holds a GGUF weight's bytes as stored (F32, F16, BF16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, Q2_K..Q6_K),
/// so the GPU computes with exactly the numbers the CPU reference dequantizes. `matmul` picks the kernel:
/// - tokens ≤ `gemv_max_tokens`: a GEMV that dequantizes each block in registers (memory-bound decode; Q4_K
///   uses gemv_q4_k), f32 activations, f32 accumulation;
/// - more tokens: the weights are dequantized chunk by chunk into the workspace and multiplied by cuBLASLt, in
///   f32 (`Precision::F32`, exact up to f32 rounding) or with bf16 inputs on the tensor cores (`Precision::BF16`,
///   activations and weights rounded to bf16, f32 accumulation: the fast prefill path).
///
/// Host-only header: no CUDA headers. Pointers are device pointers; calls are queued on the Stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/gemm.hpp"
#include "hmoe/quant/ggml_type.hpp"

namespace hmoe::cuda {

class Stream;

/// The ggml types matmul takes.
bool matmul_supports(GgmlType type) noexcept;

/// A rows × cols weight (GGUF layout: row r is cols values, row_bytes bytes, in `type`) in device memory.
class DeviceMatrix {
 public:
  DeviceMatrix() = default;
  /// What a matrix is, without its data (checked by upload and view).
  struct Shape {
    GgmlType type;
    std::int64_t rows, cols;
    std::size_t row_bytes;
  };
  /// Copies rows × cols values in `type` from host memory whose rows are host_row_bytes apart (≥ the packed row
  /// size; per-expert and per-head slices of a 3-D tensor are rows of it). Throws std::invalid_argument naming
  /// `name` for a type matmul does not take or a cols that is not a whole number of blocks.
  static DeviceMatrix upload(const std::string& name, GgmlType type, std::int64_t rows, std::int64_t cols,
                             const void* host, std::size_t host_row_bytes);

  /// A matrix over device memory someone else owns (rows of row_bytes, packed): e.g. weights staged in a
  /// buffer that is refilled layer after layer. Same checks as upload.
  static DeviceMatrix view(const std::string& name, GgmlType type, std::int64_t rows, std::int64_t cols,
                           const void* device);

  GgmlType type() const noexcept { return type_; }
  std::int64_t rows() const noexcept { return rows_; }
  std::int64_t cols() const noexcept { return cols_; }
  std::size_t row_bytes() const noexcept { return row_bytes_; }
  std::size_t bytes() const noexcept { return data_.bytes(); }
  const void* data() const noexcept { return view_ ? view_ : data_.data(); }
  const std::string& name() const noexcept { return name_; }

 private:
  DeviceMatrix(std::string name, const Shape& shape);

  std::string name_;
  GgmlType type_ = GgmlType::F32;
  std::int64_t rows_ = 0, cols_ = 0;
  std::size_t row_bytes_ = 0;
  Buffer data_;
  const void* view_ = nullptr;  ///< set for a view: data_ is then empty
};

enum class Precision { F32, BF16 };

/// Above this many tokens matmul dequantizes and uses cuBLASLt; at or below it, the GEMV kernels.
inline constexpr std::int64_t gemv_max_tokens = 8;

/// Scratch for the dequantize-then-GEMM path and the cuBLASLt handle. Grows when a call needs more than it has
/// (never during a call that takes the GEMV path, so decode steps can be captured in a CUDA graph).
class MatmulWorkspace {
 public:
  explicit MatmulWorkspace(std::size_t bytes = std::size_t{64} << 20);
  Gemm& gemm() noexcept { return gemm_; }
  /// At least `bytes` of scratch, 256-byte aligned.
  void* scratch(std::size_t bytes);
  std::size_t bytes() const noexcept { return scratch_.bytes(); }

 private:
  Gemm gemm_;
  Buffer scratch_;
};

/// y[t · ldy + r] = Σ_c W[r, c] · x[t · ldx + c] for t < tokens, r < W.rows() (x: tokens × W.cols() f32, y f32).
/// ldx ≥ cols and ldy ≥ rows, in elements; x and y must not overlap. `precision` matters only above
/// gemv_max_tokens. Throws std::invalid_argument for bad strides.
void matmul(const DeviceMatrix& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy, std::int64_t tokens,
            Precision precision, MatmulWorkspace& ws, const Stream& s);

}  // namespace hmoe::cuda
