/// \file
/// \brief The AVX-512 quantized matrix product: y = W · actᵀ for a range of W's rows and a few tokens
/// (GEMV for decode, small-batch GEMM for prefill), with the activation formats ggml pairs with each weight
/// format.
///
/// Weights stay as the file stores them (ggml rows of Q4_K, Q5_K, Q6_K, Q5_0, Q8_0 or BF16); activations are
/// quantized once per token to Q8_K (K-quants), Q8_0 (Q5_0, Q8_0) or BF16. Results equal ggml's vec_dot for
/// the pair up to float summation order. Each weight block is read and unpacked once per `max_tokens_per_pass`
/// tokens. Single-threaded: callers split rows over threads. No allocation, no per-block dispatch.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hmoe/cpu/avx512/bf16_dot.hpp"
#include "hmoe/cpu/avx512/k_quant_dot.hpp"
#include "hmoe/cpu/avx512/q5_0_dot.hpp"
#include "hmoe/cpu/avx512/q8_0_dot.hpp"
#include "hmoe/cpu/avx512/quantize.hpp"
#include "hmoe/policy/quant.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/quantize.hpp"

namespace hmoe::cpu::avx512 {

/// The weight formats these kernels take.
template <class F>
concept avx512_format =
    std::same_as<F, Q4_K> || std::same_as<F, Q5_K> || std::same_as<F, Q6_K> || std::same_as<F, Q5_0> ||
    std::same_as<F, Q8_0> || std::same_as<F, BF16>;

/// Tokens that share one unpacking of a weight block; more would spill the accumulators out of registers.
inline constexpr int max_tokens_per_pass = 8;

/// Whether F's activations are Q8_0 rows (the 32-value formats), else Q8_K (K-quants) or BF16.
template <avx512_format F>
inline constexpr bool q8_0_activation = std::same_as<F, Q5_0> || std::same_as<F, Q8_0>;

/// Values per weight and activation block: k must be a multiple (BF16 takes any k).
template <avx512_format F>
inline constexpr std::int64_t block_values = std::same_as<F, BF16> ? 1 : F::block_elems;

/// Bytes of one activation row of k values for weight format F.
template <avx512_format F>
constexpr std::size_t activation_row_bytes(std::int64_t k) {
  if constexpr (std::same_as<F, BF16>) return static_cast<std::size_t>(k) * 2;
  else if constexpr (q8_0_activation<F>) return static_cast<std::size_t>(k / 32) * sizeof(quant::BlockQ8_0);
  else return static_cast<std::size_t>(k / quant::qk_k) * sizeof(quant::BlockQ8_K);
}

namespace detail {
inline void check_k(std::int64_t k, std::int64_t block, const char* who) {
  if (k < 0 || k % block != 0)
    throw std::invalid_argument(std::string(who) + ": k = " + std::to_string(k) + " is not a multiple of " +
                                std::to_string(block));
}
}  // namespace detail

/// Quantizes one f32 row of k values to F's activation format at `out` (any alignment). Q8_K and Q8_0 rows
/// are bit-identical to quant::quantize_row_q8_K / quantize_row_q8_0 (vectorized: avx512/quantize.hpp), BF16
/// to quant::fp32_to_bf16.
template <avx512_format F>
void quantize_activation_row(const float* x, std::int64_t k, std::byte* out) {
  detail::check_k(k, block_values<F>, "hmoe::cpu::avx512::quantize_activation_row");
  if constexpr (std::same_as<F, BF16>) {
    for (std::int64_t i = 0; i < k; ++i) {
      const std::uint16_t h = quant::fp32_to_bf16(x[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
  } else {
    quantize_row<std::conditional_t<q8_0_activation<F>, quant::BlockQ8_0, quant::BlockQ8_K>>(x, k, out);
  }
}

namespace detail {
/// One weight row against NT activation rows.
template <avx512_format F, int NT>
HMOE_TARGET_AVX512 inline void row_times_tokens(const std::byte* w, std::int64_t k, const std::byte* act,
                                                std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  if constexpr (std::same_as<F, Q4_K>) q45_k_row<NT, false>(w, k / quant::qk_k, act, act_row_bytes, y, ldy);
  else if constexpr (std::same_as<F, Q5_K>) q45_k_row<NT, true>(w, k / quant::qk_k, act, act_row_bytes, y, ldy);
  else if constexpr (std::same_as<F, Q6_K>) q6_k_row<NT>(w, k / quant::qk_k, act, act_row_bytes, y, ldy);
  else if constexpr (std::same_as<F, Q5_0>) q5_0_row<NT>(w, k / 32, act, act_row_bytes, y, ldy);
  else if constexpr (std::same_as<F, Q8_0>) q8_0_row<NT>(w, k / 32, act, act_row_bytes, y, ldy);
  else bf16_row<NT>(w, k, act, act_row_bytes, y, ldy);
}

/// row_times_tokens<F, nt> for a run-time nt in [1, NT]: one compare per row and pass, not per block.
template <avx512_format F, int NT = max_tokens_per_pass>
HMOE_TARGET_AVX512 inline void tokens_pass(int nt, const std::byte* w, std::int64_t k, const std::byte* act,
                                           std::size_t act_row_bytes, float* y, std::int64_t ldy) {
  if constexpr (NT > 1) {
    if (nt < NT) return tokens_pass<F, NT - 1>(nt, w, k, act, act_row_bytes, y, ldy);
  }
  row_times_tokens<F, NT>(w, k, act, act_row_bytes, y, ldy);
}
}  // namespace detail

/// y[t * ldy + r] = dot(weight row r, activation row t) for r in [row_begin, row_end), t in [0, tokens).
/// w: ggml rows of format F, w_row_bytes apart, k values each; act: `tokens` rows from
/// quantize_activation_row<F>, act_row_bytes apart. Writes only those y entries.
/// Needs `AVX512::available()` (which includes AVX512_BF16); BF16 checks it and otherwise throws
/// std::runtime_error.
template <avx512_format F>
HMOE_TARGET_AVX512 void matmul(const std::byte* w, std::size_t w_row_bytes, std::int64_t k, std::int64_t row_begin,
                               std::int64_t row_end, const std::byte* act, std::size_t act_row_bytes,
                               std::int64_t tokens, float* y, std::int64_t ldy) {
  detail::check_k(k, block_values<F>, "hmoe::cpu::avx512::matmul");
  if constexpr (std::same_as<F, BF16>) {
    if (!bf16_available()) throw std::runtime_error("hmoe::cpu::avx512::matmul<BF16>: this CPU lacks AVX512_BF16");
  }
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    const std::byte* wr = w + r * static_cast<std::int64_t>(w_row_bytes);
    for (std::int64_t t0 = 0; t0 < tokens; t0 += max_tokens_per_pass) {
      const std::byte* a = act + t0 * static_cast<std::int64_t>(act_row_bytes);
      float* yr = y + t0 * ldy + r;
      detail::tokens_pass<F>(static_cast<int>(std::min<std::int64_t>(tokens - t0, max_tokens_per_pass)), wr, k, a,
                             act_row_bytes, yr, ldy);
    }
  }
}

}  // namespace hmoe::cpu::avx512
