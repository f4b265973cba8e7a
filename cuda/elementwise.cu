/// \file
/// \brief silu_mul and the f32 <-> bf16 conversions: grid-stride elementwise kernels.
#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/activation.hpp"

namespace hmoe::cuda {

namespace {
constexpr int threads = 256;
// Enough blocks to fill any current GPU several times over; the grid-stride loops cover the rest.
constexpr long long max_blocks = 1 << 16;

unsigned grid_for(long long n) {
  const long long b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < max_blocks ? b : max_blocks);
}

template <class Out>
__global__ void silu_mul_kernel(const float* __restrict__ gate, const float* __restrict__ up, Out* __restrict__ out,
                                std::int64_t rows, std::int64_t cols, std::int64_t ld_in, std::int64_t ld_out) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / cols, c = i % cols;
    const float g = gate[r * ld_in + c];
    // expf (not __expf): the same formula as layer/mlp.hpp, within a couple of ulps of the host's std::exp.
    const float act = g / (1.0f + expf(-g));
    detail::store(out + r * ld_out + c, act * up[r * ld_in + c]);
  }
}

__global__ void to_bf16_kernel(const float* __restrict__ x, Bf16* __restrict__ y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    detail::store(y + i, x[i]);
}

__global__ void to_f32_kernel(const Bf16* __restrict__ x, float* __restrict__ y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] = detail::to_f32(x[i]);
}
}  // namespace

template <activation Out>
void silu_mul(const float* gate, const float* up, Out* out, std::int64_t rows, std::int64_t cols, std::int64_t ld_in,
              std::int64_t ld_out, const Stream& s) {
  if (rows <= 0 || cols <= 0) return;
  silu_mul_kernel<Out><<<grid_for(rows * cols), threads, 0, detail::native(s)>>>(gate, up, out, rows, cols, ld_in,
                                                                                 ld_out);
  HMOE_CUDA_CHECK_LAUNCH("silu_mul_kernel");
}

template void silu_mul<float>(const float*, const float*, float*, std::int64_t, std::int64_t, std::int64_t,
                              std::int64_t, const Stream&);
template void silu_mul<Bf16>(const float*, const float*, Bf16*, std::int64_t, std::int64_t, std::int64_t,
                             std::int64_t, const Stream&);

void to_bf16(const float* x, Bf16* y, std::int64_t n, const Stream& s) {
  if (n <= 0) return;
  to_bf16_kernel<<<grid_for(n), threads, 0, detail::native(s)>>>(x, y, n);
  HMOE_CUDA_CHECK_LAUNCH("to_bf16_kernel");
}

void to_f32(const Bf16* x, float* y, std::int64_t n, const Stream& s) {
  if (n <= 0) return;
  to_f32_kernel<<<grid_for(n), threads, 0, detail::native(s)>>>(x, y, n);
  HMOE_CUDA_CHECK_LAUNCH("to_f32_kernel");
}

}  // namespace hmoe::cuda
