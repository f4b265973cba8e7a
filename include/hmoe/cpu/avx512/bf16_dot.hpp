/// \file
/// \brief Dot products of BF16 weight rows with up to NT BF16 activation rows, AVX-512 BF16 (`dpbf16_ps`).
///
/// `dpbf16_ps` multiplies bf16 pairs exactly into f32 and adds them to 16 f32 lanes, which is ggml's
/// semantics (bf16 × bf16 summed in f32) up to summation order. Any k: the last k % 32 values are read with a
/// masked load. The instruction needs AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later), which
/// `AVX512::available()` requires.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hmoe/cpu/avx512/shims.hpp"
#include "hmoe/policy/isa.hpp"

// GCC 12's `_mm512_undefined_*` self-initialize, which -Wall's -Winit-self reports in every kernel that
// inlines an intrinsic built on them (GCC bug 105593, fixed in 12.3/13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hmoe::cpu::avx512 {

/// Whether this CPU has AVX512_BF16 (always true in the SIMDe build). `AVX512::available()` requires it, so
/// this is that check, kept for callers that ask about BF16 by name.
inline bool bf16_available() {
  if constexpr (x86::emulated) return true;
  static const bool has = AVX512::available();
  return has;
}

}  // namespace hmoe::cpu::avx512

namespace hmoe::cpu::avx512::detail {

/// y[t * ldy] = row · activation row t, for t < NT; k values per row.
template <int NT>
HMOE_TARGET_AVX512 void bf16_row(const std::byte* w, std::int64_t k, const std::byte* act, std::size_t act_row_bytes,
                                 float* y, std::int64_t ldy) {
  __m512 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();

  const std::int64_t whole = k / 32 * 32;
  for (std::int64_t i = 0; i < whole; i += 32) {
    prefetch_ahead(w + 2 * i);
    const __m512bh wv = load_bf16(w + 2 * i);
    const std::byte* a = act + 2 * i;
    for (int t = 0; t < NT; ++t, a += act_row_bytes) acc[t] = _mm512_dpbf16_ps(acc[t], wv, load_bf16(a));
  }
  if (const int rest = static_cast<int>(k - whole); rest > 0) {
    const __m512bh wv = load_bf16_partial(w + 2 * whole, rest);
    const std::byte* a = act + 2 * whole;
    for (int t = 0; t < NT; ++t, a += act_row_bytes)
      acc[t] = _mm512_dpbf16_ps(acc[t], wv, load_bf16_partial(a, rest));
  }
  for (int t = 0; t < NT; ++t) y[t * ldy] = x86::hsum(acc[t]);
}

}  // namespace hmoe::cpu::avx512::detail

#pragma GCC diagnostic pop
