/// \file
/// \brief skip_without<IsaTag>(): true (after saying why) where a native kernel test cannot run on this CPU.
#pragma once

#include <doctest/doctest.h>

#include <hmoe/cpu/x86/intrinsics.hpp>

namespace hmoe::test {

/// The _emulated build always runs (SIMDe and the tile emulator); a native build skips where the CPU lacks IsaTag.
template <class IsaTag>
bool skip_without() {
  if (cpu::x86::emulated || IsaTag::available()) return false;
  MESSAGE("skipped: this CPU has no " << IsaTag::name << " (the _emulated test runs the same kernels on SIMDe)");
  return true;
}

}  // namespace hmoe::test
