// hmoe-plan: which weights of a DeepSeek GGUF to put in a GPU memory budget (placement by compute intensity),
// and the router statistics that rank the routed experts, gathered by running the CPU model over a text.

#include <hmoe/hmoe.hpp>
#include <hmoe/model/expert_stats.hpp>
#include <hmoe/model/placement_plan.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>

#include "../common/args.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr const char* usage = R"(hmoe-plan: place a DeepSeek (deepseek2) GGUF in a GPU memory budget by compute intensity.

usage: hmoe-plan -m M.gguf --gpu-mem SIZE [--stats FILE]... [--ctx N] [--kv bf16|f32]
       hmoe-plan -m M.gguf --calibrate TEXT --stats-out FILE [-t N] [--tokens N] [--chunk N] [--experts KIND]

Plan: fills SIZE in this order, each item charged its bytes in the file: the KV cache for --ctx tokens,
attention with the norms and the routers (all mandatory: refused when they do not fit), the shared experts,
the dense layers' FFN, the output head, then routed experts one at a time, hottest first by the router
statistics. An item that does not fit stays in host RAM and the next one is tried. Without --stats no routed
expert is placed. The token embedding stays in host RAM. Prints the plan, with the share of routed-expert
traffic (by the statistics) the GPU copies would serve, and the flags that run those experts on the GPU in
hmoe-chat, hmoe-bench and hmoe-eval (--layout hybrid --gpu-experts-budget BYTES --expert-stats FILE; see
docs/placement.md). Nothing is allocated.

  -m, --model FILE    GGUF file; for split files give the -00001-of-0000N part
  --gpu-mem SIZE      GPU memory the plan may fill: bytes, or with K, M, G, T (binary: 24G = 24 GiB; KiB,
                      MB, ... accepted too, also binary), e.g. 24G, 1.5G, 800M. Leave room for the CUDA
                      context and activations: this is what the weights and the cache may use
  --stats FILE        router statistics (from --calibrate); repeat to merge several
  --ctx N             KV cache positions to reserve (default 4096)
  --kv F              KV cache values: bf16 (2 bytes) or f32 (4); default auto: bf16 where the GPU's paged
                      cache takes the shape (kv_lora_rank 512 + rope 64), else f32

Calibrate: runs the all-CPU model over TEXT's tokens (tokenizer from the GGUF, BOS first), in chunks of --chunk
tokens each starting with BOS and a fresh cache, counts per MoE layer and routed expert the tokens the router
sent there and their summed weight, and writes them (format: include/hmoe/model/expert_stats.hpp). With
--gpu-mem it also prints the plan these statistics give.

  --calibrate TEXT    text file to run
  --stats-out FILE    where to write the statistics
  --tokens N          run at most N tokens of the text (default: all of it)
  --chunk N           tokens per forward (default 512)
  -t, --threads N     worker threads (default: all hardware threads)
  --experts KIND      routed-expert kernels: reference, avx512, amx or auto (default: the fastest the CPU
                      allows); the routers are the same f32 code in each
  -h, --help          this text
)";

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "hmoe-plan: " << msg << "\n(run hmoe-plan --help for usage)\n";
  std::exit(2);
}

long long parse_count(const std::string& flag, const std::string& s) {
  return hmoe::examples::parse_count(flag, s, fail);
}

/// "24G", "1.5GiB", "800M", "123456" -> bytes (binary units).
std::uint64_t parse_size(const std::string& s) {
  if (const auto bytes = hmoe::parse_bytes(s)) return *bytes;
  fail("--gpu-mem: '" + s + "' is not a size (e.g. 24G, 1.5G, 800M, 123456)");
}

struct Options {
  std::string model_path, calibrate, stats_out, experts = "auto", kv = "auto";
  std::vector<std::string> stats;
  std::optional<std::uint64_t> gpu_mem;
  long long ctx = 4096, tokens = 0, chunk = 512;
  unsigned threads = 0;
};

