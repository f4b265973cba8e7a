/// \file
/// \brief Test helpers for the GGUF reader: a byte-level GGUF builder, a scratch directory, FNV-1a, and a
///        helper that opens a file expecting a gguf::Error.
#pragma once

#include <doctest/doctest.h>

#include "../../support/temp_dir.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hmoe/io/gguf.hpp"

namespace hmoe::gguf::test {

inline const std::filesystem::path fixture_dir = std::filesystem::path(HMOE_TEST_DATA) / "gguf";

using hmoe::test::TempDir;

inline std::vector<std::byte> read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

inline void write_bytes(const std::filesystem::path& p, std::span<const std::byte> bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out, "cannot write " << p);
}

inline std::uint64_t fnv1a64(std::span<const std::byte> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::byte b : bytes) {
    h ^= std::to_integer<std::uint64_t>(b);
    h *= 0x100000001b3ull;
  }
  return h;
}

/// Appends GGUF fields little-endian; size() before a field is that field's offset, which tests use to check
/// the byte offsets in error messages and to patch fields afterwards.
class Builder {
 public:
  std::vector<std::byte> bytes;

  std::uint64_t size() const { return bytes.size(); }

  template <class T>
  Builder& put(T v) {
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));  // the test machines are little-endian, like the files
    for (unsigned char c : raw) bytes.push_back(std::byte{c});
    return *this;
  }
  Builder& u16(std::uint16_t v) { return put(v); }
  Builder& u32(std::uint32_t v) { return put(v); }
  Builder& i32(std::int32_t v) { return put(v); }
  Builder& u64(std::uint64_t v) { return put(v); }
  Builder& raw(std::string_view s) {
    for (char c : s) bytes.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Builder& str(std::string_view s) { return u64(s.size()).raw(s); }
  Builder& zeros(std::uint64_t n) {
    bytes.insert(bytes.end(), n, std::byte{0});
    return *this;
  }
  Builder& pad_to(std::uint64_t alignment) { return zeros((alignment - size() % alignment) % alignment); }

  Builder& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  Builder& kv_u32(std::string_view key, std::uint32_t v) { return str(key).u32(4).u32(v); }
  Builder& kv_u16(std::string_view key, std::uint16_t v) { return str(key).u32(2).u16(v); }
  Builder& kv_i32(std::string_view key, std::int32_t v) { return str(key).u32(5).i32(v); }
  Builder& kv_str(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
  Builder& tensor_info(std::string_view name, std::initializer_list<std::uint64_t> ne, GgmlType type,
                       std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(ne.size()));
    for (auto n : ne) u64(n);
    return u32(static_cast<std::uint32_t>(type)).u64(offset);
  }

  template <class T>
  void patch(std::uint64_t at, T v) {
    REQUIRE(at + sizeof(T) <= bytes.size());
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }

  void write(const std::filesystem::path& p) const { write_bytes(p, bytes); }
};

/// Opens `path` expecting a gguf::Error; returns its message (and fails the test if the open succeeds or
/// throws anything else). The message must start with the path of the file at fault: `path` itself unless
/// `at_fault` names another (a part of a split set).
inline std::string open_error(const std::filesystem::path& path, const std::filesystem::path& at_fault = {}) {
  std::string message;
  try {
    (void)File::open(path);
    FAIL_CHECK("opening " << path << " succeeded but should have failed");
  } catch (const Error& e) {
    message = e.what();
  }
  INFO("message: " << message);
  CHECK(message.starts_with((at_fault.empty() ? path : at_fault).string() + ": "));
  return message;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace hmoe::gguf::test
