/// \file
/// \brief `matmul`: the entry point of the packed expert formats; AMX tiles for many tokens, AVX-512 on the
/// same packed weights below `crossover_tokens`.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/amx/bf16_kernels.hpp"
#include "hmoe/cpu/amx/int8_kernels.hpp"
#include "hmoe/cpu/amx/q5_kernels.hpp"
#include "hmoe/cpu/amx/q8_kernels.hpp"
#include "hmoe/cpu/amx/q4k_kernels.hpp"

namespace hmoe::cpu::amx {

/// A weight matrix packed for these kernels.
template <class P>
concept packed_matrix = requires(const P& p, const WeightMatrix& w, const float* x, std::byte* out) {
  { P::pack(w) } -> std::same_as<P>;
  { p.rows() } -> std::same_as<std::int64_t>;
  { p.cols() } -> std::same_as<std::int64_t>;
  { activation_row_bytes(p) } -> std::same_as<std::size_t>;
  quantize_activation_row(p, x, out);
};

static_assert(packed_matrix<PackedQ4K> && packed_matrix<PackedInt8> && packed_matrix<PackedBF16> &&
              packed_matrix<PackedQ8Blocks> && packed_matrix<PackedQ5Blocks>);

/// Token count from which the tile kernels are used. Placeholders until measured on the target box: a
/// 16-token tile is cheap for int8 and bf16, while Q4_K's per-sub-block read-out of C tiles costs more.
constexpr std::int64_t crossover_tokens(const PackedQ4K&) { return 8; }
constexpr std::int64_t crossover_tokens(const PackedInt8&) { return 4; }
constexpr std::int64_t crossover_tokens(const PackedBF16&) { return 4; }
constexpr std::int64_t crossover_tokens(const PackedQ8Blocks&) { return 8; }
constexpr std::int64_t crossover_tokens(const PackedQ5Blocks&) { return 8; }

/// y[t * ldy + r] = row r . token t for r in [row_begin, row_end), t < tokens; other entries untouched.
template <packed_matrix P>
void matmul(const P& w, std::int64_t row_begin, std::int64_t row_end, const std::byte* act,
            std::size_t act_row_bytes, std::int64_t tokens, float* y, std::int64_t ldy) {
  if (tokens < crossover_tokens(w)) {
    matmul_vector(w, row_begin, row_end, act, act_row_bytes, tokens, y, ldy);
  } else {
    matmul_tiles(w, row_begin, row_end, act, act_row_bytes, tokens, y, ldy);
  }
}

}  // namespace hmoe::cpu::amx