int print_plan(const hmoe::gguf::File& file, const hmoe::DeepSeekHParams& h, const Options& o,
               const hmoe::ExpertStats* stats) {
  std::string kv = o.kv;
  if (kv == "auto") kv = h.kv_lora_rank == 512 && h.qk_rope == 64 ? "bf16" : "f32";
  if (kv != "bf16" && kv != "f32") fail("--kv takes bf16, f32 or auto, got '" + o.kv + "'");
  const auto plan = hmoe::plan_placement(file, h, *o.gpu_mem, stats, o.ctx, kv == "bf16" ? 2 : 4);
  std::cout << o.model_path << ": " << h.layers << " layers (" << h.dense_layers << " dense), " << h.experts
            << " routed experts (top-" << h.experts_used << ", " << h.shared_experts << " shared), KV cache " << kv
            << " for " << o.ctx << " tokens\n"
            << hmoe::format(plan);
  // The same experts in a running model: a budget of exactly their bytes picks them again (first fit, hottest
  // first), provided the hybrid layout's other groups are all on the GPU, as that layout keeps them.
  const bool groups_on_gpu = std::all_of(plan.groups.begin(), plan.groups.end(), [](const hmoe::PlanGroup& g) {
    return g.on_gpu || g.tensors == 0 || g.group == hmoe::TensorGroup::Embedding;
  });
  if (!plan.placed.empty() && groups_on_gpu) {
    std::cout << "run these experts on the GPU: hmoe-chat -m " << o.model_path << " --layout hybrid --gpu-experts-budget "
              << plan.routed_gpu_bytes();
    for (const auto& path : o.stats.empty() ? std::vector<std::string>{o.stats_out} : o.stats)
      std::cout << " --expert-stats " << path;
    std::cout << "\n";
  }
  return 0;
}

/// Runs the text through the model with the statistics observing; writes them; prints a summary.
template <class Model>
hmoe::ExpertStats calibrate(const Model& model, const Options& o, const std::string& desc) {
  const auto& h = model.hparams();
  const auto tok = hmoe::tokenizer::Tokenizer::from_gguf(model.file());
  std::ifstream in(o.calibrate, std::ios::binary);
  if (!in) fail("cannot read " + o.calibrate);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto body = tok.encode(text, /*parse_special=*/false);
  if (body.empty()) fail("--calibrate: " + o.calibrate + " has no tokens");
  const auto chunk = static_cast<std::size_t>(std::max(2LL, o.chunk));
  const std::size_t lead = tok.add_bos() ? 1 : 0, per_chunk = chunk - lead;
  auto want = body.size() + (body.size() + per_chunk - 1) / per_chunk * lead;  // all of it, BOS included
  if (o.tokens > 0) want = std::min<std::size_t>(want, static_cast<std::size_t>(o.tokens));

  hmoe::cpu::ThreadPool pool(o.threads);
  hmoe::ExpertStats stats(h);
  std::cerr << "calibrating on " << o.calibrate << ": " << want << " tokens in chunks of " << chunk << " (" << desc
            << ", " << pool.size() << " threads)\n";
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t done = 0, pos = 0;
  {
    hmoe::ObserveRouting observe(stats);
    while (done < want && pos < body.size()) {
      std::vector<std::int32_t> ids;
      if (lead) ids.push_back(tok.bos());
      const auto take = std::min({per_chunk, body.size() - pos, want - done - ids.size()});
      ids.insert(ids.end(), body.begin() + static_cast<std::ptrdiff_t>(pos), body.begin() + static_cast<std::ptrdiff_t>(pos + take));
      pos += take;
      auto cache = model.make_cache(static_cast<std::int64_t>(ids.size()));
      model.forward(pool, ids, cache, hmoe::Logits::Last);
      done += ids.size();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\r  %zu / %zu tokens, %.1f tok/s", done, want, static_cast<double>(done) / s);
    }
  }
  std::cerr << "\n";
  return stats;
}

