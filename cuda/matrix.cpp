/// \file
/// \brief DeviceMatrix, MatmulWorkspace and matmul's choice of path: GEMV for few tokens, otherwise chunks of W
/// dequantized into the workspace and multiplied by cuBLASLt (f32, or bf16 on the tensor cores).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "check.hpp"
#include "hmoe/cuda/gemv.hpp"
#include "hmoe/cuda/matrix.hpp"
#include "hmoe/cuda/stream.hpp"
#include "matrix_kernels.hpp"

namespace hmoe::cuda {

bool matmul_supports(GgmlType type) noexcept {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return true;
    default: return false;
  }
}

namespace {
/// A matrix of `type` that matmul takes, rows of whole blocks: its metadata, no data yet. Throws
/// std::invalid_argument naming `who` otherwise.
DeviceMatrix::Shape checked_shape(const std::string& who, GgmlType type, std::int64_t rows, std::int64_t cols) {
  const auto info = ggml_type_info(static_cast<std::uint32_t>(type));
  if (!info || !matmul_supports(type))
    throw std::invalid_argument(who + ": matmul does not take type " +
                                (info ? std::string(info->name) : "id " + std::to_string(static_cast<unsigned>(type))));
  if (rows < 0 || cols <= 0 || cols % info->block_elems != 0)
    throw std::invalid_argument(who + ": " + std::to_string(rows) + " × " + std::to_string(cols) + " " +
                                std::string(info->name) + " is not rows of whole blocks of " +
                                std::to_string(info->block_elems) + " values");
  return {type, rows, cols, static_cast<std::size_t>(cols / info->block_elems) * info->block_bytes};
}
}  // namespace

DeviceMatrix::DeviceMatrix(std::string name, const Shape& shape)
    : name_(std::move(name)), type_(shape.type), rows_(shape.rows), cols_(shape.cols), row_bytes_(shape.row_bytes) {}

DeviceMatrix DeviceMatrix::view(const std::string& name, GgmlType type, std::int64_t rows, std::int64_t cols,
                                const void* device) {
  const std::string who = "hmoe::cuda::DeviceMatrix::view(" + name + ")";
  DeviceMatrix m(name, checked_shape(who, type, rows, cols));
  if (rows > 0 && device == nullptr) throw std::invalid_argument(who + ": no device data");
  m.view_ = device;
  return m;
}

DeviceMatrix DeviceMatrix::upload(const std::string& name, GgmlType type, std::int64_t rows, std::int64_t cols,
                                  const void* host, std::size_t host_row_bytes) {
  const std::string who = "hmoe::cuda::DeviceMatrix::upload(" + name + ")";
  DeviceMatrix m(name, checked_shape(who, type, rows, cols));
  const std::size_t row_bytes = m.row_bytes_;
  if (host_row_bytes < row_bytes)
    throw std::invalid_argument(who + ": host rows " + std::to_string(host_row_bytes) +
                                " bytes apart overlap (a row is " + std::to_string(row_bytes) + " bytes)");
  if (rows > 0 && host == nullptr) throw std::invalid_argument(who + ": no host data");

  m.data_ = Buffer(static_cast<std::size_t>(rows) * row_bytes);
  if (rows == 0) return m;
  if (host_row_bytes == row_bytes) m.data_.upload(host, m.data_.bytes());
  else {
    // Packs the rows on the way. Like Buffer::upload, waits for the copy: from pageable memory it may return before
    // the data lands, and a non-blocking Stream does not wait for the legacy stream.
    HMOE_CUDA_CHECK(cudaMemcpy2D(m.data_.data(), row_bytes, host, host_row_bytes, row_bytes,
                                 static_cast<std::size_t>(rows), cudaMemcpyHostToDevice));
    HMOE_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
  }
  return m;
}

MatmulWorkspace::MatmulWorkspace(std::size_t bytes) : scratch_(bytes) {}

void* MatmulWorkspace::scratch(std::size_t bytes) {
  if (scratch_.bytes() < bytes) {
    // Free first (cudaFree waits for the work still using the old scratch), then allocate: no peak of both.
    scratch_ = Buffer();
    scratch_ = Buffer(bytes);
  }
  return scratch_.data();  // cudaMalloc: 256-byte aligned
}

