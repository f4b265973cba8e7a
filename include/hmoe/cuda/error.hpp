/// \file
/// \brief CudaError: what every hmoe::cuda call throws when the CUDA runtime, cuBLASLt or a kernel launch fails.
#pragma once

#include <stdexcept>
#include <string>

namespace hmoe::cuda {

/// A failed CUDA runtime or library call; what() names the call, the error and the source line.
class CudaError : public std::runtime_error {
 public:
  explicit CudaError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace hmoe::cuda
