/// \file
/// \brief A bounds-checked little-endian reader over the bytes of a mapped GGUF file.
///
/// Every read first checks that the bytes are there, so a truncated or lying file produces a gguf::Error that
/// says where the data ran out and what was being read, never a read past the mapping. The description of what
/// is being read is either a string or a callable producing one: callables are only run when a read fails, so
/// reading a 100k-entry vocabulary builds no strings.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "hmoe/io/gguf_error.hpp"

namespace hmoe::gguf {

/// Fixed-size arithmetic types a GGUF file stores (bool is read as a byte and checked separately).
template <class T>
concept WireScalar = std::is_arithmetic_v<T> && !std::same_as<T, bool> &&
                     (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

/// What is being read: a string, or a callable that makes one (only called when the read fails).
template <class W>
concept ReadDescription =
    std::convertible_to<const W&, std::string_view> ||
    (std::invocable<const W&> && std::convertible_to<std::invoke_result_t<const W&>, std::string>);

namespace detail {

template <ReadDescription W>
std::string describe(const W& what) {
  if constexpr (std::convertible_to<const W&, std::string_view>)
    return std::string(std::string_view(what));
  else
    return std::invoke(what);
}

template <std::size_t N>
struct UnsignedOfSize;
template <> struct UnsignedOfSize<1> { using type = std::uint8_t; };
template <> struct UnsignedOfSize<2> { using type = std::uint16_t; };
template <> struct UnsignedOfSize<4> { using type = std::uint32_t; };
template <> struct UnsignedOfSize<8> { using type = std::uint64_t; };

template <std::unsigned_integral U>
constexpr U byteswap(U u) noexcept {
  U r = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) r = static_cast<U>((r << 8) | ((u >> (8 * i)) & 0xff));
  return r;
}
static_assert(byteswap(std::uint32_t{0x01020304}) == 0x04030201);

/// The little-endian value stored at `p` (which needs no alignment).
template <WireScalar T>
T load_le(const std::byte* p) noexcept {
  using U = typename UnsignedOfSize<sizeof(T)>::type;
  U u;
  std::memcpy(&u, p, sizeof u);
  if constexpr (std::endian::native == std::endian::big) u = byteswap(u);
  return std::bit_cast<T>(u);
}

}  // namespace detail

class ByteCursor {
 public:
  /// `file` names the file in messages; it must outlive the cursor.
  ByteCursor(std::span<const std::byte> bytes, std::string_view file) : bytes_(bytes), file_(file) {}

  std::uint64_t offset() const noexcept { return pos_; }
  std::uint64_t size() const noexcept { return bytes_.size(); }
  std::uint64_t remaining() const noexcept { return bytes_.size() - pos_; }
  std::string_view file() const noexcept { return file_; }
  std::span<const std::byte> bytes() const noexcept { return bytes_; }

  /// What the reads that follow belong to ("metadata key 'general.name'", "tensor blk.0.attn_norm.weight"),
  /// for truncation messages.
  void set_subject(std::string subject) { subject_ = std::move(subject); }
  const std::string& subject() const noexcept { return subject_; }

  /// The next `n` bytes, or an Error saying the file ends first.
  template <ReadDescription W>
  std::span<const std::byte> take(std::uint64_t n, const W& what) {
    if (n > remaining()) truncated(n, detail::describe(what));
    const auto out = bytes_.subspan(static_cast<std::size_t>(pos_), static_cast<std::size_t>(n));
    pos_ += n;
    return out;
  }

  template <WireScalar T, ReadDescription W>
  T read(const W& what) {
    return detail::load_le<T>(take(sizeof(T), what).data());
  }

  /// A GGUF string: a uint64 byte count, then that many bytes (UTF-8, not NUL-terminated).
  template <ReadDescription W>
  std::string_view read_string(const W& what) {
    const std::uint64_t at = pos_;
    const auto n = read<std::uint64_t>([&] { return "the length of " + detail::describe(what); });
    if (n > remaining())
      fail_at(at, detail::cat(detail::describe(what), of_subject(), " claims ", n, " bytes but only ", remaining(),
                              " are left in the file (", size(), " bytes)"));
    const auto s = take(n, what);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

  /// Throws "<file>: byte <at>: <reason>".
  [[noreturn]] void fail_at(std::uint64_t at, std::string_view reason) const { detail::fail_at(file_, at, reason); }

 private:
  std::string of_subject() const { return subject_.empty() ? std::string() : " of " + subject_; }

  [[noreturn]] void truncated(std::uint64_t n, const std::string& what) const {
    fail_at(pos_, detail::cat("truncated: the file ends at byte ", size(), " while reading ", what, of_subject(),
                              " (needs ", n, " bytes, ", remaining(), " left)"));
  }

  std::span<const std::byte> bytes_;
  std::string_view file_;
  std::uint64_t pos_ = 0;
  std::string subject_;
};

}  // namespace hmoe::gguf
