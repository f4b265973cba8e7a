/// \file
/// \brief What the GPU tests share: a fresh, printed random seed (HMOE_TEST_SEED reproduces one), device
/// buffers from and to std::vector, and NaN-poisoned output buffers (so an unwritten value cannot pass).
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "hmoe/cuda/buffer.hpp"

namespace hmoe::gpu_test {

/// A fresh seed per call (std::random_device), or HMOE_TEST_SEED when set; printed, so a failure can be rerun.
inline std::uint64_t fresh_seed(const char* what) {
  std::uint64_t s;
  if (const char* env = std::getenv("HMOE_TEST_SEED")) s = std::strtoull(env, nullptr, 0);
  else s = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  std::printf("%s: seed %llu (HMOE_TEST_SEED=%llu reproduces it)\n", what, static_cast<unsigned long long>(s),
              static_cast<unsigned long long>(s));
  return s;
}

template <class T>
cuda::Buffer upload(const std::vector<T>& v) {
  return cuda::Buffer::from(v.data(), v.size());
}

template <class T>
std::vector<T> download(const cuda::Buffer& b, std::size_t count) {
  std::vector<T> v(count);
  b.download(v.data(), count * sizeof(T));
  return v;
}

/// count values of T, every byte 0xFF: NaN for f32 and bf16, -1 for int32.
template <class T>
cuda::Buffer poisoned(std::size_t count) {
  cuda::Buffer b(count * sizeof(T));
  b.fill_bytes(0xFF);
  return b;
}

inline std::vector<float> normal_floats(std::mt19937_64& g, std::size_t n, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace hmoe::gpu_test
