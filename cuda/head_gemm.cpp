/// \file
/// \brief HeadGemm through cublasSgemmStridedBatched, and fill_zero.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "check.hpp"
#include "hmoe/cuda/head_gemm.hpp"

namespace hmoe::cuda {

namespace {
void check_cublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string("hmoe::cuda: ") + what + " failed: " + cublasGetStatusString(st));
}
}  // namespace

HeadGemm::HeadGemm() : workspace_(std::size_t{4} << 20) {
  cublasHandle_t h = nullptr;
  check_cublas(cublasCreate(&h), "cublasCreate");
  handle_ = h;
  // Plain f32 FMA (cuBLAS would use TF32 tensor cores only when asked; say so explicitly).
  check_cublas(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
  check_cublas(cublasSetWorkspace(h, workspace_.data(), workspace_.bytes()), "cublasSetWorkspace");
}

HeadGemm::~HeadGemm() {
  if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

void HeadGemm::run(const float* w, std::int64_t w_head_stride, std::int64_t rows, std::int64_t cols, const float* x,
                   std::int64_t x_token_stride, std::int64_t x_head_stride, HeadView y, std::int64_t tokens,
                   std::int64_t heads, const Stream& s) {
  if (rows <= 0 || cols <= 0 || tokens <= 0 || heads <= 0 || x_token_stride < cols || y.token_stride < rows)
    throw std::invalid_argument("hmoe::cuda::HeadGemm: bad shape or strides");
  auto* h = static_cast<cublasHandle_t>(handle_);
  check_cublas(cublasSetStream(h, detail::native(s)), "cublasSetStream");
  // Column-major view: Yᵀ_h (rows × tokens) = Wᵀᵀ · Xᵀ_h. W_h row-major rows × cols is column-major cols × rows
  // with ld = cols, taken transposed; Xᵀ_h is column-major cols × tokens with ld = the token stride.
  const float one = 1.0f, zero = 0.0f;
  check_cublas(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(tokens),
                                         static_cast<int>(cols), &one, w, static_cast<int>(cols), w_head_stride, x,
                                         static_cast<int>(x_token_stride), x_head_stride, &zero, y.data,
                                         static_cast<int>(y.token_stride), y.head_stride, static_cast<int>(heads)),
               "cublasSgemmStridedBatched");
}

void fill_zero(float* x, std::int64_t n, const Stream& s) {
  if (n > 0) HMOE_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<std::size_t>(n) * sizeof(float), detail::native(s)));
}

}  // namespace hmoe::cuda
