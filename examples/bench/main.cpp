// hmoe-bench: prompt-processing and generation speed of one model file in one layout, shaped like llama-bench so
// rows line up with it (pp<N>: N prompt tokens in one forward from an empty cache; tg<N>: N tokens decoded one
// at a time from an empty cache, each from the previous step's greedy choice).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <hmoe/hmoe.hpp>

#include "../common/model_choice.hpp"
#if HMOE_HAVE_CUDA
#include <hmoe/pipeline/trace.hpp>
#endif

namespace {

constexpr const char* usage = R"(hmoe-bench: tokens/s of a DeepSeek (deepseek2) GGUF model, llama-bench style.

usage: hmoe-bench -m FILE.gguf [-p 512] [-n 128] [-t THREADS] [-r 3] [--layout cpu|hybrid|gpu]
                  [--experts-per-token K] [options]

  -m, --model FILE    GGUF file
  -p, --n-prompt N    prompt tokens per pp test (default 512; 0 skips it); a comma list runs several
  -n, --n-gen N       generated tokens per tg test (default 128; 0 skips it); a comma list runs several
  -t, --threads N     CPU worker threads (default: all hardware threads)
  -r, --repetitions N runs per test; the table shows mean ± sample standard deviation (default 3)
  -d, --n-depth N     context already in the cache before each test (default 0; comma list), filled
                      untimed with random tokens: "tg128 @ d4096" is decode at context 4096, as llama-bench
  --seed N            seed of the random prompt tokens (default 1)
  --trace FILE        write a Chrome trace (Perfetto) of the last repetition of every test (GPU layouts);
                      tools/trace_summary.py summarizes and draws it
)" /* model_choice_help follows */;
constexpr const char* usage_rest = R"(  -h, --help          this text

Before the timed runs each test runs once untimed (warm-up). Prints one markdown table row per test with the
layout, threads, test name and tokens/s, then GPU memory in use (when a GPU layout runs) and the peak host RSS.
The layout column ends with "K of N experts/token" when --experts-per-token runs fewer routed experts than the
N the model was trained with.
)";

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "hmoe-bench: " << msg << "\n(run hmoe-bench --help for usage)\n";
  std::exit(2);
}

std::vector<long long> parse_list(const std::string& flag, const std::string& s) {
  std::vector<long long> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
    }
    if (used != item.size() || v < 0) fail(flag + " takes whole numbers ≥ 0, got '" + s + "'");
    out.push_back(v);
  }
  return out;
}

struct Options {
  std::string model;
  std::vector<long long> prompt{512}, gen{128};
  unsigned threads = 0;
  int reps = 3;
  unsigned seed = 1;
  std::vector<long long> depth{0};
  std::string trace;
  hmoe::examples::ModelChoice layout;
};

#if HMOE_HAVE_CUDA
using Trace = hmoe::pipeline::Trace;
#else
struct Trace {  // only GPU layouts record traces; main refuses --trace without them
  void write(const std::string&) const {}
  std::size_t size() const { return 0; }
};
#endif

double peak_rss_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

