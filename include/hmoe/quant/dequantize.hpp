/// \file
/// \brief Row-level dequantization of ggml tensor data to float, for every type hmoe can compute with.
///
/// Results are bit-identical to gguf-py's `gguf.quants.dequantize` (llama.cpp's reference). Sources may be
/// unaligned (e.g. rows inside a memory-mapped GGUF file); blocks are then copied out one at a time.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "hmoe/quant/ggml_type.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/k_blocks.hpp"
#include "hmoe/quant/legacy_blocks.hpp"

namespace hmoe::quant {

/// A ggml block struct: fixed geometry, a ggml type, raw bytes that can be copied, and a per-block decoder.
template <class B>
concept QuantBlock = std::is_standard_layout_v<B> && std::is_trivially_copyable_v<B> && requires(const B& b, float* y) {
  { B::block_elems } -> std::convertible_to<int>;
  { B::type } -> std::convertible_to<GgmlType>;
  dequantize(b, y);
} && sizeof(B) == ggml_type_info(B::type).block_bytes && B::block_elems == ggml_type_info(B::type).block_elems;

static_assert(QuantBlock<BlockQ4_0> && QuantBlock<BlockQ4_1> && QuantBlock<BlockQ5_0> && QuantBlock<BlockQ5_1> &&
              QuantBlock<BlockQ8_0>);
static_assert(QuantBlock<BlockQ2_K> && QuantBlock<BlockQ3_K> && QuantBlock<BlockQ4_K> && QuantBlock<BlockQ5_K> &&
              QuantBlock<BlockQ6_K> && QuantBlock<BlockQ8_K>);

/// The block struct of a quantized type: `BlockFor<GgmlType::Q4_K>::type` is BlockQ4_K.
template <GgmlType T> struct BlockFor;
template <> struct BlockFor<GgmlType::Q4_0> { using type = BlockQ4_0; };
template <> struct BlockFor<GgmlType::Q4_1> { using type = BlockQ4_1; };
template <> struct BlockFor<GgmlType::Q5_0> { using type = BlockQ5_0; };
template <> struct BlockFor<GgmlType::Q5_1> { using type = BlockQ5_1; };
template <> struct BlockFor<GgmlType::Q8_0> { using type = BlockQ8_0; };
template <> struct BlockFor<GgmlType::Q2_K> { using type = BlockQ2_K; };
template <> struct BlockFor<GgmlType::Q3_K> { using type = BlockQ3_K; };
template <> struct BlockFor<GgmlType::Q4_K> { using type = BlockQ4_K; };
template <> struct BlockFor<GgmlType::Q5_K> { using type = BlockQ5_K; };
template <> struct BlockFor<GgmlType::Q6_K> { using type = BlockQ6_K; };
template <> struct BlockFor<GgmlType::Q8_K> { using type = BlockQ8_K; };

/// Decodes n_blocks consecutive blocks, which need not be aligned, to n_blocks * B::block_elems floats.
template <QuantBlock B>
void dequantize_blocks(const void* src, float* dst, std::int64_t n_blocks) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  if (reinterpret_cast<std::uintptr_t>(src) % alignof(B) == 0) {
    const auto* blocks = static_cast<const B*>(src);
    for (std::int64_t i = 0; i < n_blocks; ++i) dequantize(blocks[i], dst + i * B::block_elems);
    return;
  }
  for (std::int64_t i = 0; i < n_blocks; ++i) {
    B block;
    std::memcpy(&block, bytes + i * static_cast<std::int64_t>(sizeof(B)), sizeof(B));
    dequantize(block, dst + i * B::block_elems);
  }
}

namespace detail {

inline constexpr std::array<GgmlType, 14> dequantizable{
    GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
    GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
    GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K,
};

/// The geometry of t, or std::invalid_argument naming `who` when t is no ggml type at all.
inline GgmlTypeInfo checked_info(GgmlType t, const char* who) {
  const auto info = ggml_type_info(static_cast<std::uint32_t>(t));
  if (!info)
    throw std::invalid_argument(std::string(who) + ": unknown ggml type id " +
                                std::to_string(static_cast<std::uint32_t>(t)));
  return *info;
}

inline void check_count(const GgmlTypeInfo& info, std::int64_t n, const char* who) {
  if (n < 0) throw std::invalid_argument(std::string(who) + ": negative value count " + std::to_string(n));
  if (n % info.block_elems != 0)
    throw std::invalid_argument(std::string(who) + ": " + std::to_string(n) + " values of " +
                                std::string(info.name) + " are not a whole number of blocks of " +
                                std::to_string(info.block_elems));
}

}  // namespace detail

/// True for the types dequantize_row handles.
constexpr bool can_dequantize(GgmlType t) {
  for (GgmlType u : detail::dequantizable)
    if (u == t) return true;
  return false;
}

/// Every type can_dequantize accepts: F32, F16, BF16, then the block types in ggml id order.
inline std::span<const GgmlType> dequantizable_types() { return detail::dequantizable; }

/// Bytes taken by n values of type t (any ggml type with known geometry). Throws std::invalid_argument when n is
/// negative or not a multiple of the block size, or t is not a ggml type.
inline std::size_t row_bytes(GgmlType t, std::int64_t n) {
  const GgmlTypeInfo info = detail::checked_info(t, "hmoe::quant::row_bytes");
  detail::check_count(info, n, "hmoe::quant::row_bytes");
  return static_cast<std::size_t>(n / info.block_elems) * info.block_bytes;
}

/// Decodes n values of type t at src (row_bytes(t, n) bytes, any alignment) into dst. Throws
/// std::invalid_argument naming the type when it cannot be dequantized or n is not a whole number of blocks.
inline void dequantize_row(GgmlType t, const void* src, float* dst, std::int64_t n) {
  constexpr const char* who = "hmoe::quant::dequantize_row";
  const GgmlTypeInfo info = detail::checked_info(t, who);
  if (!can_dequantize(t))
    throw std::invalid_argument(std::string(who) + ": cannot dequantize type " + std::string(info.name));
  detail::check_count(info, n, who);
  const std::int64_t nb = n / info.block_elems;
  const auto* bytes = static_cast<const unsigned char*>(src);
  switch (t) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = fp16_to_fp32(h);
      }
      return;
    case GgmlType::BF16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
      }
      return;
    case GgmlType::Q4_0: return dequantize_blocks<BlockQ4_0>(src, dst, nb);
    case GgmlType::Q4_1: return dequantize_blocks<BlockQ4_1>(src, dst, nb);
    case GgmlType::Q5_0: return dequantize_blocks<BlockQ5_0>(src, dst, nb);
    case GgmlType::Q5_1: return dequantize_blocks<BlockQ5_1>(src, dst, nb);
    case GgmlType::Q8_0: return dequantize_blocks<BlockQ8_0>(src, dst, nb);
    case GgmlType::Q2_K: return dequantize_blocks<BlockQ2_K>(src, dst, nb);
    case GgmlType::Q3_K: return dequantize_blocks<BlockQ3_K>(src, dst, nb);
    case GgmlType::Q4_K: return dequantize_blocks<BlockQ4_K>(src, dst, nb);
    case GgmlType::Q5_K: return dequantize_blocks<BlockQ5_K>(src, dst, nb);
    case GgmlType::Q6_K: return dequantize_blocks<BlockQ6_K>(src, dst, nb);
    case GgmlType::Q8_K: return dequantize_blocks<BlockQ8_K>(src, dst, nb);
    default: break;
  }
  throw std::logic_error(std::string(who) + ": can_dequantize and the dispatch disagree on " + std::string(info.name));
}

}  // namespace hmoe::quant
