/// \file
/// \brief The x86 intrinsics the AVX-512 and AMX kernels use, and the target attribute that lets a kernel
/// use them without compiling the whole program for that ISA.
///
/// Kernels are plain functions marked `HMOE_TARGET_AVX512` (or `HMOE_TARGET_AMX`); which one runs is decided
/// at load time by `Isa<...>::available()`, never by `-march`. A test build may define `HMOE_EMULATE_X86`:
/// SIMDe then stands in for the AVX-512 intrinsics and `cpu/amx/tiles.hpp` for the AMX ones, and the target
/// attributes go away, so the same kernel source runs (slowly) on a CPU without those instructions. That is
/// how CI, on a CPU without AVX-512, still checks the kernels' arithmetic.
#pragma once

#if !defined(__x86_64__)
#error "hmoe's AVX-512 and AMX kernels are x86-64 only"
#endif

// Parsed first, so that SIMDe's aliases below cannot rename its declarations.
#include <immintrin.h>

#if defined(HMOE_EMULATE_X86)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define HMOE_TARGET_AVX512
#define HMOE_TARGET_AMX
#else
// Attributes cannot come from a constexpr or a template, hence the macros.
#define HMOE_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,fma,f16c,bmi2")))
#define HMOE_TARGET_AMX \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,fma,f16c,bmi2,amx-tile,amx-int8,amx-bf16")))
#endif

namespace hmoe::cpu::x86 {
/// True when the kernels run on SIMDe and the tile emulator instead of the real instructions.
#if defined(HMOE_EMULATE_X86)
inline constexpr bool emulated = true;
#else
inline constexpr bool emulated = false;
#endif

/// Horizontal sums. SIMDe has no `_mm512_reduce_add_*`, so kernels use these instead.
HMOE_TARGET_AVX512 inline float hsum(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

HMOE_TARGET_AVX512 inline int hsum(__m512i v) {
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0x4E));
  q = _mm_add_epi32(q, _mm_shuffle_epi32(q, 0xB1));
  return _mm_cvtsi128_si32(q);
}
}  // namespace hmoe::cpu::x86
