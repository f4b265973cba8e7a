/// \file
/// \brief Row helpers between the big kernels: residual add, strided RMSNorm, gather and weighted scatter-add.
///
/// The elementwise ones are grid-stride loops (as elementwise.cu); rms_norm_strided is one CTA per row with the
/// numerics of rms_norm.cu (double sum of squares, scale rounded to float, x · scale · w).
#include <cmath>

#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/rows.hpp"

namespace hmoe::cuda {

namespace {
constexpr int threads = 256;
unsigned grid_for(long long n) { return detail::grid_stride_blocks(n, threads); }

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

/// x and y may be the same rows: each thread writes only the values it read itself, after the reduction.
__global__ void __launch_bounds__(threads)
    rms_norm_rows_kernel(const float* x, std::int64_t ldx, const float* __restrict__ w, float* y, std::int64_t ldy,
                         std::int64_t n, float eps) {
  const float* xr = x + blockIdx.x * ldx;
  double sum = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += threads) {
    const double v = xr[i];
    sum += v * v;  // exact product, as the reference's
  }
  const float scale = detail::rms_scale(detail::block_sum<threads>(sum), n, eps);
  float* yr = y + blockIdx.x * ldy;
  for (std::int64_t i = threadIdx.x; i < n; i += threads) yr[i] = xr[i] * scale * w[i];
}

__global__ void gather_kernel(const float* __restrict__ src, const std::int32_t* __restrict__ index,
                              float* __restrict__ dst, std::int64_t n, std::int64_t cols) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n * cols;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    dst[i] = src[static_cast<std::int64_t>(index[r]) * cols + c];
  }
}

__global__ void scatter_add_kernel(const float* __restrict__ src, const std::int32_t* __restrict__ index,
                                   const float* __restrict__ weight, float* __restrict__ dst, std::int64_t n,
                                   std::int64_t cols) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n * cols;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    float* d = dst + static_cast<std::int64_t>(index[r]) * cols + c;
    // Two roundings (no FMA contraction), as the CPU's out += w · y (layer/experts.hpp) without FMA.
    *d = __fadd_rn(*d, __fmul_rn(weight[r], src[i]));
  }
}
}  // namespace

void add_inplace(float* x, const float* y, std::int64_t n, const Stream& s) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), threads, 0, detail::native(s)>>>(x, y, n);
  HMOE_CUDA_CHECK_LAUNCH("add_kernel");
}

void rms_norm_strided(const float* x, std::int64_t ldx, const float* w, float* y, std::int64_t ldy,
                      std::int64_t rows, std::int64_t n, float eps, const Stream& s) {
  if (rows <= 0 || n <= 0) return;
  rms_norm_rows_kernel<<<static_cast<unsigned>(rows), threads, 0, detail::native(s)>>>(x, ldx, w, y, ldy, n, eps);
  HMOE_CUDA_CHECK_LAUNCH("rms_norm_rows_kernel");
}

void gather_rows(const float* src, const std::int32_t* index, float* dst, std::int64_t n, std::int64_t cols,
                 const Stream& s) {
  if (n <= 0 || cols <= 0) return;
  gather_kernel<<<grid_for(n * cols), threads, 0, detail::native(s)>>>(src, index, dst, n, cols);
  HMOE_CUDA_CHECK_LAUNCH("gather_kernel");
}

void scatter_add_rows(const float* src, const std::int32_t* index, const float* weight, float* dst, std::int64_t n,
                      std::int64_t cols, const Stream& s) {
  if (n <= 0 || cols <= 0) return;
  scatter_add_kernel<<<grid_for(n * cols), threads, 0, detail::native(s)>>>(src, index, weight, dst, n, cols);
  HMOE_CUDA_CHECK_LAUNCH("scatter_add_kernel");
}

}  // namespace hmoe::cuda
