/// \file
/// \brief main() of every GPU test: skips cleanly (exit 77, CTest's SKIP_RETURN_CODE) where no CUDA device is
/// visible, otherwise selects device 0 and runs doctest.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "hmoe/cuda/device.hpp"

int main(int argc, char** argv) {
  if (hmoe::cuda::device_count() == 0) {
    std::printf("SKIP: no CUDA device is visible; hmoe's GPU tests (CTest label gpu) need one.\n");
    return 77;
  }
  const hmoe::cuda::Device dev(0);
  dev.make_current();
  std::printf("device 0: %s, sm_%d, %d SMs\n", dev.name().c_str(), dev.compute_capability(), dev.multiprocessors());
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