template <class Model>
int bench(const Model& model, const Options& o, const std::string& layout) {
  const auto& h = model.hparams();
  auto pool = hmoe::examples::make_pool(o.layout, o.threads);
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<std::int32_t> token(0, static_cast<std::int32_t>(h.vocab - 1));
  const auto name = std::filesystem::path(o.model).filename().string();
  std::printf("| model | layout | threads | test | t/s |\n|---|---|---:|---:|---:|\n");

  std::optional<Trace> trace;  // made only when asked for: it holds CUDA events
  if (!o.trace.empty()) trace.emplace();
  auto run = [&](const std::string& test, long long n, bool prompt, long long depth) {
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(n)), context(static_cast<std::size_t>(depth));
    for (auto& t : tokens) t = token(rng);
    for (auto& t : context) t = token(rng);
    auto once = [&] {
      auto cache = model.make_cache(std::max<long long>(n + depth, 1));
      if (depth > 0) (void)model.forward(pool, context, cache, hmoe::Logits::Last);  // untimed: the test's context
      const auto t0 = std::chrono::steady_clock::now();
      if (prompt) {
        (void)model.forward(pool, tokens, cache, hmoe::Logits::Last);
      } else {
        std::int32_t next = tokens[0];
        for (long long i = 0; i < n; ++i) {
          const auto logits = model.forward(pool, std::span(&next, 1), cache, hmoe::Logits::Last);
          next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        }
      }
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    (void)once();  // warm-up
    std::vector<double> rates;
    for (int r = 0; r < o.reps; ++r) {
      if constexpr (requires { model.set_trace(&*trace); })  // the last repetition of each test
        if (trace && r + 1 == o.reps) model.set_trace(&*trace);
      rates.push_back(static_cast<double>(n) / once());
      if constexpr (requires { model.set_trace(nullptr); }) model.set_trace(nullptr);
    }
    double mean = 0, var = 0;
    for (double v : rates) mean += v / static_cast<double>(rates.size());
    for (double v : rates) var += (v - mean) * (v - mean);
    const double sd = rates.size() > 1 ? std::sqrt(var / static_cast<double>(rates.size() - 1)) : 0.0;
    std::printf("| %s | %s | %u | %s | %.2f ± %.2f |\n", name.c_str(), layout.c_str(), static_cast<unsigned>(pool.size()),
                test.c_str(), mean, sd);
    std::fflush(stdout);
  };
  for (auto d : o.depth) {
    const std::string at = d > 0 ? " @ d" + std::to_string(d) : "";
    for (auto p : o.prompt)
      if (p > 0) run("pp" + std::to_string(p) + at, p, true, d);
    for (auto g : o.gen)
      if (g > 0) run("tg" + std::to_string(g) + at, g, false, d);
  }
  if constexpr (requires { model.set_trace(&*trace); })
    if (trace) {
      trace->write(o.trace);
      std::printf("\ntrace: %s (%zu spans; tools/trace_summary.py reads it)\n", o.trace.c_str(), trace->size());
    }
  if constexpr (!requires { model.set_trace(&*trace); })
    if (!o.trace.empty()) std::printf("\ntrace: none written: only the GPU layouts record one\n");
  if constexpr (requires { model.gpu_weight_bytes(); })
    std::printf("\nGPU weights: %.2f GiB\n", static_cast<double>(model.gpu_weight_bytes()) / (1u << 30));
  std::printf("peak host RSS: %.2f GiB\n", peak_rss_gib());
  return 0;
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
    try {
      if (a == "-h" || a == "--help") {
        std::cout << usage << hmoe::examples::model_choice_help << usage_rest;
        return 0;
      } else if (a == "-m" || a == "--model") o.model = value();
      else if (a == "-p" || a == "--n-prompt") o.prompt = parse_list(a, value());
      else if (a == "-n" || a == "--n-gen") o.gen = parse_list(a, value());
      else if (a == "-t" || a == "--threads") o.threads = static_cast<unsigned>(parse_list(a, value()).at(0));
      else if (a == "-r" || a == "--repetitions") o.reps = static_cast<int>(std::max(1LL, parse_list(a, value()).at(0)));
      else if (a == "-d" || a == "--n-depth") o.depth = parse_list(a, value());
      else if (a == "--trace") o.trace = value();
      else if (a == "--seed") o.seed = static_cast<unsigned>(parse_list(a, value()).at(0));
      else if (hmoe::examples::parse_model_choice(o.layout, argc, argv, i)) continue;
      else fail("unknown option '" + a + "'");
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }
  if (o.model.empty()) fail("--model is required");
#if !HMOE_HAVE_CUDA
  if (!o.trace.empty()) fail("--trace records GPU layouts; this build has no CUDA unit");
#endif
  try {
    return hmoe::examples::with_model(o.layout, hmoe::gguf::File::open(o.model),
                                      [&](const auto& model, const std::string& desc) { return bench(model, o, desc); });
  } catch (const std::exception& e) {
    std::cerr << "hmoe-bench: " << e.what() << "\n";
    return 1;
  }
}
