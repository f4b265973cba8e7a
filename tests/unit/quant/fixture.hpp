/// \file
/// \brief Reader for the HMQF fixtures written by tools/make_quant_fixtures.py, and bit-level float comparison.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/quant/ggml_type.hpp"
#include "hmoe/quant/host_device.hpp"

namespace hmoe::quant::test {

/// One fixture: `values` are the dequantization of `bytes` (kind 0) or `bytes` the quantization of `values` (1).
struct Fixture {
  std::uint32_t kind = 0;
  GgmlType type{};
  std::vector<unsigned char> bytes;
  std::vector<float> values;
};

inline Fixture load_fixture(const std::string& name) {
  const std::string path = std::string(HMOE_TEST_DATA) + "/quant/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + path + " (run tools/make_quant_fixtures.py)");
  const std::vector<unsigned char> blob{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  constexpr std::size_t header = 32;
  if (blob.size() < header || std::memcmp(blob.data(), "HMQF", 4) != 0) throw std::runtime_error("not HMQF: " + path);
  auto u32 = [&](std::size_t at) { std::uint32_t v; std::memcpy(&v, blob.data() + at, 4); return v; };
  auto u64 = [&](std::size_t at) { std::uint64_t v; std::memcpy(&v, blob.data() + at, 8); return v; };
  if (u32(4) != 1) throw std::runtime_error("unknown HMQF version in " + path);
  Fixture f;
  f.kind = u32(8);
  f.type = static_cast<GgmlType>(u32(12));
  const std::uint64_t n_values = u64(16), n_bytes = u64(24);
  if (blob.size() != header + n_bytes + 4 * n_values) throw std::runtime_error("truncated fixture " + path);
  f.bytes.assign(blob.begin() + header, blob.begin() + static_cast<std::ptrdiff_t>(header + n_bytes));
  f.values.resize(n_values);
  std::memcpy(f.values.data(), blob.data() + header + n_bytes, 4 * n_values);
  return f;
}

/// A quiet NaN no decoder produces: a slot still holding it was never written.
inline constexpr std::uint32_t poison_bits = 0x7FC0DEADu;
inline std::vector<float> poisoned(std::size_t n) { return std::vector<float>(n, float_from_bits(poison_bits)); }

/// Equal bits, or both NaN (the reference and hmoe may pick different NaN payloads); never the poison.
inline bool same_float(float expected, float got) {
  if (bits_of(got) == poison_bits) return false;
  if (std::isnan(expected) && std::isnan(got)) return true;
  return bits_of(expected) == bits_of(got);
}

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

/// Index of the first mismatch, or -1.
inline std::int64_t first_mismatch(const std::vector<float>& expected, const float* got) {
  for (std::size_t i = 0; i < expected.size(); ++i)
    if (!same_float(expected[i], got[i])) return static_cast<std::int64_t>(i);
  return -1;
}

}  // namespace hmoe::quant::test
