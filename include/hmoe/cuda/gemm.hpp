/// \file
/// \brief GEMM through cuBLASLt for prefill and the output head: y (m × n) = x (m × k) · Wᵀ, W (n × k) row-major
/// as GGUF stores a weight, f32 accumulation: bf16 inputs (tensor cores, f32 or bf16 output) or f32 inputs.
#pragma once

#include <cstdint>
#include <memory>

#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/types.hpp"

namespace hmoe::cuda {

class Stream;

/// A cuBLASLt handle and its workspace, for the current device. One per thread (or per stream) of work.
class Gemm {
 public:
  explicit Gemm(std::size_t workspace_bytes = 32u << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  /// y = alpha · x · Wᵀ + beta · y. All pointers device, 16-byte aligned; rows are dense (lda = k, ldy = n).
  /// Instantiated for Out = float and Bf16 (computed in f32 and rounded once, through a scratch buffer). Throws
  /// CudaError if cuBLASLt has no algorithm for the shape.
  template <activation Out>
  void bf16(const Bf16* x, const Bf16* w, Out* y, std::int64_t m, std::int64_t n, std::int64_t k, const Stream& s,
            float alpha = 1.0f, float beta = 0.0f);

  /// As bf16 with f32 output, for strided rows: x rows ldx ≥ k apart, y rows ldy ≥ n apart (in elements; y may be
  /// a column range of a wider matrix), W dense. Pointers need only their element's alignment. Throws
  /// std::invalid_argument for a bad stride, CudaError if cuBLASLt has no algorithm.
  void bf16_strided(const Bf16* x, std::int64_t ldx, const Bf16* w, float* y, std::int64_t ldy, std::int64_t m,
                    std::int64_t n, std::int64_t k, const Stream& s, float alpha = 1.0f, float beta = 0.0f);

  /// As bf16_strided with f32 x and W, computed in f32 (CUBLAS_COMPUTE_32F, not TF32): the products are exact
  /// and only the f32 sums round, as on the CPU.
  void f32_strided(const float* x, std::int64_t ldx, const float* w, float* y, std::int64_t ldy, std::int64_t m,
                   std::int64_t n, std::int64_t k, const Stream& s, float alpha = 1.0f, float beta = 0.0f);

 private:
  struct Plans;  ///< cuBLASLt descriptors and algorithm per shape, found once (the heuristic costs far more
                 ///< than a small GEMM)
  void* handle_ = nullptr;
  std::unique_ptr<Plans> plans_;
  Buffer workspace_;
  Buffer f32_out_;  ///< the f32 product behind a bf16 output, grown as needed
};

}  // namespace hmoe::cuda
