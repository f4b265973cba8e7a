// Single-thread micro-benchmark of the AMX Q4_K kernels on one 2048 x 7168 PackedQ4K (a DeepSeek-V3 expert's
// gate/up shape): matmul_tiles at 16, 64, 256 tokens and matmul_vector at 1..8 tokens, in GOPS (2 ops per
// MAC) and GB/s of packed weights; then the token count from which tiles beat vector; then the tile kernel's
// ablation modes (each skips part of the work and computes WRONG numbers), in ns per job (one 16-row panel x
// one 256-value super-block x one 16-token block), to read off where the time goes.
//
//   amx_q4k_micro [--mode all|none|MODE] [--group N]
//     MODE: full no-mins no-products no-readout no-unpack products-only loads-only pack-only (default all)
//     N: token blocks per group in the ablations (0, the default: auto, as matmul_tiles)
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "hmoe/cpu/amx/matmul.hpp"
#include "hmoe/policy/isa.hpp"

namespace amx = hmoe::cpu::amx;
namespace quant = hmoe::quant;

namespace {

constexpr std::int64_t rows = 2048, cols = 7168;

template <class F>
double seconds_per_call(F&& f) {
  f();  // warm-up
  int n = 1;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.3) return s / n;
    n *= 2;
  }
}

}  // namespace

struct Mode {
  const char* name;
  const char* what;
  void (*fn)(const amx::PackedQ4K&, std::int64_t, std::int64_t, const std::byte*, std::size_t, std::int64_t, float*,
             std::int64_t, std::int64_t);
};

using amx::detail::Q4KMode;
const Mode modes[] = {
    {"full", "the kernel", amx::detail::matmul_tiles_mode<Q4KMode::full>},
    {"no-mins", "read-out without the mins term", amx::detail::matmul_tiles_mode<Q4KMode::no_mins>},
    {"no-products", "no TDPBSSD; loads, unpack, read-out kept", amx::detail::matmul_tiles_mode<Q4KMode::no_products>},
    {"no-readout", "no C tile stores, no f32 read-out", amx::detail::matmul_tiles_mode<Q4KMode::no_readout>},
    {"no-unpack", "B buffers never unpacked", amx::detail::matmul_tiles_mode<Q4KMode::no_unpack>},
    {"products-only", "act packing + tile loads + TDPBSSD", amx::detail::matmul_tiles_mode<Q4KMode::products_only>},
    {"loads-only", "act packing + tile loads", amx::detail::matmul_tiles_mode<Q4KMode::loads_only>},
    {"pack-only", "act packing only (per call)", amx::detail::matmul_tiles_mode<Q4KMode::pack_only>},
};

