// The hybrid layout (AMX or AVX-512 routed experts on the CPU, the rest on the GPU) under each pipeline mode:
// Pipeline<Sequential> (nothing overlaps), CpuGpuOverlap with 1, 2 and 4 micro-batches, and the expert thread
// pool sleeping or spinning between layers. Prints a markdown table of prefill and decode tokens/s and writes a
// Chrome trace of one prefill and a few decode steps per mode (tools/trace_summary.py reads them).
//
//   hmoe_pipeline_bench -m MODEL.gguf [-t 16] [-p 2048] [-n 64] [-r 2] [--trace-dir DIR] [--modes a,b,..]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <hmoe/gpu.hpp>
#include <hmoe/pipeline/trace.hpp>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace hmoe;

namespace {

struct Options {
  std::string model;
  unsigned threads = 16;
  std::int64_t prompt = 2048, gen = 64;
  int reps = 2;
  std::string trace_dir;
  std::string modes = "sequential,overlap1,overlap2,overlap4,overlap1-spin,overlap2-spin";
  std::string experts = "amx";
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string mean_sd(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  s = v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f ± %.1f", m, s);
  return buf;
}

/// pp: one prompt from an empty cache; tg: `gen` decode steps after a 16-token prompt. Traces the last rep.
template <class Model>
void bench(const Model& model, const std::string& mode, cpu::ThreadPool& pool, const Options& o) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::int32_t> token(0, static_cast<std::int32_t>(model.hparams().vocab - 1));
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(o.prompt));
  for (auto& t : prompt) t = token(rng);
  std::vector<double> pp, tg;
  for (int r = 0; r <= o.reps; ++r) {  // rep 0 warms up
    const bool traced = !o.trace_dir.empty() && r == o.reps;
    pipeline::Trace trace;
    if (traced) model.set_trace(&trace);
    auto cache = model.make_cache(o.prompt + o.gen + 16);
    auto t0 = std::chrono::steady_clock::now();
    (void)model.forward(pool, prompt, cache, Logits::Last);
    const double pp_s = seconds_since(t0);
    if (traced) {
      trace.write(o.trace_dir + "/" + mode + "-pp" + std::to_string(o.prompt) + ".json");
      model.set_trace(nullptr);
    }
    auto dcache = model.make_cache(o.gen + 16);
    (void)model.forward(pool, std::span(prompt).first(16), dcache, Logits::Last);
    pipeline::Trace dtrace;
    t0 = std::chrono::steady_clock::now();
    std::int32_t next = prompt[16];
    for (std::int64_t i = 0; i < o.gen; ++i) {
      if (traced && i == o.gen - 8) model.set_trace(&dtrace);  // the last 8 steps
      const auto logits = model.forward(pool, std::span(&next, 1), dcache, Logits::Last);
      next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double tg_s = seconds_since(t0);
    if (traced) {
      model.set_trace(nullptr);
      dtrace.write(o.trace_dir + "/" + mode + "-tg.json");
    }
    if (r == 0) continue;
    pp.push_back(static_cast<double>(o.prompt) / pp_s);
    tg.push_back(static_cast<double>(o.gen) / tg_s);
  }
  std::cout << "| " << mode << " | " << model.micro_batches(o.prompt) << " | " << mean_sd(pp) << " | " << mean_sd(tg)
            << " |" << std::endl;
}

template <class Isa>
void run_all(const Options& o) {
  using Seq = HybridModel<Isa, Stored, Stored, dims::Dynamic, Pipeline<Sequential>>;
  using Overlap = HybridModel<Isa, Stored, Stored, dims::Dynamic, Pipeline<CpuGpuOverlap<4>>>;
  gpu::GpuOptions g;
  g.kv = gpu::KvFormat::BF16;
  g.precision = cuda::Precision::BF16;
  std::cout << "| mode | micro-batches at pp" << o.prompt << " | pp" << o.prompt << " tok/s | tg" << o.gen
            << " tok/s |\n|---|---:|---:|---:|" << std::endl;
  std::stringstream list(o.modes);
  for (std::string mode; std::getline(list, mode, ',');) {
    const bool spin = mode.ends_with("-spin");
    cpu::ThreadPool pool(o.threads, cpu::Pin::None, spin ? cpu::Wait::Spin : cpu::Wait::Block,
                         std::chrono::microseconds(spin ? 5000 : 200));
    if (mode == "sequential") {
      bench(Seq::load(gguf::File::open(o.model), g), mode, pool, o);
      continue;
    }
    const auto base = spin ? mode.substr(0, mode.size() - 5) : mode;
    if (!base.starts_with("overlap")) throw std::invalid_argument("unknown mode '" + mode + "'");
    g.micro_batches = std::stoi(base.substr(7));
    bench(Overlap::load(gguf::File::open(o.model), g), mode, pool, o);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "-m") o.model = value();
      else if (a == "-t") o.threads = static_cast<unsigned>(std::stoul(value()));
      else if (a == "-p") o.prompt = std::stoll(value());
      else if (a == "-n") o.gen = std::stoll(value());
      else if (a == "-r") o.reps = std::stoi(value());
      else if (a == "--trace-dir") o.trace_dir = value();
      else if (a == "--modes") o.modes = value();
      else if (a == "--experts") o.experts = value();
      else if (a == "-h" || a == "--help") {
        std::cout << "hmoe_pipeline_bench -m MODEL.gguf [-t 16] [-p 2048] [-n 64] [-r 2] [--trace-dir DIR]\n"
                     "  [--modes sequential,overlap1,overlap2,overlap4,overlap1-spin,overlap2-spin] [--experts amx|avx512]\n";
        return 0;
      } else throw std::invalid_argument("unknown argument '" + a + "' (see --help)");
    }
    if (o.model.empty()) throw std::invalid_argument("-m MODEL.gguf is required");
    if (!o.trace_dir.empty()) std::filesystem::create_directories(o.trace_dir);
    std::cout << "# hybrid pipeline modes, " << o.model << ", " << o.threads << " threads, experts " << o.experts
              << "\n\n";
    if (o.experts == "amx") run_all<AMX>(o);
    else if (o.experts == "avx512") run_all<AVX512>(o);
    else throw std::invalid_argument("--experts must be amx or avx512");
  } catch (const std::exception& e) {
    std::cerr << "hmoe_pipeline_bench: " << e.what() << "\n";
    return 1;
  }
}
