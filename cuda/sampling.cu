/// \file
/// \brief argmax: one block per row, (value, id) reduced with ties to the lower id; a non-finite logit gives -1.
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/sampling.hpp"

namespace hmoe::cuda {

namespace {
constexpr int threads = 1024;

__global__ void __launch_bounds__(threads)
    argmax_kernel(const float* __restrict__ logits, std::int32_t* __restrict__ ids, std::int64_t vocab) {
  const float* l = logits + blockIdx.x * vocab;
  detail::ArgBest b{-INFINITY, -1};
  int bad = 0;
  for (std::int64_t i = threadIdx.x; i < vocab; i += threads) {
    const float v = l[i];
    bad |= !isfinite(v);
    const detail::ArgBest c{v, static_cast<int>(i)};
    if (detail::better(c, b)) b = c;
  }
  bad = __syncthreads_or(bad);
  b = detail::warp_best(b);
  __shared__ float sv[threads / 32];
  __shared__ int si[threads / 32];
  if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = b.v, si[threadIdx.x >> 5] = b.i;
  __syncthreads();
  if (threadIdx.x < 32) {
    detail::ArgBest c{sv[threadIdx.x], si[threadIdx.x]};
    c = detail::warp_best(c);
    if (threadIdx.x == 0) ids[blockIdx.x] = bad ? -1 : c.i;
  }
}
}  // namespace

void argmax(const float* logits, std::int32_t* ids, std::int64_t rows, std::int64_t vocab, const Stream& s) {
  if (rows <= 0) return;
  if (vocab <= 0 || vocab > INT32_MAX) throw std::invalid_argument("hmoe::cuda::argmax: vocab out of range");
  argmax_kernel<<<static_cast<unsigned>(rows), threads, 0, detail::native(s)>>>(logits, ids, vocab);
  HMOE_CUDA_CHECK_LAUNCH("argmax_kernel");
}

}  // namespace hmoe::cuda
