/// \file
/// \brief Finds a model's tensors in a GGUF file with the shapes the hyper-parameters imply.
///
/// Every lookup names the file, the tensor and what was expected, so a file from a converter that wrote a
/// different shape fails at load with a reason instead of producing wrong numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hmoe/io/gguf.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe {

namespace detail {

inline std::string shape_string(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[static_cast<std::size_t>(d)]);
  return s + "]";
}

inline const gguf::TensorInfo& tensor_with_shape(const gguf::File& f, const std::string& name,
                                                 std::initializer_list<std::int64_t> ne) {
  const auto* t = f.find_tensor(name);
  if (!t) throw ModelError(f.path().string() + ": tensor " + name + " is missing");
  bool ok = true;
  std::size_t d = 0;
  for (auto n : ne) ok = ok && static_cast<std::int64_t>(t->ne[d++]) == n;
  for (; d < 4; ++d) ok = ok && t->ne[d] == 1;
  if (!ok) {
    std::string want = "[";
    d = 0;
    for (auto n : ne) want += (d++ ? ", " : "") + std::to_string(n);
    throw ModelError(f.path().string() + ": tensor " + name + " has shape " + shape_string(*t) + ", expected " +
                     want + "] from the hyper-parameters");
  }
  if (!quant::can_dequantize(t->type))
    throw ModelError(f.path().string() + ": tensor " + name + " has type " + std::string(ggml_type_name(t->type)) +
                     ", which hmoe does not run");
  return *t;
}

}  // namespace detail

/// A 2-D weight `name` of shape (rows = out, cols = in), i.e. ggml ne = [cols, rows].
inline WeightMatrix matrix(const gguf::File& f, const std::string& name, std::int64_t rows, std::int64_t cols) {
  const auto& t = detail::tensor_with_shape(f, name, {cols, rows});
  return {name, t.type, rows, cols, t.data.data(), quant::row_bytes(t.type, cols)};
}

/// Slice `index` of a 3-D weight stacked along ne[2] (per-expert or per-head matrices), each (rows × cols).
inline WeightMatrix slice(const gguf::File& f, const std::string& name, std::int64_t index, std::int64_t count,
                          std::int64_t rows, std::int64_t cols) {
  const auto& t = detail::tensor_with_shape(f, name, {cols, rows, count});
  const auto rb = quant::row_bytes(t.type, cols);
  return {name + "[" + std::to_string(index) + "]", t.type, rows, cols,
          t.data.data() + static_cast<std::size_t>(index * rows) * rb, rb};
}

/// A 1-D tensor (norm weights, biases) dequantized to f32.
inline std::vector<float> vector_f32(const gguf::File& f, const std::string& name, std::int64_t n) {
  const auto& t = detail::tensor_with_shape(f, name, {n});
  std::vector<float> v(static_cast<std::size_t>(n));
  quant::dequantize_row(t.type, t.data.data(), v.data(), n);
  return v;
}

inline std::string block_tensor(int layer, std::string_view what) {
  return "blk." + std::to_string(layer) + "." + std::string(what);
}

}  // namespace hmoe
