/// \file
/// \brief Gemm: cuBLASLt matrix products with f32 accumulation, bf16 (tensor cores) or f32 inputs.
///
/// cuBLASLt is column-major. A row-major (n × k) weight is a column-major (k × n) matrix, and the row-major
/// (m × k) activations a column-major (k × m) one, so y (row-major m × n = column-major n × m) = Wᵀ·X is the
/// "TN" product with M = n, N = m, K = k: the layout cuBLASLt serves best on Hopper.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
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

/// Owns the descriptors of one product shape; destroyed whatever happens.
struct LtCall {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  LtCall() = default;
  LtCall(LtCall&& o) noexcept : op(o.op), a(o.a), b(o.b), c(o.c), pref(o.pref) {
    o.op = nullptr, o.a = o.b = o.c = nullptr, o.pref = nullptr;
  }
  LtCall(const LtCall&) = delete;
  LtCall& operator=(const LtCall&) = delete;
  LtCall& operator=(LtCall&&) = delete;
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

/// The largest power of two up to 256 dividing the address. cuBLASLt's heuristic assumes 256-byte aligned operands
/// unless told otherwise, and could pick a kernel that faults on a column range of y or a strided x.
std::uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

/// One product's operands: inputs of type `in` (x rows ldx apart, W dense), output of type `out` (rows ldy apart).
struct LtOperands {
  cudaDataType_t in, out;
  const void* x;
  std::int64_t ldx;
  const void* w;
  void* y;
  std::int64_t ldy;
};

/// What decides a product's descriptors and algorithm: types, shape, strides, operand alignments.
using PlanKey = std::array<std::int64_t, 10>;

/// Plans kept per Gemm at most: a workload with ever new shapes (per-expert token counts) starts over past it.
constexpr std::size_t plan_limit = 4096;

/// One shape's descriptors and the algorithm cuBLASLt's heuristic picked for it.
struct LtPlan {
  LtCall call;
  cublasLtMatmulAlgo_t algo{};
};

LtPlan make_plan(cublasLtHandle_t h, std::size_t ws, const LtOperands& o, std::int64_t m, std::int64_t n,
                 std::int64_t k, const char* who) {
  LtPlan plan;
  auto& call = plan.call;
  HMOE_LT_CHECK(cublasLtMatmulDescCreate(&call.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  HMOE_LT_CHECK(cublasLtMatmulDescSetAttribute(call.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  HMOE_LT_CHECK(cublasLtMatmulDescSetAttribute(call.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // A = W: column-major k × n (ld k), used transposed; B = X: column-major k × m (ld ldx); C = D = Y: n × m (ld ldy).
  HMOE_LT_CHECK(cublasLtMatrixLayoutCreate(&call.a, o.in, static_cast<std::uint64_t>(k),
                                           static_cast<std::uint64_t>(n), k));
  HMOE_LT_CHECK(cublasLtMatrixLayoutCreate(&call.b, o.in, static_cast<std::uint64_t>(k),
                                           static_cast<std::uint64_t>(m), o.ldx));
  HMOE_LT_CHECK(cublasLtMatrixLayoutCreate(&call.c, o.out, static_cast<std::uint64_t>(n),
                                           static_cast<std::uint64_t>(m), o.ldy));
  HMOE_LT_CHECK(cublasLtMatmulPreferenceCreate(&call.pref));
  HMOE_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                     sizeof(ws)));
  const std::uint32_t align_a = alignment_of(o.w), align_b = alignment_of(o.x), align_c = alignment_of(o.y);
  HMOE_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                     sizeof(align_a)));
  HMOE_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                     sizeof(align_b)));
  HMOE_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                     sizeof(align_c)));
  HMOE_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                     sizeof(align_c)));
  constexpr int max_results = 8;
  cublasLtMatmulHeuristicResult_t results[max_results] = {};
  int found = 0;
  HMOE_LT_CHECK(cublasLtMatmulAlgoGetHeuristic(h, call.op, call.a, call.b, call.c, call.c, call.pref, max_results,
                                               results, &found));
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) {
      plan.algo = results[i].algo;
      return plan;
    }
  throw CudaError(std::string("hmoe::cuda::Gemm::") + who + ": cuBLASLt has no algorithm for m=" +
                  std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
}
}  // namespace

