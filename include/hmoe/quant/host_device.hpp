/// \file
/// \brief HMOE_HOST_DEVICE (`__host__ __device__` under nvcc) and float <-> bits helpers usable on both sides.
#pragma once

#include <bit>
#include <cstdint>

#ifndef HMOE_HOST_DEVICE
#if defined(__CUDACC__)
#define HMOE_HOST_DEVICE __host__ __device__
#else
#define HMOE_HOST_DEVICE
#endif
#endif

namespace hmoe::quant {

HMOE_HOST_DEVICE inline float float_from_bits(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}

HMOE_HOST_DEVICE inline std::uint32_t bits_of(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<std::uint32_t>(f);
#endif
}

}  // namespace hmoe::quant
