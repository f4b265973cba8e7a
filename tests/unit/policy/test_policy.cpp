// Policies: unordered, defaulted, carrying their capabilities; ISA availability from the running CPU.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <hmoe/hmoe.hpp>
#include <fstream>
#include <string>

using namespace hmoe;

// Order does not matter, and what is not named takes its default.
static_assert(std::same_as<LayerPolicies<Quant<Q4_K>, Placement<CPU>, Isa<AMX>>::format, Q4_K>);
static_assert(std::same_as<LayerPolicies<Isa<AMX>, Quant<Q4_K>, Placement<CPU>>::isa, AMX>);
static_assert(std::same_as<LayerPolicies<Isa<AMX>, Quant<Q4_K>>::device, CPU>);
static_assert(std::same_as<LayerPolicies<>::format, Stored>);
static_assert(std::same_as<LayerPolicies<>::isa, Generic>);
static_assert(std::same_as<LayerPolicies<Placement<GPU>>::device, GPU>);
static_assert(std::derived_from<AMX, AVX512> && std::derived_from<AVX512, Generic>);
static_assert(AMX::runs<Q4_K> && !AMX::runs<Q6_K> && AVX512::runs<Q6_K>);
static_assert(Q6_K::block_bytes == 210 && Q8_0::block_bytes == 34 && std::same_as<Q8_0::activation, Q8_0>);
static_assert(*Q4_K::ggml == GgmlType::Q4_K && !Int8::ggml.has_value());
static_assert(placement_policy<Placement<GPU>> && !placement_policy<GPU> && quant_policy<Quant<BF16>> &&
              isa_policy<Isa<Generic>> && !isa_policy<Quant<BF16>>);

namespace {
// The CPU's own word, from /proc/cpuinfo, to check the cpuid reading against.
bool cpuinfo_has(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}
}  // namespace

TEST_CASE("ISA availability agrees with /proc/cpuinfo") {
  const bool avx512 = cpuinfo_has("avx512f") && cpuinfo_has("avx512bw") && cpuinfo_has("avx512vl") &&
                      cpuinfo_has("avx512_vnni");
  const bool amx = avx512 && cpuinfo_has("amx_tile") && cpuinfo_has("amx_int8") && cpuinfo_has("amx_bf16");
  MESSAGE("this CPU: AVX512 " << (AVX512::available() ? "available" : "not available") << ", AMX "
                              << (AMX::available() ? "available" : "not available"));
  CHECK(Generic::available());
  CHECK(AVX512::available() == avx512);
  CHECK(AMX::available() == amx);
}

TEST_CASE("a layout whose ISA this CPU lacks is refused at start-up with a message") {
  using AmxLayer = LayerPolicies<Placement<CPU>, Quant<Q4_K>, Isa<AMX>>;
  if (AMX::available()) {
    CHECK_NOTHROW(AmxLayer::require_available("Experts"));
  } else {
    try {
      AmxLayer::require_available("Experts");
      FAIL("no error on a CPU without AMX");
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      CHECK(m.find("Experts is built with Isa<AMX>, which this CPU does not offer") != std::string::npos);
    }
  }
  CHECK_NOTHROW(LayerPolicies<>::require_available("Mlp"));
}
