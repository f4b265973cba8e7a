/// \file
/// \brief Moving a layer's weights to the GPU at load, in the format its `Quant<>` policy names.
///
/// `Quant<Stored>` keeps the file's bytes (the GPU kernels dequantize exactly what the CPU reference does);
/// `Quant<BF16>` converts every matrix to bf16 on the host first (one rounding of the dequantized weight).
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/matrix.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/policy/quant.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::gpu {

template <class Format>
concept gpu_weight_format = std::same_as<Format, Stored> || std::same_as<Format, BF16>;

template <gpu_weight_format Format>
cuda::DeviceMatrix to_device(const WeightMatrix& w) {
  if constexpr (std::same_as<Format, Stored>) {
    if (!cuda::matmul_supports(w.type))
      throw ModelError("tensor " + w.name + " has type " + std::string(ggml_type_name(w.type)) +
                       ", which the GPU kernels do not take (Placement<GPU> with Quant<Stored>); use Quant<BF16> "
                       "for this layer");
    return cuda::DeviceMatrix::upload(w.name, w.type, w.rows, w.cols, w.data, w.row_bytes);
  } else {
    std::vector<float> row(static_cast<std::size_t>(w.cols));
    std::vector<std::uint16_t> bf(static_cast<std::size_t>(w.rows * w.cols));
    for (std::int64_t r = 0; r < w.rows; ++r) {
      w.dequantize_row(r, row.data());
      for (std::int64_t c = 0; c < w.cols; ++c)
        bf[static_cast<std::size_t>(r * w.cols + c)] = quant::fp32_to_bf16(row[static_cast<std::size_t>(c)]);
    }
    return cuda::DeviceMatrix::upload(w.name, GgmlType::BF16, w.rows, w.cols, bf.data(),
                                      static_cast<std::size_t>(w.cols) * 2);
  }
}

/// The matrix dequantized to f32 on the device: exact, 4 bytes a weight, read at full bandwidth by the element
/// GEMV (the block GEMV decodes a whole block per lane, slow for short rows of big blocks such as Q6_K's).
inline cuda::DeviceMatrix to_device_f32(const WeightMatrix& w) {
  std::vector<float> f(static_cast<std::size_t>(w.rows * w.cols));
  for (std::int64_t r = 0; r < w.rows; ++r) w.dequantize_row(r, f.data() + r * w.cols);
  return cuda::DeviceMatrix::upload(w.name, GgmlType::F32, w.rows, w.cols, f.data(),
                                    static_cast<std::size_t>(w.cols) * sizeof(float));
}

/// An f32 vector (norm weights, biases) on the device.
inline cuda::Buffer to_device(const std::vector<float>& v) { return cuda::Buffer::from(v.data(), v.size()); }

}  // namespace hmoe::gpu
