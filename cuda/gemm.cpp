/// \file
/// \brief Gemm: cuBLASLt BF16 matrix products with f32 accumulation.
///
/// cuBLASLt is column-major. A row-major (n × k) weight is a column-major (k × n) matrix, and the row-major
/// (m × k) activations a column-major (k × m) one, so y (row-major m × n = column-major n × m) = Wᵀ·X is the
/// "TN" product with M = n, N = m, K = k: the layout cuBLASLt serves best on Hopper.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "check.hpp"
#include "hmoe/cuda/activation.hpp"
#include "hmoe/cuda/gemm.hpp"

namespace hmoe::cuda {

namespace {
void check_lt(cublasStatus_t st, const char* what, int line) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string("hmoe::cuda::Gemm: ") + what + " failed: " + cublasLtGetStatusName(st) + " (" +
                    cublasLtGetStatusString(st) + ") at gemm.cpp:" + std::to_string(line));
}
#define HMOE_LT_CHECK(call) check_lt((call), #call, __LINE__)

/// Owns the descriptors of one call; destroyed whatever happens.
struct LtCall {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtCall() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

template <class Out>
constexpr cudaDataType_t out_type() {
  return std::is_same_v<Out, float> ? CUDA_R_32F : CUDA_R_16BF;
}
}  // namespace

Gemm::Gemm(std::size_t workspace_bytes) : workspace_(workspace_bytes) {
  cublasLtHandle_t h = nullptr;
  HMOE_LT_CHECK(cublasLtCreate(&h));
  handle_ = h;
}

Gemm::~Gemm() {
  if (handle_) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

template <activation Out>
void Gemm::bf16(const Bf16* x, const Bf16* w, Out* y, std::int64_t m, std::int64_t n, std::int64_t k,
                const Stream& s, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  if constexpr (std::is_same_v<Out, Bf16>) {
    // A bf16 output is the f32 product rounded once. cuBLASLt's own bf16 output rounded more than that (on an
    // H100, m=3, k=2048, beta=1: 5-10 of 192 entries beyond one rounding of the result, also with split-K
    // reductions restricted to f32), so the product goes to an f32 scratch, prior y included exactly.
    const auto count = static_cast<std::size_t>(m * n);
    if (f32_out_.bytes() < count * sizeof(float)) f32_out_ = Buffer(count * sizeof(float));
    float* acc = f32_out_.as<float>();
    if (beta != 0.0f) to_f32(y, acc, static_cast<std::int64_t>(count), s);
    bf16<float>(x, w, acc, m, n, k, s, alpha, beta);
    to_bf16(acc, y, static_cast<std::int64_t>(count), s);
    return;
  }
  if (k <= 0) throw std::invalid_argument("hmoe::cuda::Gemm::bf16: k must be > 0");
  LtCall call;
  HMOE_LT_CHECK(cublasLtMatmulDescCreate(&call.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  HMOE_LT_CHECK(cublasLtMatmulDescSetAttribute(call.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  HMOE_LT_CHECK(cublasLtMatmulDescSetAttribute(call.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // A = W: column-major k × n (ld k), used transposed; B = X: column-major k × m (ld k); C = D = Y: n × m (ld n).
  HMOE_LT_CHECK(cublasLtMatrixLayoutCreate(&call.a, CUDA_R_16BF, static_cast<std::uint64_t>(k),
                                           static_cast<std::uint64_t>(n), k));
  HMOE_LT_CHECK(cublasLtMatrixLayoutCreate(&call.b, CUDA_R_16BF, static_cast<std::uint64_t>(k),
                                           static_cast<std::uint64_t>(m), k));
  HMOE_LT_CHECK(cublasLtMatrixLayoutCreate(&call.c, out_type<Out>(), static_cast<std::uint64_t>(n),
                                           static_cast<std::uint64_t>(m), n));
  HMOE_LT_CHECK(cublasLtMatmulPreferenceCreate(&call.pref));
  const std::size_t ws = workspace_.bytes();
  HMOE_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                     sizeof(ws)));
  constexpr int max_results = 8;
  cublasLtMatmulHeuristicResult_t results[max_results] = {};
  int found = 0;
  const auto h = static_cast<cublasLtHandle_t>(handle_);
  HMOE_LT_CHECK(cublasLtMatmulAlgoGetHeuristic(h, call.op, call.a, call.b, call.c, call.c, call.pref, max_results,
                                               results, &found));
  const cublasLtMatmulAlgo_t* algo = nullptr;
  for (int i = 0; i < found && algo == nullptr; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) algo = &results[i].algo;
  if (algo == nullptr)
    throw CudaError("hmoe::cuda::Gemm::bf16: cuBLASLt has no algorithm for m=" + std::to_string(m) +
                    " n=" + std::to_string(n) + " k=" + std::to_string(k));
  HMOE_LT_CHECK(cublasLtMatmul(h, call.op, &alpha, w, call.a, x, call.b, &beta, y, call.c, y, call.c, algo,
                               workspace_.data(), ws, detail::native(s)));
}

template void Gemm::bf16<float>(const Bf16*, const Bf16*, float*, std::int64_t, std::int64_t, std::int64_t,
                                const Stream&, float, float);
template void Gemm::bf16<Bf16>(const Bf16*, const Bf16*, Bf16*, std::int64_t, std::int64_t, std::int64_t,
                               const Stream&, float, float);

}  // namespace hmoe::cuda
