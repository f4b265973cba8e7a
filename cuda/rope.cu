/// \file
/// \brief rope_apply: one thread per rotated pair.
///
/// The angle is the f32 product pos · inv_freq and the rotation x0·c − x1·s, x0·s + x1·c is done with explicit
/// round-to-nearest products and sums (no FMA contraction), so that only cosf/sinf can differ from the host.
#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/rope.hpp"

namespace hmoe::cuda {

namespace {
constexpr int threads = 256;

__global__ void rope_kernel(float* __restrict__ base, RopeLayout l, const std::int32_t* __restrict__ positions,
                            const float* __restrict__ inv_freq, std::int64_t pairs) {
  const std::int64_t n = l.tokens * l.heads * pairs;
  for (std::int64_t idx = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t i = idx % pairs;
    const std::int64_t th = idx / pairs;
    const std::int64_t h = th % l.heads, t = th / l.heads;
    float* x = base + t * l.token_stride + h * l.head_stride + l.offset + 2 * i;
    const float theta = __fmul_rn(static_cast<float>(positions[t]), inv_freq[i]);
    float sn, cs;
    sincosf(theta, &sn, &cs);
    const float x0 = x[0], x1 = x[1];
    x[0] = __fsub_rn(__fmul_rn(x0, cs), __fmul_rn(x1, sn));
    x[1] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, cs));
  }
}
}  // namespace

void rope_apply(float* base, const RopeLayout& l, const std::int32_t* positions, const RopeTable& table,
                const Stream& s) {
  const std::int64_t n = l.tokens * l.heads * table.pairs();
  if (n <= 0) return;
  const long long blocks = (n + threads - 1) / threads;
  rope_kernel<<<static_cast<unsigned>(blocks < (1 << 16) ? blocks : (1 << 16)), threads, 0, detail::native(s)>>>(
      base, l, positions, table.device_inv_freq(), table.pairs());
  HMOE_CUDA_CHECK_LAUNCH("rope_kernel");
}

}  // namespace hmoe::cuda
