/// \file
/// \brief Private to the unit: the types matmul takes, as kernel template arguments. Block types are the quant/
/// block structs with their HMOE_HOST_DEVICE decoders; F32, F16 and BF16 are one-value "elements" with an exact
/// widening to f32.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "hmoe/quant/dequantize.hpp"

namespace hmoe::cuda::detail {

struct ElemF32 {
  using raw = float;
  static __device__ __forceinline__ float widen(float v) { return v; }
};
struct ElemF16 {
  using raw = std::uint16_t;
  static __device__ __forceinline__ float widen(std::uint16_t b) { return __half2float(__ushort_as_half(b)); }
};
struct ElemBF16 {
  using raw = std::uint16_t;
  static __device__ __forceinline__ float widen(std::uint16_t b) { return __uint_as_float(unsigned{b} << 16); }
};

/// An unquantized type (values stored one by one), as opposed to a quant:: block struct.
template <class T>
concept element_type = requires { typename T::raw; };

/// Calls f(std::type_identity<T>{}) with T the element or block type of `type`; std::invalid_argument for a type
/// matmul does not take.
template <class F>
void visit_matmul_type(GgmlType type, F&& f) {
  switch (type) {
    case GgmlType::F32: return f(std::type_identity<ElemF32>{});
    case GgmlType::F16: return f(std::type_identity<ElemF16>{});
    case GgmlType::BF16: return f(std::type_identity<ElemBF16>{});
    case GgmlType::Q4_0: return f(std::type_identity<quant::BlockQ4_0>{});
    case GgmlType::Q4_1: return f(std::type_identity<quant::BlockQ4_1>{});
    case GgmlType::Q5_0: return f(std::type_identity<quant::BlockQ5_0>{});
    case GgmlType::Q5_1: return f(std::type_identity<quant::BlockQ5_1>{});
    case GgmlType::Q8_0: return f(std::type_identity<quant::BlockQ8_0>{});
    case GgmlType::Q2_K: return f(std::type_identity<quant::BlockQ2_K>{});
    case GgmlType::Q3_K: return f(std::type_identity<quant::BlockQ3_K>{});
    case GgmlType::Q4_K: return f(std::type_identity<quant::BlockQ4_K>{});
    case GgmlType::Q5_K: return f(std::type_identity<quant::BlockQ5_K>{});
    case GgmlType::Q6_K: return f(std::type_identity<quant::BlockQ6_K>{});
    default: break;
  }
  throw std::invalid_argument("hmoe::cuda: matmul does not take type id " +
                              std::to_string(static_cast<std::uint32_t>(type)));
}

}  // namespace hmoe::cuda::detail