namespace {
constexpr std::int64_t chunk_granule = 256;  // rows; keeps every chunk's column range of y 1 KiB aligned

std::size_t round_up_256(std::size_t n) { return (n + 255) / 256 * 256; }

/// Rows of W to dequantize per GEMM: all if they fit beside `reserved` bytes of the workspace, else as many whole
/// 256-row chunks as fit, and at least min(rows, 256) (the workspace then grows).
std::int64_t chunk_rows(std::size_t have, std::size_t reserved, std::size_t row_bytes, std::int64_t rows) {
  const std::size_t room = have > reserved ? have - reserved : 0;
  const auto fit = static_cast<std::int64_t>(room / row_bytes);
  if (fit >= rows) return rows;
  if (fit >= chunk_granule) return fit / chunk_granule * chunk_granule;
  return std::min(rows, chunk_granule);
}

void gemv(const DeviceMatrix& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy, std::int64_t tokens,
          const Stream& s) {
  const std::int64_t rows = w.rows(), cols = w.cols();
  const bool tuned_q4_k = w.type() == GgmlType::Q4_K && ldx == cols && ldy == rows &&
                          reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
  if (tuned_q4_k) {
    gemv_q4_k(static_cast<const quant::BlockQ4_K*>(w.data()), x, y, rows, cols, tokens, s);
    return;
  }
  detail::gemv_any(w.type(), w.data(), rows, cols, x, ldx, y, ldy, static_cast<int>(tokens), s);
}

void gemm_f32(const DeviceMatrix& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy,
              std::int64_t tokens, MatmulWorkspace& ws, const Stream& s) {
  const std::int64_t rows = w.rows(), cols = w.cols();
  if (w.type() == GgmlType::F32) {  // already the GEMM's operand
    ws.gemm().f32_strided(x, ldx, static_cast<const float*>(w.data()), y, ldy, tokens, rows, cols, s);
    return;
  }
  const std::size_t row_bytes = static_cast<std::size_t>(cols) * sizeof(float);
  const std::int64_t chunk = chunk_rows(ws.bytes(), 0, row_bytes, rows);
  auto* wf = static_cast<float*>(ws.scratch(static_cast<std::size_t>(chunk) * row_bytes));
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t n = std::min(chunk, rows - r0);
    detail::dequantize_rows(w.type(), w.data(), r0, n, cols, wf, s);
    ws.gemm().f32_strided(x, ldx, wf, y + r0, ldy, tokens, n, cols, s);
  }
}

void gemm_bf16(const DeviceMatrix& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy,
               std::int64_t tokens, MatmulWorkspace& ws, const Stream& s) {
  const std::int64_t rows = w.rows(), cols = w.cols();
  const std::size_t x_bytes = round_up_256(static_cast<std::size_t>(tokens * cols) * sizeof(Bf16));
  const std::size_t row_bytes = static_cast<std::size_t>(cols) * sizeof(Bf16);
  const bool direct = w.type() == GgmlType::BF16;  // W is already the GEMM's operand
  const std::int64_t chunk = direct ? 0 : chunk_rows(ws.bytes(), x_bytes, row_bytes, rows);
  auto* base = static_cast<unsigned char*>(ws.scratch(x_bytes + static_cast<std::size_t>(chunk) * row_bytes));
  auto* xb = reinterpret_cast<Bf16*>(base);
  detail::rows_to_bf16(x, ldx, xb, tokens, cols, s);
  if (direct) {
    ws.gemm().bf16_strided(xb, cols, static_cast<const Bf16*>(w.data()), y, ldy, tokens, rows, cols, s);
    return;
  }
  auto* wb = reinterpret_cast<Bf16*>(base + x_bytes);
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t n = std::min(chunk, rows - r0);
    detail::dequantize_rows(w.type(), w.data(), r0, n, cols, wb, s);
    ws.gemm().bf16_strided(xb, cols, wb, y + r0, ldy, tokens, n, cols, s);
  }
}
}  // namespace

void matmul(const DeviceMatrix& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy, std::int64_t tokens,
            Precision precision, MatmulWorkspace& ws, const Stream& s) {
  if (tokens < 0 || ldx < w.cols() || ldy < w.rows())
    throw std::invalid_argument("hmoe::cuda::matmul(" + w.name() + "): tokens = " + std::to_string(tokens) +
                                ", ldx = " + std::to_string(ldx) + " (cols " + std::to_string(w.cols()) +
                                "), ldy = " + std::to_string(ldy) + " (rows " + std::to_string(w.rows()) + ")");
  if (tokens == 0 || w.rows() == 0) return;
  if (tokens <= gemv_max_tokens) {
    static_assert(gemv_max_tokens <= detail::gemv_pass_tokens, "the GEMV serves all its tokens in one pass");
    gemv(w, x, ldx, y, ldy, tokens, s);
  } else if (precision == Precision::F32) {
    gemm_f32(w, x, ldx, y, ldy, tokens, ws, s);
  } else {
    gemm_bf16(w, x, ldx, y, ldy, tokens, ws, s);
  }
}

}  // namespace hmoe::cuda
