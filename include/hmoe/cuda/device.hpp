/// \file
/// \brief Device: one CUDA GPU, chosen by index; device_count() and what a device is (name, memory, SMs).
#pragma once

#include <cstddef>
#include <string>

namespace hmoe::cuda {

/// Number of CUDA devices visible to this process; 0 when there is no driver or no GPU (never throws).
int device_count() noexcept;

/// A GPU by its index. Constructing one checks that it exists; make_current() makes it the calling thread's
/// device, which every later allocation, stream and launch on that thread uses.
class Device {
 public:
  explicit Device(int index = 0);

  int index() const noexcept { return index_; }
  void make_current() const;

  std::string name() const;
  std::size_t total_memory() const;     ///< bytes
  std::size_t free_memory() const;      ///< bytes free now (cudaMemGetInfo, for the current device)
  int compute_capability() const;       ///< 10 * major + minor: 90 for Hopper
  int multiprocessors() const;

 private:
  int index_;
};

/// Blocks until every operation on the current device has finished; throws CudaError on an earlier
/// asynchronous failure.
void synchronize();

}  // namespace hmoe::cuda
