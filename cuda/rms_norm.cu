/// \file
/// \brief rms_norm_residual: one block per row; the residual add, the double sum of squares and the scaling.
#include <cmath>

#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/rms_norm.hpp"

namespace hmoe::cuda {

namespace {
constexpr int threads = 256;

template <class Out>
__global__ void __launch_bounds__(threads)
    rms_norm_kernel(float* __restrict__ x, const float* __restrict__ delta, const float* __restrict__ w,
                    Out* __restrict__ y, std::int64_t n, float eps) {
  const std::int64_t row = blockIdx.x;
  float* xr = x + row * n;
  const float* dr = delta ? delta + row * n : nullptr;
  double sum = 0.0;
  for (std::int64_t i = threadIdx.x; i < n; i += threads) {
    float v = xr[i];
    if (dr) {
      v += dr[i];
      xr[i] = v;  // read back below by this same thread only
    }
    sum += static_cast<double>(v) * static_cast<double>(v);  // exact product, as the reference's
  }
  const float scale = detail::rms_scale(detail::block_sum<threads>(sum), n, eps);
  Out* yr = y + row * n;
  for (std::int64_t i = threadIdx.x; i < n; i += threads) detail::store(yr + i, xr[i] * scale * w[i]);
}
}  // namespace

template <activation Out>
void rms_norm_residual(float* x, const float* delta, const float* w, Out* y, std::int64_t rows, std::int64_t n,
                       float eps, const Stream& s) {
  if (rows <= 0 || n <= 0) return;
  rms_norm_kernel<Out><<<static_cast<unsigned>(rows), threads, 0, detail::native(s)>>>(x, delta, w, y, n, eps);
  HMOE_CUDA_CHECK_LAUNCH("rms_norm_kernel");
}

template void rms_norm_residual<float>(float*, const float*, const float*, float*, std::int64_t, std::int64_t, float,
                                       const Stream&);
template void rms_norm_residual<Bf16>(float*, const float*, const float*, Bf16*, std::int64_t, std::int64_t, float,
                                      const Stream&);

}  // namespace hmoe::cuda