/// Plans by shape.
struct Gemm::Plans {
  std::map<PlanKey, LtPlan> by_key;
};

namespace {
void lt_matmul(cublasLtHandle_t h, const Buffer& workspace, const LtOperands& o, std::int64_t m, std::int64_t n,
               std::int64_t k, float alpha, float beta, cudaStream_t stream, const char* who,
               std::map<PlanKey, LtPlan>& plans) {
  if (k <= 0) throw std::invalid_argument(std::string("hmoe::cuda::Gemm::") + who + ": k must be > 0");
  const std::size_t ws = workspace.bytes();
  const PlanKey key{o.in, o.out, m, n, k, o.ldx, o.ldy, alignment_of(o.w), alignment_of(o.x), alignment_of(o.y)};
  auto it = plans.find(key);
  if (it == plans.end()) {
    if (plans.size() >= plan_limit) plans.clear();
    it = plans.emplace(key, make_plan(h, ws, o, m, n, k, who)).first;
  }
  const auto& plan = it->second;
  HMOE_LT_CHECK(cublasLtMatmul(h, plan.call.op, &alpha, o.w, plan.call.a, o.x, plan.call.b, &beta, o.y, plan.call.c,
                               o.y, plan.call.c, &plan.algo, workspace.data(), ws, stream));
}

void check_strides(std::int64_t ldx, std::int64_t ldy, std::int64_t n, std::int64_t k, const char* who) {
  if (ldx < k || ldy < n)
    throw std::invalid_argument(std::string("hmoe::cuda::Gemm::") + who + ": ldx = " + std::to_string(ldx) +
                                " < k = " + std::to_string(k) + " or ldy = " + std::to_string(ldy) +
                                " < n = " + std::to_string(n));
}
}  // namespace

Gemm::Gemm(std::size_t workspace_bytes) : plans_(std::make_unique<Plans>()), workspace_(workspace_bytes) {
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
  lt_matmul(static_cast<cublasLtHandle_t>(handle_), workspace_, {CUDA_R_16BF, out_type<Out>(), x, k, w, y, n}, m, n,
            k, alpha, beta, detail::native(s), "bf16", plans_->by_key);
}

template void Gemm::bf16<float>(const Bf16*, const Bf16*, float*, std::int64_t, std::int64_t, std::int64_t,
                                const Stream&, float, float);
template void Gemm::bf16<Bf16>(const Bf16*, const Bf16*, Bf16*, std::int64_t, std::int64_t, std::int64_t,
                               const Stream&, float, float);

void Gemm::bf16_strided(const Bf16* x, std::int64_t ldx, const Bf16* w, float* y, std::int64_t ldy, std::int64_t m,
                        std::int64_t n, std::int64_t k, const Stream& s, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  check_strides(ldx, ldy, n, k, "bf16_strided");
  lt_matmul(static_cast<cublasLtHandle_t>(handle_), workspace_, {CUDA_R_16BF, CUDA_R_32F, x, ldx, w, y, ldy}, m, n,
            k, alpha, beta, detail::native(s), "bf16_strided", plans_->by_key);
}

void Gemm::f32_strided(const float* x, std::int64_t ldx, const float* w, float* y, std::int64_t ldy, std::int64_t m,
                       std::int64_t n, std::int64_t k, const Stream& s, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  check_strides(ldx, ldy, n, k, "f32_strided");
  lt_matmul(static_cast<cublasLtHandle_t>(handle_), workspace_, {CUDA_R_32F, CUDA_R_32F, x, ldx, w, y, ldy}, m, n,
            k, alpha, beta, detail::native(s), "f32_strided", plans_->by_key);
}

}  // namespace hmoe::cuda
