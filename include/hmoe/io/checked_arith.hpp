/// \file
/// \brief Overflow-checked uint64 arithmetic for sizes and offsets read from untrusted files.
///
/// A file can claim any count or offset; multiplying or adding them unchecked can wrap around to a small
/// number that then passes a bounds check. These helpers return nothing instead of a wrapped result.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

namespace hmoe::io {

constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return std::nullopt;
  return a + b;
}

constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

constexpr bool is_power_of_two(std::uint64_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

/// `x` rounded up to a multiple of `alignment` (a power of two), or nothing when that overflows.
constexpr std::optional<std::uint64_t> align_up(std::uint64_t x, std::uint64_t alignment) noexcept {
  const auto bumped = checked_add(x, alignment - 1);
  if (!bumped) return std::nullopt;
  return *bumped & ~(alignment - 1);
}

static_assert(!checked_mul(std::uint64_t{1} << 32, std::uint64_t{1} << 32));
static_assert(checked_mul(0, 5) == 0u);
static_assert(!checked_add(std::numeric_limits<std::uint64_t>::max(), 1));
static_assert(align_up(33, 32) == 64u && align_up(64, 64) == 64u && !align_up(~std::uint64_t{0}, 32));

}  // namespace hmoe::io
