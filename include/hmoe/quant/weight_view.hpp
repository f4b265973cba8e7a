/// \file
/// \brief `WeightMatrix`: a read-only view of a 2-D slice of a GGUF tensor, in the format the file stores.
///
/// Rows are ggml rows (ne[0] values, contiguous). The view never owns memory: it points into the mapping.
/// `dequantize_row` is the accessor the reference path uses, so any stored format works and nothing is
/// converted at load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/ggml_type.hpp"

namespace hmoe {

struct WeightMatrix {
  std::string name;                ///< tensor name (and slice), for error messages
  GgmlType type = GgmlType::F32;
  std::int64_t rows = 0, cols = 0; ///< (out, in)
  const std::byte* data = nullptr;
  std::size_t row_bytes = 0;

  const std::byte* row(std::int64_t r) const { return data + static_cast<std::size_t>(r) * row_bytes; }
  void dequantize_row(std::int64_t r, float* out) const { quant::dequantize_row(type, row(r), out, cols); }
};

}  // namespace hmoe
