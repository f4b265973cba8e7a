/// \file
/// \brief Private to the unit: error checks for CUDA runtime calls and kernel launches, and the handle casts.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "hmoe/cuda/error.hpp"
#include "hmoe/cuda/stream.hpp"

namespace hmoe::cuda::detail {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  throw CudaError(std::string("hmoe::cuda: ") + what + " failed: " + cudaGetErrorName(e) + " (" +
                  cudaGetErrorString(e) + ") at " + file + ":" + std::to_string(line));
}

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) throw_cuda(e, what, file, line);
}

inline cudaStream_t native(const Stream& s) { return static_cast<cudaStream_t>(s.native()); }

/// Blocks needed to cover n items with `per` items each.
inline unsigned blocks_for(long long n, long long per) { return static_cast<unsigned>((n + per - 1) / per); }

}  // namespace hmoe::cuda::detail

/// Wraps a CUDA runtime call: throws CudaError naming the call and the line.
#define HMOE_CUDA_CHECK(call) ::hmoe::cuda::detail::check((call), #call, __FILE__, __LINE__)
/// After every <<<>>> launch: a bad configuration shows up here, not at some later call.
#define HMOE_CUDA_CHECK_LAUNCH(kernel_name) \
  ::hmoe::cuda::detail::check(cudaGetLastError(), "launch of " kernel_name, __FILE__, __LINE__)
