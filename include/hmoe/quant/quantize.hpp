/// \file
/// \brief Quantization of float rows to Q8_0 and Q8_K with ggml's reference semantics (quantize_row_*_ref).
///
/// Q8_0 (d = amax / 127, q = round half away from zero of x / d) is bit-identical to gguf-py's
/// `gguf.quants.quantize`. Q8_K is the activation format of K-quant dot products: per 256 values the
/// signed value of largest magnitude maps to -127, q = nearest-even(x * -127 / max), d = 1 / iscale, and bsums hold
/// the 16-value partial sums of q.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hmoe/quant/half.hpp"
#include "hmoe/quant/host_device.hpp"
#include "hmoe/quant/k_blocks.hpp"
#include "hmoe/quant/legacy_blocks.hpp"

namespace hmoe::quant {

/// One Q8_0 block from 32 floats.
HMOE_HOST_DEVICE inline void quantize(const float* x, BlockQ8_0& y) {
  float amax = 0.0f;
  for (int j = 0; j < BlockQ8_0::block_elems; ++j) {
    const float a = std::fabs(x[j]);
    amax = a > amax ? a : amax;
  }
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = fp32_to_fp16(d);
  for (int j = 0; j < BlockQ8_0::block_elems; ++j) y.qs[j] = static_cast<std::int8_t>(std::round(x[j] * id));
}

/// One Q8_K block from 256 floats. An all-zero block gets d = 0 and zero q and sums.
HMOE_HOST_DEVICE inline void quantize(const float* x, BlockQ8_K& y) {
  float amax = 0.0f;
  float max = 0.0f;  // the signed value of largest magnitude, first one on ties
  for (int j = 0; j < qk_k; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax) {
      amax = a;
      max = x[j];
    }
  }
  if (amax == 0.0f) {
    y.d = 0.0f;
    for (int j = 0; j < qk_k; ++j) y.qs[j] = 0;
    for (int k = 0; k < qk_k / 16; ++k) y.bsums[k] = 0;
    return;
  }
  // ggml's scale: the value of largest magnitude becomes exactly -127, and no q can reach -128.
  const float iscale = -127.0f / max;
  for (int j = 0; j < qk_k; ++j) {
    const int v = static_cast<int>(std::nearbyint(iscale * x[j]));  // ties to even, as ggml's nearest_int
    y.qs[j] = static_cast<std::int8_t>(v < 127 ? v : 127);
  }
  for (int k = 0; k < qk_k / 16; ++k) {
    int sum = 0;
    for (int l = 0; l < 16; ++l) sum += y.qs[16 * k + l];
    y.bsums[k] = static_cast<std::int16_t>(sum);
  }
  y.d = 1.0f / iscale;
}

namespace detail {
inline void check_quantize_count(std::int64_t n, int block_elems, const char* who) {
  if (n < 0 || n % block_elems != 0)
    throw std::invalid_argument(std::string(who) + ": " + std::to_string(n) +
                                " values are not a whole number of blocks of " + std::to_string(block_elems));
}
}  // namespace detail

/// n floats (a multiple of 32) to n / 32 Q8_0 blocks.
inline void quantize_row_q8_0(const float* x, BlockQ8_0* y, std::int64_t n) {
  detail::check_quantize_count(n, BlockQ8_0::block_elems, "hmoe::quant::quantize_row_q8_0");
  for (std::int64_t i = 0; i < n / BlockQ8_0::block_elems; ++i) quantize(x + i * BlockQ8_0::block_elems, y[i]);
}

/// n floats (a multiple of 256) to n / 256 Q8_K blocks.
inline void quantize_row_q8_K(const float* x, BlockQ8_K* y, std::int64_t n) {
  detail::check_quantize_count(n, BlockQ8_K::block_elems, "hmoe::quant::quantize_row_q8_K");
  for (std::int64_t i = 0; i < n / BlockQ8_K::block_elems; ++i) quantize(x + i * BlockQ8_K::block_elems, y[i]);
}

}  // namespace hmoe::quant
