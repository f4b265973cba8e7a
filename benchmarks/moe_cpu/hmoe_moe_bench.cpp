// hmoe's side of the MoE-layer CPU benchmark: one layer of routed experts in DeepSeek-V3 or V2-Lite shape with
// random Q4_K weights, through cpu::FusedExperts (the code Experts<Isa<AVX512|AMX>> runs), timed for decode (one
// token; the harness rotates layer copies and routed tokens so the experts come from RAM, not cache) and prefill.
//
// Prints one JSON line per measurement (the contract of benchmarks/moe_cpu/report.py):
//   {"impl": "hmoe-amx", "shape": "V3", "tokens": 512, "seconds": ..., "sd": ..., "reps": ..., "bytes": ..., "flops": ...}
#include <hmoe/cpu/fused_experts.hpp>

#include "moe_common.hpp"
#include <hmoe/quant/half.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <optional>
#include <array>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace hmoe;
namespace mb = moe_bench;

namespace {

GgmlType ggml_type(mb::QType t) { return t == mb::QType::Q4_K ? GgmlType::Q4_K : GgmlType::Q5_0; }

/// One layer's routed-expert weights, random but valid (moe_common.hpp's generator, as the peers use).
struct Layer {
  std::vector<std::uint8_t> gate, up, down;
};

Layer make_layer(const mb::Shape& s, int copy, int threads) {
  Layer l;
  const auto gi = s.gate_up_type(), di = s.down_type();
  l.gate.resize(s.experts * s.gate_bytes());
  l.up.resize(l.gate.size());
  l.down.resize(s.experts * s.down_bytes());
  mb::fill_quant(l.gate.data(), l.gate.size() / mb::block_bytes(gi), gi, 100 * copy + 1, threads);
  mb::fill_quant(l.up.data(), l.up.size() / mb::block_bytes(gi), gi, 100 * copy + 2, threads);
  mb::fill_quant(l.down.data(), l.down.size() / mb::block_bytes(di), di, 100 * copy + 3, threads);
  return l;
}

template <class IsaTag>
cpu::FusedExperts bind(cpu::ThreadPool& pool, const Layer& l, const mb::Shape& s) {
  const auto in_row = s.gate_bytes() / static_cast<std::size_t>(s.ffn);
  const auto ffn_row = s.down_bytes() / static_cast<std::size_t>(s.hidden);
  const auto gi = ggml_type(s.gate_up_type()), di = ggml_type(s.down_type());
  const auto* gate = reinterpret_cast<const std::byte*>(l.gate.data());
  const auto* up = reinterpret_cast<const std::byte*>(l.up.data());
  const auto* down = reinterpret_cast<const std::byte*>(l.down.data());
  // Packing for AMX touches every weight once: done by all threads, experts split between them.
  std::vector<std::optional<cpu::ExpertMatrix>> g(static_cast<std::size_t>(s.experts)), u(g.size()), d(g.size());
  pool.parallel_for(s.experts, [&](std::int64_t e0, std::int64_t e1) {
    for (auto e = e0; e < e1; ++e) {
      const auto name = "expert " + std::to_string(e);
      const auto i = static_cast<std::size_t>(e);
      g[i].emplace(cpu::bind_expert_matrix<IsaTag, Stored>(
          {name + " gate", gi, s.ffn, s.hidden, gate + i * s.gate_bytes(), in_row}));
      u[i].emplace(cpu::bind_expert_matrix<IsaTag, Stored>(
          {name + " up", gi, s.ffn, s.hidden, up + i * s.gate_bytes(), in_row}));
      d[i].emplace(cpu::bind_expert_matrix<IsaTag, Stored>(
          {name + " down", di, s.hidden, s.ffn, down + i * s.down_bytes(), ffn_row}));
    }
  });
  cpu::ExpertSet set{s.hidden, s.ffn, {}, {}, {}};
  for (std::size_t e = 0; e < g.size(); ++e) {
    set.gate.push_back(std::move(*g[e]));
    set.up.push_back(std::move(*u[e]));
    set.down.push_back(std::move(*d[e]));
  }
  return cpu::FusedExperts(std::move(set));
}

/// Times one implementation on one shape, with the harness's protocol: decode rotates over layer copies and
/// over kDecodeStream routed tokens (so the weights come from RAM), prefill runs tokens [0, T) through copy 0.
void run_shape(const std::string& impl, std::vector<cpu::FusedExperts>& layers, cpu::ThreadPool& pool,
               const mb::Shape& s, const std::vector<int>& token_counts, bool quick) {
  for (const int tokens : token_counts) {
    const auto r = mb::route(s, tokens == 1 ? mb::kDecodeStream : tokens);
    const int passes = tokens == 1 ? static_cast<int>(layers.size()) : 1;
    std::vector<float> x(static_cast<std::size_t>(tokens) * s.hidden), out(x.size());
    mb::fill_activations(x.data(), x.size(), 7);
    std::size_t i = 0;
    auto pass = [&] {
      const auto& moe = layers[i % static_cast<std::size_t>(passes)];
      const auto first = tokens == 1 ? static_cast<std::size_t>(i % mb::kDecodeStream) * s.top_k : 0;
      moe.forward(pool, x.data(), tokens, r.ids.data() + first, r.weights.data() + first, s.top_k, out.data());
      ++i;
    };
    const auto rp = mb::rep_policy(tokens, quick);
    for (auto& l : layers) l.reset_phase_seconds();
    const auto st = mb::time_it(pass, rp.budget_s, rp.min_reps, rp.max_reps, std::max(rp.warmup, passes + 1));
    // Mean milliseconds per call in each phase of FusedExperts::forward (warm-up calls included).
    std::array<double, 5> phase{};
    for (const auto& l : layers)
      for (std::size_t p = 0; p < phase.size(); ++p) phase[p] += l.phase_seconds()[p];
    std::string phases = "[";
    for (std::size_t p = 0; p < phase.size(); ++p)
      phases += (p ? ", " : "") + std::to_string(phase[p] * 1e3 / static_cast<double>(i));
    phases += "]";
    double sum = 0;
    std::size_t bad = 0;
    for (float v : out) std::isfinite(v) ? (void)(sum += std::fabs(v)) : (void)++bad;
    if (bad) std::fprintf(stderr, "%s: WARNING %zu non-finite outputs\n", impl.c_str(), bad);
    const double bytes = tokens == 1 ? mb::decode_bytes(s) : mb::weight_bytes(s, r);
    mb::print_result(impl, s, tokens, st, bytes,
                     "\"kernels\": \"" + layers[0].matrices().gate[0].kernel_name() + " / " +
                         layers[0].matrices().down[0].kernel_name() + "\", \"layers\": " + std::to_string(passes) +
                         ", \"phases_ms\": " + phases);
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: hmoe_moe_bench [--shape V3|V2-Lite|all] [--isa amx|avx512|all] [--tokens 1,128,512,2048]\n"
               "                      [--threads N] [--pin] [--spin] [--quick]\n"
               "One MoE layer of routed experts (random Q4_K weights; V2-Lite's 1408-wide down rows Q5_0, as\n"
               "llama.cpp's quantizer makes them) through hmoe's fused CPU experts; JSON lines on stdout.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "all", isa = "all", token_list = "1,128,512,2048";
  int threads = mb::hw_threads();
  bool quick = false, pin = false, spin = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--shape") shape = value();
    else if (a == "--isa") isa = value();
    else if (a == "--tokens") token_list = value();
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--quick") quick = true;
    else if (a == "--pin") pin = true;
    else if (a == "--spin") spin = true;
    else return usage();
  }
  std::vector<int> token_counts;
  for (std::size_t p = 0; p < token_list.size();) {
    const auto q = token_list.find(',', p);
    token_counts.push_back(std::stoi(token_list.substr(p, q - p)));
    p = q == std::string::npos ? token_list.size() : q + 1;
  }
  cpu::ThreadPool pool(static_cast<unsigned>(threads), pin ? cpu::Pin::Cores : cpu::Pin::None,
                       spin ? cpu::Wait::Spin : cpu::Wait::Block);
  for (const auto* s : {&mb::kV2Lite, &mb::kV3}) {
    if (shape != "all" && shape != s->name) continue;
    const bool decode = std::find(token_counts.begin(), token_counts.end(), 1) != token_counts.end();
    const int copies = decode ? mb::decode_layers(*s) : 1;
    const auto t0 = mb::now_s();
    std::vector<Layer> weights;
    for (int c = 0; c < copies; ++c) weights.push_back(make_layer(*s, c, threads));
    std::fprintf(stderr, "hmoe: %s: %d layer cop%s made in %.1f s\n", s->name, copies, copies == 1 ? "y" : "ies",
                 mb::now_s() - t0);
    for (const std::string which : {"avx512", "amx"}) {
      if (isa != "all" && isa != which) continue;
      if (which == "amx" ? !AMX::available() : !AVX512::available()) {
        std::fprintf(stderr, "hmoe-%s: skipped, this CPU (or its kernel) does not offer it\n", which.c_str());
        continue;
      }
      const auto t1 = mb::now_s();
      std::vector<cpu::FusedExperts> layers;
      for (const auto& w : weights) layers.push_back(which == "amx" ? bind<AMX>(pool, w, *s) : bind<AVX512>(pool, w, *s));
      std::fprintf(stderr, "hmoe-%s: %s bound in %.1f s\n", which.c_str(), s->name, mb::now_s() - t1);
      run_shape("hmoe-" + which + (pin ? "-pin" : "") + (spin ? "-spin" : ""), layers, pool, *s, token_counts, quick);
    }
  }
}
