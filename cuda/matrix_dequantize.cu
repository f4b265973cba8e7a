/// \file
/// \brief dequantize_rows and rows_to_bf16: the operands of matmul's cuBLASLt path, written to its scratch.
///
/// Block types: one thread per block, decoded with the quant/ decoder (the CPU's code, so the same values) and
/// stored with 16-byte writes. Element types: one value per thread. Grid-stride loops, as elementwise.cu.
#include "check.hpp"
#include "device_util.cuh"
#include "matrix_kernels.hpp"
#include "matrix_types.cuh"

namespace hmoe::cuda::detail {

namespace {
constexpr int threads = 256;
unsigned grid_for(long long n) { return grid_stride_blocks(n, threads); }

/// Stores N values (whole 16-byte groups; dst 16-byte aligned) with 16-byte writes.
template <int N>
__device__ __forceinline__ void store_values(float* dst, const float* v) {
  static_assert(N % 4 == 0);
#pragma unroll
  for (int j = 0; j < N; j += 4)
    *reinterpret_cast<float4*>(dst + j) = make_float4(v[j], v[j + 1], v[j + 2], v[j + 3]);
}

template <int N>
__device__ __forceinline__ void store_values(Bf16* dst, const float* v) {
  static_assert(N % 8 == 0);
#pragma unroll
  for (int j = 0; j < N; j += 8) {
    unsigned words[4];
#pragma unroll
    for (int q = 0; q < 4; ++q)
      words[q] = quant::fp32_to_bf16(v[j + 2 * q]) | (unsigned{quant::fp32_to_bf16(v[j + 2 * q + 1])} << 16);
    *reinterpret_cast<uint4*>(dst + j) = make_uint4(words[0], words[1], words[2], words[3]);
  }
}

template <class B, class Out>
__global__ void __launch_bounds__(threads)
    dequantize_blocks_kernel(const B* __restrict__ w, std::int64_t n_blocks, Out* __restrict__ out) {
  constexpr int E = B::block_elems;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n_blocks;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    float v[E];
    quant::dequantize(w[i], v);
    store_values<E>(out + i * E, v);
  }
}

template <class E, class Out>
__global__ void __launch_bounds__(threads)
    widen_kernel(const typename E::raw* __restrict__ w, std::int64_t n, Out* __restrict__ out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    store(out + i, E::widen(w[i]));
}

__global__ void __launch_bounds__(threads)
    rows_to_bf16_kernel(const float* __restrict__ x, std::int64_t ldx, Bf16* __restrict__ out, std::int64_t rows,
                        std::int64_t cols) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    store(out + i, x[i / cols * ldx + i % cols]);
}
}  // namespace

template <activation Out>
void dequantize_rows(GgmlType type, const void* w, std::int64_t first_row, std::int64_t n_rows, std::int64_t cols,
                     Out* out, const Stream& s) {
  if (n_rows <= 0 || cols <= 0) return;
  const cudaStream_t st = native(s);
  visit_matmul_type(type, [&]<class T>(std::type_identity<T>) {
    if constexpr (element_type<T>) {
      const auto* wt = static_cast<const typename T::raw*>(w) + first_row * cols;
      const std::int64_t n = n_rows * cols;
      widen_kernel<T, Out><<<grid_for(n), threads, 0, st>>>(wt, n, out);
      HMOE_CUDA_CHECK_LAUNCH("widen_kernel");
    } else {
      const std::int64_t per_row = cols / T::block_elems;
      const std::int64_t n = n_rows * per_row;
      dequantize_blocks_kernel<T, Out><<<grid_for(n), threads, 0, st>>>(static_cast<const T*>(w) + first_row * per_row,
                                                                        n, out);
      HMOE_CUDA_CHECK_LAUNCH("dequantize_blocks_kernel");
    }
  });
}

template void dequantize_rows<float>(GgmlType, const void*, std::int64_t, std::int64_t, std::int64_t, float*,
                                     const Stream&);
template void dequantize_rows<Bf16>(GgmlType, const void*, std::int64_t, std::int64_t, std::int64_t, Bf16*,
                                    const Stream&);

void rows_to_bf16(const float* x, std::int64_t ldx, Bf16* out, std::int64_t rows, std::int64_t cols,
                  const Stream& s) {
  if (rows <= 0 || cols <= 0) return;
  rows_to_bf16_kernel<<<grid_for(rows * cols), threads, 0, native(s)>>>(x, ldx, out, rows, cols);
  HMOE_CUDA_CHECK_LAUNCH("rows_to_bf16_kernel");
}

}  // namespace hmoe::cuda::detail
