/// \file
/// \brief Small AVX-512 building blocks the kernels share, each with a stand-in for the SIMDe build where
/// SIMDe 0.7.4 lacks the intrinsic (int→float conversion, masked and zero-extending loads, F16C).
///
/// Native builds get the single instruction; `HMOE_EMULATE_X86` builds get plain C++ that computes the same
/// bits, so the kernels' arithmetic is still checked on a CPU without AVX-512.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "hmoe/cpu/x86/intrinsics.hpp"
#include "hmoe/quant/half.hpp"

// GCC 12's `_mm512_undefined_*` self-initialize, which -Wall's -Winit-self reports in every kernel that
// inlines an intrinsic built on them (GCC bug 105593, fixed in 12.3/13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hmoe::cpu::avx512::detail {

/// A scalar of type T at p, which may be unaligned (weights sit at any offset of a mapped file).
template <class T>
inline T load_scalar(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

/// f16 bits -> float, exact.
HMOE_TARGET_AVX512 inline float half_to_float(std::uint16_t h) {
#if defined(HMOE_EMULATE_X86)
  return quant::fp16_to_fp32(h);
#else
  return _cvtsh_ss(h);
#endif
}

/// 16 int32 lanes -> float, round to nearest even (what vcvtdq2ps does under the default MXCSR; exact below
/// 2^24). Shared with the AMX kernels (`amx::vec::to_float`).
HMOE_TARGET_AVX512 inline __m512 to_float(__m512i v) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) std::int32_t i[16];
  alignas(64) float f[16];
  _mm512_store_si512(i, v);
  for (int l = 0; l < 16; ++l) f[l] = static_cast<float>(i[l]);
  return _mm512_load_ps(f);
#else
  return _mm512_maskz_cvtepi32_ps(0xFFFF, v);  // the unmasked form trips GCC 12's -Wuninitialized in its header
#endif
}

/// 32 bytes at p in the low half, zeros above.
HMOE_TARGET_AVX512 inline __m512i load_zext256(const std::byte* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
#if defined(HMOE_EMULATE_X86)
  return _mm512_inserti64x4(_mm512_setzero_si512(), v, 0);
#else
  return _mm512_zextsi256_si512(v);
#endif
}

/// 32 bytes at p in both halves.
HMOE_TARGET_AVX512 inline __m512i load_broadcast256(const std::byte* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

HMOE_TARGET_AVX512 inline __m512i load512(const std::byte* p) { return _mm512_loadu_si512(p); }

/// 32 bf16 values at p.
HMOE_TARGET_AVX512 inline __m512bh load_bf16(const std::byte* p) {
  return std::bit_cast<__m512bh>(_mm512_loadu_si512(p));
}

/// The first n (< 32) bf16 values at p, zeros after; reads nothing past them.
HMOE_TARGET_AVX512 inline __m512bh load_bf16_partial(const std::byte* p, int n) {
#if defined(HMOE_EMULATE_X86)
  alignas(64) std::uint16_t v[32] = {};
  std::memcpy(v, p, static_cast<std::size_t>(n) * 2);
  return std::bit_cast<__m512bh>(_mm512_load_si512(v));
#else
  const __mmask32 m = _bzhi_u32(0xFFFFFFFFu, static_cast<unsigned>(n));
  return std::bit_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, p));
#endif
}

HMOE_TARGET_AVX512 inline float hsum(__m256 v) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

/// How far ahead of the block being read the weight stream is prefetched. Rows of one matrix are contiguous,
/// so running past a row's end prefetches the next row, which is what the caller reads next.
inline constexpr std::size_t prefetch_bytes = 1024;

/// Prefetches `prefetch_bytes` past p; the address may lie past the buffer (a prefetch never faults), so it
/// is formed as an integer rather than by pointer arithmetic.
inline void prefetch_ahead(const std::byte* p) {
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + prefetch_bytes), 0, 3);
}

}  // namespace hmoe::cpu::avx512::detail

#pragma GCC diagnostic pop
