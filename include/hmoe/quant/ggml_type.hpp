/// \file
/// \brief Every ggml tensor type id that a GGUF file can carry, with its name and block geometry.
///
/// The ids are ggml's (`enum ggml_type`); gaps are ids ggml retired. The geometry is what a reader needs to
/// size a tensor's data even for types hmoe cannot compute with (so it can say so by name).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hmoe {

enum class GgmlType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

/// Name and block geometry of one ggml type: `block_elems` values are stored in `block_bytes` bytes.
struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;
  std::uint32_t block_elems;
  std::uint32_t block_bytes;
};

inline constexpr std::array<GgmlTypeInfo, 34> ggml_types{{
    {GgmlType::F32, "F32", 1, 4},          {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 18},      {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22},      {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},      {GgmlType::Q8_1, "Q8_1", 32, 40},
    {GgmlType::Q2_K, "Q2_K", 256, 84},     {GgmlType::Q3_K, "Q3_K", 256, 110},
    {GgmlType::Q4_K, "Q4_K", 256, 144},    {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210},    {GgmlType::Q8_K, "Q8_K", 256, 292},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 256, 66}, {GgmlType::IQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::IQ1_S, "IQ1_S", 256, 50},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18},  {GgmlType::IQ3_S, "IQ3_S", 256, 110},
    {GgmlType::IQ2_S, "IQ2_S", 256, 82},   {GgmlType::IQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::I8, "I8", 1, 1},            {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},          {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},          {GgmlType::IQ1_M, "IQ1_M", 256, 56},
    {GgmlType::BF16, "BF16", 1, 2},        {GgmlType::TQ1_0, "TQ1_0", 256, 54},
    {GgmlType::TQ2_0, "TQ2_0", 256, 66},   {GgmlType::MXFP4, "MXFP4", 32, 17},
    {GgmlType::NVFP4, "NVFP4", 64, 36},    {GgmlType::Q1_0, "Q1_0", 128, 18},
}};

/// The entry for a raw id read from a file, or nothing when ggml has no such type.
constexpr std::optional<GgmlTypeInfo> ggml_type_info(std::uint32_t id) {
  for (const auto& t : ggml_types)
    if (static_cast<std::uint32_t>(t.type) == id) return t;
  return std::nullopt;
}

constexpr GgmlTypeInfo ggml_type_info(GgmlType type) { return *ggml_type_info(static_cast<std::uint32_t>(type)); }

constexpr std::string_view ggml_type_name(GgmlType type) { return ggml_type_info(type).name; }

static_assert(ggml_type_info(GgmlType::Q4_K).block_bytes == 144);
static_assert(!ggml_type_info(4u).has_value(), "id 4 (Q4_2) was retired by ggml");

}  // namespace hmoe
