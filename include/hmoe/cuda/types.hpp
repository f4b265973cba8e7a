/// \file
/// \brief Element types of the unit's API: Bf16 (bfloat16 bits, layout-compatible with CUDA's __nv_bfloat16)
/// and the `activation` concept naming the activation types the kernels are instantiated for.
#pragma once

#include <concepts>
#include <cstdint>

#include "hmoe/quant/half.hpp"

namespace hmoe::cuda {

/// bfloat16 as its 16 bits; conversions round to nearest even (quant/half.hpp), as ggml and CUDA do.
struct Bf16 {
  std::uint16_t bits = 0;
  static Bf16 from_float(float f) { return Bf16{quant::fp32_to_bf16(f)}; }
  float to_float() const { return quant::bf16_to_fp32(bits); }
};
static_assert(sizeof(Bf16) == 2 && alignof(Bf16) == 2);

/// The activation types the unit's kernels are explicitly instantiated for: f32 and bf16.
template <class T>
concept activation = std::same_as<T, float> || std::same_as<T, Bf16>;

}  // namespace hmoe::cuda