int main(int argc, char** argv) {
  const char* want = "all";
  long long group = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
      want = argv[++i];
    } else if (std::strcmp(argv[i], "--group") == 0 && i + 1 < argc) {
      group = std::atoll(argv[++i]);
    } else {
      std::printf("usage: %s [--mode all|none|full|no-mins|no-products|no-readout|no-unpack|products-only|"
                  "loads-only|pack-only] [--group N]\n",
                  argv[0]);
      return 2;
    }
  }
  if (!hmoe::cpu::x86::emulated && !hmoe::AMX::available()) {
    std::printf("no AMX on this CPU: nothing to measure\n");
    return 0;
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(1e-3f, 1e-1f), u(-1.0f, 1.0f);
  const std::int64_t nb = cols / 256;
  std::vector<std::byte> bytes(static_cast<std::size_t>(rows * nb) * sizeof(quant::BlockQ4_K));
  for (std::int64_t i = 0; i < rows * nb; ++i) {
    quant::BlockQ4_K b;
    for (auto& s : b.scales) s = static_cast<std::uint8_t>(byte(rng));
    for (auto& q : b.qs) q = static_cast<std::uint8_t>(byte(rng));
    b.d = quant::fp32_to_fp16(mag(rng));
    b.dmin = quant::fp32_to_fp16(mag(rng));
    std::memcpy(bytes.data() + i * sizeof b, &b, sizeof b);
  }
  const hmoe::WeightMatrix view{"micro.q4k", hmoe::GgmlType::Q4_K, rows, cols, bytes.data(),
                                static_cast<std::size_t>(nb) * sizeof(quant::BlockQ4_K)};
  const amx::PackedQ4K w = amx::PackedQ4K::pack(view);
  // One Q4KPanelBlock per 16-row panel and super-block (not per row).
  const double weight_bytes = static_cast<double>(amx::panel_count(rows) * nb) * sizeof(amx::Q4KPanelBlock);

  const std::int64_t max_tokens = 256;
  const std::size_t arb = amx::activation_row_bytes(w);
  std::vector<std::byte> act(arb * max_tokens);
  std::vector<float> x(cols), y(static_cast<std::size_t>(max_tokens * rows));
  for (std::int64_t t = 0; t < max_tokens; ++t) {
    for (auto& v : x) v = u(rng);
    amx::quantize_activation_row(w, x.data(), act.data() + t * arb);
  }

  std::printf("PackedQ4K %lld x %lld, %.1f MB packed, 1 thread\n", static_cast<long long>(rows),
              static_cast<long long>(cols), weight_bytes / 1e6);
  auto report = [&](const char* kernel, std::int64_t tokens, double s) {
    const double ops = 2.0 * static_cast<double>(rows * cols * tokens);
    std::printf("  %-7s %4lld tokens: %9.3f ms  %8.1f GOPS  %7.2f GB/s\n", kernel, static_cast<long long>(tokens),
                s * 1e3, ops / s / 1e9, weight_bytes / s / 1e9);
    return s;
  };
  auto tiles = [&](std::int64_t t) {
    return seconds_per_call([&] { amx::matmul_tiles(w, 0, rows, act.data(), arb, t, y.data(), rows); });
  };
  auto vector = [&](std::int64_t t) {
    return seconds_per_call([&] { amx::matmul_vector(w, 0, rows, act.data(), arb, t, y.data(), rows); });
  };
  for (std::int64_t t : {16, 64, 256}) report("tiles", t, tiles(t));
  std::int64_t crossover = 0;
  for (std::int64_t t = 1; t <= 8; ++t) {
    const double sv = report("vector", t, vector(t));
    const double st = report("tiles", t, tiles(t));
    if (crossover == 0 && st < sv) crossover = t;
  }
  if (crossover) std::printf("tiles beat vector from %lld tokens\n", static_cast<long long>(crossover));
  else std::printf("vector beats tiles up to 8 tokens\n");

  if (std::strcmp(want, "none") == 0) return 0;
  std::printf("\nablations of matmul_tiles (all but 'full' compute WRONG numbers); ns per job = one 16-row panel\n"
              "x one super-block x one 16-token block (floor: 8 TDPBSSD at the tile peak); token blocks in groups\n"
              "of %lld (0: auto, ~1 MiB of packed activations, as matmul_tiles)\n",
              group);
  bool any = false;
  for (const Mode& m : modes) {
    if (std::strcmp(want, "all") != 0 && std::strcmp(want, m.name) != 0) continue;
    any = true;
    for (std::int64_t t : {1, 16, 64, 256}) {
      const double s = seconds_per_call([&] { m.fn(w, 0, rows, act.data(), arb, t, y.data(), rows, group); });
      const double jobs = static_cast<double>(amx::panel_count(rows) * nb * ((t + 15) / 16));
      std::printf("  %-13s %4lld tokens: %9.3f ms  %7.1f ns/job  (%s)\n", m.name, static_cast<long long>(t), s * 1e3,
                  s * 1e9 / jobs, m.what);
    }
  }
  if (!any) {
    std::printf("unknown mode %s\n", want);
    return 2;
  }
  return 0;
}
