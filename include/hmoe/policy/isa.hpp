/// \file
/// \brief `Isa<Generic|AVX512|AMX>`: which CPU kernels a CPU-placed layer uses.
///
/// The tags inherit (`AMX : AVX512 : Generic`) so a kernel written for a base ISA serves the richer ones.
/// `supported` says whether this compiler can emit the instructions; `available()` asks the running CPU
/// (cpuid, and on Linux the kernel's permission to use AMX tile state), so a layout that cannot run here
/// is refused at start-up with a clear message instead of dying on an illegal instruction.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "hmoe/quant/ggml_type.hpp"
#include "hmoe/policy/quant.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace hmoe {

namespace detail {

struct CpuidRegs { std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0; };

inline CpuidRegs cpuid(std::uint32_t leaf, std::uint32_t subleaf) {
  CpuidRegs r;
#if defined(__x86_64__)
  if (static_cast<std::uint32_t>(__get_cpuid_max(leaf & 0x80000000u, nullptr)) < leaf) return r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#else
  (void)leaf, (void)subleaf;
#endif
  return r;
}

/// XCR0 says which register state the OS saves; AVX-512 needs opmask + ZMM state enabled.
inline std::uint64_t xgetbv0() {
#if defined(__x86_64__)
  if (!(cpuid(1, 0).ecx & (1u << 27))) return 0;  // no OSXSAVE
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
#else
  return 0;
#endif
}

/// F, BW, VL, VNNI and BF16 (the kernels' target attribute names all of them; the BF16 kernel needs
/// `vdpbf16ps`), with the OS saving ZMM state.
inline bool cpu_has_avx512() {
  const auto l7 = cpuid(7, 0);
  const bool f = l7.ebx & (1u << 16), bw = l7.ebx & (1u << 30), vl = l7.ebx & (1u << 31);
  const bool vnni = l7.ecx & (1u << 11);
  const bool bf16 = l7.eax >= 1 && (cpuid(7, 1).eax & (1u << 5));  // AVX512_BF16: leaf 7 subleaf 1
  constexpr std::uint64_t zmm_state = 0xE6;  // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
  return f && bw && vl && vnni && bf16 && (xgetbv0() & zmm_state) == zmm_state;
}

inline bool cpu_has_amx() {
  const auto l7 = cpuid(7, 0);
  const bool tile = l7.edx & (1u << 24), int8 = l7.edx & (1u << 25), bf16 = l7.edx & (1u << 22);
  if (!(tile && int8 && bf16 && cpu_has_avx512())) return false;
#if defined(__linux__) && defined(__x86_64__)
  // Linux hands out the 8 KiB tile-data state only on request (ARCH_REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18).
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
  return false;
#endif
}

}  // namespace detail

/// Portable C++: every format, no special instructions. The reference path.
struct Generic {
  static constexpr std::string_view name = "Generic";
  static constexpr bool supported = true;
  static bool available() { return true; }
  template <class F> static constexpr bool runs = quant_format<F>;
};

/// AVX-512 F/BW/VL with VNNI and BF16 for ggml block formats: Cooper Lake, Sapphire Rapids and later Intel
/// parts, Zen 4 and later. `available()` is false on parts without AVX512_BF16 (Skylake-X, Cascade Lake, Ice
/// Lake), since every kernel is compiled for it.
struct AVX512 : Generic {
  static constexpr std::string_view name = "AVX512";
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static constexpr bool supported = true;  // kernels use target attributes, so no -mavx512f is needed
#else
  static constexpr bool supported = false;
#endif
  static bool available() { return supported && detail::cpu_has_avx512(); }
  /// `Stored`: each tensor in the format the file stores, if it is one of the others here (a load error names
  /// any tensor that is not).
  template <class F>
  static constexpr bool runs = std::same_as<F, Stored> || std::same_as<F, Q4_K> || std::same_as<F, Q5_K> ||
                               std::same_as<F, Q6_K> || std::same_as<F, Q5_0> || std::same_as<F, Q8_0> ||
                               std::same_as<F, BF16> || std::same_as<F, Int8>;
};

/// Intel AMX tiles (INT8 and BF16), with AVX-512 for what tiles do not cover.
struct AMX : AVX512 {
  static constexpr std::string_view name = "AMX";
  static bool available() { return supported && detail::cpu_has_amx(); }
  /// `Stored`: Q4_K, Q8_0, Q5_0 and BF16 tensors on tiles, the other stored formats on the AVX-512 kernels.
  template <class F>
  static constexpr bool runs = std::same_as<F, Stored> || std::same_as<F, Int8> || std::same_as<F, BF16> ||
                               std::same_as<F, Q4_K>;
};

template <class T>
concept isa_tag = std::derived_from<T, Generic>;

template <isa_tag Tag>
struct Isa {
  using isa = Tag;
};

namespace detail {
template <class T> inline constexpr bool is_isa = false;
template <class I> inline constexpr bool is_isa<Isa<I>> = true;
}  // namespace detail

template <class T>
concept isa_policy = detail::is_isa<T>;

}  // namespace hmoe