/// Per MoE layer: the hottest experts and their share of the layer's traffic.
void summarize(const hmoe::ExpertStats& s) {
  std::printf("router statistics: %llu tokens per MoE layer, %lld routed experts per token\n",
              static_cast<unsigned long long>(s.layers() > s.dense_layers() ? s.tokens(static_cast<int>(s.dense_layers())) : 0),
              static_cast<long long>(s.per_token()));
  for (auto l = static_cast<int>(s.dense_layers()); l < s.layers(); ++l) {
    const auto order = s.hottest(l);
    const double total = static_cast<double>(std::max<std::uint64_t>(1, s.layer_count(l)));
    std::size_t used = 0;
    for (auto e : order) used += s.count(l, e) > 0;
    std::printf("  blk.%-3d %3zu of %lld experts used; hottest:", l, used, static_cast<long long>(s.experts()));
    for (std::size_t i = 0; i < std::min<std::size_t>(5, order.size()); ++i)
      std::printf(" %d (%.1f%%)", order[i], 100.0 * static_cast<double>(s.count(l, order[i])) / total);
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "-m" || a == "--model") o.model_path = value();
    else if (a == "--gpu-mem") o.gpu_mem = parse_size(value());
    else if (a == "--stats") o.stats.push_back(value());
    else if (a == "--ctx") o.ctx = parse_count(a, value());
    else if (a == "--kv") o.kv = value();
    else if (a == "--calibrate") o.calibrate = value();
    else if (a == "--stats-out") o.stats_out = value();
    else if (a == "--tokens") o.tokens = parse_count(a, value());
    else if (a == "--chunk") o.chunk = parse_count(a, value());
    else if (a == "-t" || a == "--threads") o.threads = static_cast<unsigned>(parse_count(a, value()));
    else if (a == "--experts") o.experts = value();
    else fail("unknown option '" + a + "'");
  }
  if (o.model_path.empty()) fail("--model is required");
  if (o.calibrate.empty() && !o.gpu_mem) fail("give --gpu-mem (plan) or --calibrate with --stats-out (statistics)");
  if (!o.calibrate.empty() && o.stats_out.empty()) fail("--calibrate needs --stats-out FILE");
  if (o.calibrate.empty() && !o.stats_out.empty()) fail("--stats-out goes with --calibrate");
  if (!o.calibrate.empty() && !o.stats.empty()) fail("--stats goes with a plan, not with --calibrate");
  if (o.experts == "auto") o.experts = hmoe::AMX::available() ? "amx" : hmoe::AVX512::available() ? "avx512" : "reference";
  if (o.experts != "reference" && o.experts != "avx512" && o.experts != "amx")
    fail("--experts takes reference, avx512, amx or auto, got '" + o.experts + "'");

  try {
    auto file = hmoe::gguf::File::open(o.model_path);
    const auto h = hmoe::read_hparams(file);
    if (o.calibrate.empty()) {
      std::optional<hmoe::ExpertStats> stats;
      for (const auto& path : o.stats) {
        auto s = hmoe::ExpertStats::load(path);
        s.require_matches(h, o.model_path);
        if (stats) stats->merge(s);
        else stats = std::move(s);
      }
      return print_plan(file, h, o, stats ? &*stats : nullptr);
    }

    hmoe::ExpertStats stats;
    const auto run = [&](const auto& model) { stats = calibrate(model, o, "experts " + o.experts); };
    if (o.experts == "reference") run(hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(o.model_path)));
    else if (o.experts == "avx512") run(hmoe::CpuModel<hmoe::AVX512>::load(hmoe::gguf::File::open(o.model_path)));
    else run(hmoe::CpuModel<hmoe::AMX>::load(hmoe::gguf::File::open(o.model_path)));
    const auto tokens = stats.layers() > stats.dense_layers() ? stats.tokens(static_cast<int>(stats.dense_layers())) : 0;
    stats.save(o.stats_out, "model " + std::filesystem::path(o.model_path).filename().string() + "\ntext " +
                                std::filesystem::path(o.calibrate).filename().string() + ", " + std::to_string(tokens) +
                                " tokens in chunks of " + std::to_string(o.chunk));
    std::cout << "wrote " << o.stats_out << "\n";
    summarize(stats);
    if (o.gpu_mem) return print_plan(file, h, o, &stats);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "hmoe-plan: " << e.what() << "\n";
    return 1;
  }
}
