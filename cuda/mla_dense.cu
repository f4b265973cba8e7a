/// \file
/// \brief mla_dense_cache_write and mla_dense_attend: absorbed MLA over a dense f32 cache, exact f32 arithmetic.
///
/// Attend: one CTA of 128 threads per (query, head); the query (latent, then rope) sits in shared memory. Keys come
/// in chunks of 128: each warp scores every fourth key of the chunk, its lanes splitting the row's dims (coalesced
/// reads), score = (q · row) · softmax_scale; then an online softmax (running max m and sum l, earlier partial
/// results rescaled by expf(m_old − m_new)) with weights expf(score − m), and thread j accumulates output dims
/// j, j + 128, ... (≤ 8 of them) over the chunk's keys, again reading rows coalesced. o = acc / l. The visible
/// count positions[i] + 1 is read on the device, so a decode step can be captured in a CUDA graph.
#include <cmath>
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/mla_dense.hpp"

namespace hmoe::cuda {

namespace {
constexpr int threads = 128;
constexpr int warps = threads / 32;
constexpr int max_rank = 1024, max_rope = 256;
constexpr int dims_per_thread = max_rank / threads;

__global__ void cache_write_kernel(float* __restrict__ rows, std::int64_t stride, std::int64_t capacity,
                                   const float* __restrict__ src, std::int64_t src_stride,
                                   const std::int32_t* __restrict__ positions) {
  const std::int64_t i = blockIdx.x;
  const std::int64_t p = positions[i];
  if (p < 0 || p >= capacity) return;  // documented: a bad position is skipped
  for (std::int64_t c = threadIdx.x; c < stride; c += blockDim.x) rows[p * stride + c] = src[i * src_stride + c];
}

/// The CTA's maximum / sum of v (the same fixed order on every thread); red holds one value per warp.
__device__ float block_max(float v, float* red) {
  v = detail::warp_max(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int w = 1; w < warps; ++w) r = fmaxf(r, red[w]);
  __syncthreads();  // red is reused by the next reduction
  return r;
}

__device__ float block_sum(float v, float* red) {
  v = detail::warp_sum(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int w = 1; w < warps; ++w) r += red[w];
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(threads)
    attend_kernel(const float* __restrict__ cache, int rank, int rope_dims, std::int64_t capacity,
                  const float* __restrict__ q_latent, const float* __restrict__ q_rope, std::int64_t rope_token_stride,
                  std::int64_t rope_head_stride, int heads, const std::int32_t* __restrict__ positions, float scale,
                  float* __restrict__ o_lat) {
  __shared__ float q[max_rank + max_rope];
  __shared__ float p[threads];  // the chunk's scores, then its softmax weights
  __shared__ float red[warps];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const std::int64_t i = blockIdx.x;
  const int h = blockIdx.y;
  const int dims = rank + rope_dims;
  const float* ql = q_latent + (i * heads + h) * rank;
  const float* qr = q_rope + i * rope_token_stride + h * rope_head_stride;
  for (int d = tid; d < rank; d += threads) q[d] = ql[d];
  for (int d = tid; d < rope_dims; d += threads) q[rank + d] = qr[d];
  const std::int64_t visible = static_cast<std::int64_t>(positions[i]) + 1;
  const std::int64_t n = visible < 0 ? 0 : (visible < capacity ? visible : capacity);
  __syncthreads();

  float acc[dims_per_thread];
#pragma unroll
  for (int j = 0; j < dims_per_thread; ++j) acc[j] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (std::int64_t k0 = 0; k0 < n; k0 += threads) {
    const int len = static_cast<int>(n - k0 < threads ? n - k0 : threads);
    const float* chunk = cache + k0 * dims;
    for (int kk = warp; kk < len; kk += warps) {
      const float* row = chunk + static_cast<std::int64_t>(kk) * dims;
      float s = 0.0f;
      for (int d = lane; d < dims; d += 32) s = fmaf(q[d], row[d], s);
      s = detail::warp_sum(s);
      if (lane == 0) p[kk] = s * scale;
    }
    __syncthreads();
    const float s = tid < len ? p[tid] : -INFINITY;
    const float m_new = fmaxf(m, block_max(s, red));
    const float e = tid < len ? expf(s - m_new) : 0.0f;
    const float alpha = expf(m - m_new);  // 0 for the first chunk (m = -inf)
    p[tid] = e;                           // only this thread read p[tid]
    l = l * alpha + block_sum(e, red);    // block_sum's barriers also publish p
    m = m_new;
#pragma unroll
    for (int j = 0; j < dims_per_thread; ++j) acc[j] *= alpha;
    for (int kk = 0; kk < len; ++kk) {
      const float wk = p[kk];
      const float* row = chunk + static_cast<std::int64_t>(kk) * dims;
#pragma unroll
      for (int j = 0; j < dims_per_thread; ++j) {
        const int d = tid + j * threads;
        if (d < rank) acc[j] = fmaf(wk, row[d], acc[j]);
      }
    }
    __syncthreads();  // p is rewritten by the next chunk
  }
  float* o = o_lat + (i * heads + h) * rank;
#pragma unroll
  for (int j = 0; j < dims_per_thread; ++j) {
    const int d = tid + j * threads;
    if (d < rank) o[d] = l > 0.0f ? acc[j] / l : 0.0f;  // a query that sees no key gets zeros
  }
}

void check_cache(const DenseMlaCache& c, const char* who) {
  if (c.rank < 1 || c.rank > max_rank || c.rope_dims < 0 || c.rope_dims > max_rope || c.capacity < 0 ||
      (c.capacity > 0 && c.rows == nullptr))
    throw std::invalid_argument(std::string("hmoe::cuda::") + who + ": cache rank " + std::to_string(c.rank) +
                                " (1..1024), rope_dims " + std::to_string(c.rope_dims) + " (0..256), capacity " +
                                std::to_string(c.capacity));
}
}  // namespace

void mla_dense_cache_write(const DenseMlaCache& cache, const float* src, std::int64_t src_stride,
                           const std::int32_t* positions, std::int64_t tokens, const Stream& s) {
  check_cache(cache, "mla_dense_cache_write");
  if (tokens < 0 || tokens > 0x7fffffff || src_stride < cache.row_stride())
    throw std::invalid_argument("hmoe::cuda::mla_dense_cache_write: tokens = " + std::to_string(tokens) +
                                ", src_stride = " + std::to_string(src_stride) + " (a row is " +
                                std::to_string(cache.row_stride()) + ")");
  if (tokens == 0) return;
  cache_write_kernel<<<static_cast<unsigned>(tokens), 256, 0, detail::native(s)>>>(
      cache.rows, cache.row_stride(), cache.capacity, src, src_stride, positions);
  HMOE_CUDA_CHECK_LAUNCH("cache_write_kernel");
}

void mla_dense_attend(const DenseMlaCache& cache, const float* q_latent, const float* q_rope,
                      std::int64_t rope_token_stride, std::int64_t rope_head_stride, std::int64_t tokens, int heads,
                      const std::int32_t* positions, float softmax_scale, float* o_lat, const Stream& s) {
  check_cache(cache, "mla_dense_attend");
  if (tokens < 0 || tokens > 0x7fffffff || heads < 1 || heads > 65535)
    throw std::invalid_argument("hmoe::cuda::mla_dense_attend: tokens = " + std::to_string(tokens) +
                                ", heads = " + std::to_string(heads));
  if (tokens == 0) return;
  const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(heads));
  attend_kernel<<<grid, threads, 0, detail::native(s)>>>(cache.rows, cache.rank, cache.rope_dims, cache.capacity,
                                                         q_latent, q_rope, rope_token_stride, rope_head_stride, heads,
                                                         positions, softmax_scale, o_lat);
  HMOE_CUDA_CHECK_LAUNCH("attend_kernel");
}

}  // namespace hmoe::cuda
