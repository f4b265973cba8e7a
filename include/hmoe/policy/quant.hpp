/// \file
/// \brief `Quant<F>`: the format a layer's weights are held in while it computes.
///
/// Each format tag carries its geometry and, for ggml formats, the ggml type id and the activation format
/// ggml pairs it with (`Q4_K::activation` is `Q8_K`). `Stored` keeps every tensor in whatever format the file
/// stores it and dequantizes rows on access: it is the reference path, exact for any file.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string_view>

#include "hmoe/quant/ggml_type.hpp"

namespace hmoe {

/// Base of the format tags; `ggml` is the ggml type a file must store for this format to load without conversion.
template <GgmlType Ggml, class Activation>
struct GgmlFormat {
  static constexpr std::optional<GgmlType> ggml = Ggml;
  static constexpr std::string_view name = ggml_type_info(Ggml).name;
  static constexpr int block_elems = static_cast<int>(ggml_type_info(Ggml).block_elems);
  static constexpr int block_bytes = static_cast<int>(ggml_type_info(Ggml).block_bytes);
  using activation = Activation;
};

struct F32 : GgmlFormat<GgmlType::F32, void> {};
struct BF16 : GgmlFormat<GgmlType::BF16, void> {};
struct Q8_K : GgmlFormat<GgmlType::Q8_K, void> {};   ///< activations of the K-quants
struct Q8_0 : GgmlFormat<GgmlType::Q8_0, Q8_0> {};
struct Q5_0 : GgmlFormat<GgmlType::Q5_0, Q8_0> {};   ///< activations: Q8_0, as ggml
struct Q4_K : GgmlFormat<GgmlType::Q4_K, Q8_K> {};
struct Q5_K : GgmlFormat<GgmlType::Q5_K, Q8_K> {};
struct Q6_K : GgmlFormat<GgmlType::Q6_K, Q8_K> {};

/// hmoe's own repacked format: int8 weights with one f32 scale per output channel, made at load.
struct Int8 {
  static constexpr std::optional<GgmlType> ggml = std::nullopt;
  static constexpr std::string_view name = "Int8";
  static constexpr int block_elems = 1;
  static constexpr int block_bytes = 1;
  using activation = Int8;
};

/// Whatever the file stores, dequantized to f32 row by row as it is used.
struct Stored {
  static constexpr std::optional<GgmlType> ggml = std::nullopt;
  static constexpr std::string_view name = "Stored";
  static constexpr int block_elems = 1;
  static constexpr int block_bytes = 0;
  using activation = F32;
};

template <class F>
concept quant_format = requires {
  { F::name } -> std::convertible_to<std::string_view>;
  { F::block_elems } -> std::convertible_to<int>;
  { F::block_bytes } -> std::convertible_to<int>;
  typename F::activation;
} && std::same_as<std::remove_cvref_t<decltype(F::ggml)>, std::optional<GgmlType>>;

template <quant_format Format>
struct Quant {
  using format = Format;
};

namespace detail {
template <class T> inline constexpr bool is_quant = false;
template <class F> inline constexpr bool is_quant<Quant<F>> = true;
}  // namespace detail

template <class T>
concept quant_policy = detail::is_quant<T>;

static_assert(Q4_K::block_elems == 256 && Q4_K::block_bytes == 144);
static_assert(std::same_as<Q4_K::activation, Q8_K>);

}  // namespace hmoe
