/// \file
/// \brief The examples' common flags for picking a layout at run time: which compile-time model type to load
/// (all-CPU, hybrid, all-GPU) and with which routed-expert kernels, KV cache and GEMM precision, and how many
/// routed experts each token uses (--experts-per-token, docs/selective-experts.md).
///
/// Every combination is its own model type, fixed at compile time; this header only maps flags to types. The
/// GPU layouts exist when the examples are built with the CUDA unit (HMOE_HAVE_CUDA). --numa shards the routed
/// experts over the machine's NUMA nodes (docs/numa.md).
#pragma once

#include <cstdint>
#include <chrono>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <hmoe/hmoe.hpp>
#include <hmoe/model/expert_stats.hpp>
#include <hmoe/model/placement_plan.hpp>
#if HMOE_HAVE_CUDA
#include <hmoe/cuda/device.hpp>
#include <hmoe/gpu.hpp>
#endif

namespace hmoe::examples {

struct ModelChoice {
  std::string layout = "auto";     ///< cpu | hybrid | gpu | auto (hybrid when a CUDA device is visible)
  std::string experts = "auto";    ///< reference | avx512 | amx | auto (the fastest the CPU allows)
  std::string kv = "auto";         ///< GPU cache: f32 | bf16 | auto (bf16 where the MLA shape allows)
  std::string precision = "auto";  ///< GPU prefill GEMMs: f32 | bf16 | auto (= bf16)
  int device = 0;
  bool cuda_graph = false;         ///< decode steps as one CUDA graph launch (hybrid layout)
  bool layer_graphs = true;        ///< decode: one CUDA graph per MoE layer between the CPU's turns (hybrid)
  std::int64_t experts_per_token = 0;  ///< routed experts per token; 0 = as trained (ModelOverrides)
  std::string pipeline = "overlap";  ///< hybrid: overlap (Pipeline<CpuGpuOverlap<1>>) | sequential
  int micro_batches = 0;             ///< hybrid prompts in this many micro-batches; 0 = the pipeline's (1)
  bool spin = true;                  ///< expert threads poll between layers instead of sleeping
  std::int64_t offload_min = 256;    ///< hybrid: prompt chunks of this many tokens run the experts on the GPU; 0 = never
  std::int64_t batch_tokens = 512;   ///< GPU layouts: tokens per forward pass (a longer prompt runs in chunks)
  std::string numa = "auto";         ///< auto | on | off: shard the routed experts over NUMA nodes

  // Resident experts (hybrid layout; docs/placement.md, "Running a plan").
  std::string gpu_experts_budget;         ///< GPU memory for the hottest routed experts, e.g. "8G"; empty = none
  std::vector<std::string> expert_stats;  ///< router statistics files (hmoe-plan --calibrate) that rank them
};

/// The NUMA nodes the routed experts are sharded over: the machine's (sysfs, or HMOE_NUMA_NODES's simulation)
/// unless --numa off; fewer than 2 means no sharding. make_pool and with_model both ask here, so the pool that
/// places the experts at load and the one that runs them see the same nodes.
inline std::optional<cpu::NumaTopology> numa_topology(const ModelChoice& c) {
  if (c.numa == "off") return std::nullopt;
  if (c.numa != "auto" && c.numa != "on") throw std::invalid_argument("--numa must be auto, on or off, got '" + c.numa + "'");
  auto t = cpu::NumaTopology::detect();
  if (t.size() >= 2) return t;
  if (c.numa == "on")
    throw std::invalid_argument("--numa on: this machine has one NUMA node (" + t.describe() +
                                "); HMOE_NUMA_NODES=N simulates N");
  return std::nullopt;
}

/// The expert thread pool the choice asks for: with `spin`, threads poll for 5 ms before they sleep, which
/// covers the GPU's part of a layer, so the CPU experts of the next layer start without a wake-up (measured on
/// the H100 machine: hybrid pp2048 467 → 658 tok/s, tg 19–29 → 39–41 tok/s; benchmarks/results/pipeline.md).
/// With NUMA sharding the workers are split over the nodes, each pinned to its node, and the calling thread
/// runs no expert task (ThreadPool's NUMA constructor).
inline cpu::ThreadPool make_pool(const ModelChoice& c, unsigned threads) {
  const auto wait = c.spin ? cpu::Wait::Spin : cpu::Wait::Block;
  const auto spin_for = std::chrono::microseconds(c.spin ? 5000 : 200);
  if (const auto numa = numa_topology(c)) return cpu::ThreadPool(*numa, threads, wait, spin_for);
  return cpu::ThreadPool(threads, cpu::Pin::None, wait, spin_for);
}

/// The ModelOverrides the choice asks for.
inline ModelOverrides overrides_of(const ModelChoice& c) { return ModelOverrides{c.experts_per_token}; }

/// The --help lines for these flags.
inline constexpr const char* model_choice_help =
    R"(  --layout L          where the model runs: cpu (everything on the CPU), hybrid (routed experts on the CPU,
                      everything else on the GPU), gpu (all on the GPU) or auto (default: hybrid when a CUDA
                      device is visible and the binary has the CUDA unit, else cpu)
  --experts KIND      routed-expert kernels on the CPU: reference (f32, weights dequantized on access), avx512,
                      amx or auto (default: AMX, else AVX-512, else reference, as the CPU allows)
  --kv F              GPU KV cache: f32 (exact, any shape) or bf16 (paged, tensor-core kernels; kv_lora_rank
                      512 + rope 64 only); default auto = bf16 where the shape allows
  --gpu-precision P   GPU GEMMs above 8 tokens: f32 (exact) or bf16 (tensor cores, default)
  --device N          CUDA device index (default 0)
  --cuda-graph        run each decode step as one captured CUDA graph, the CPU experts inside it as host
                      functions (hybrid layout; off by default: slower, see benchmarks/results/e2e.md)
  --no-layer-graphs   decode without the per-layer CUDA graphs (by default the GPU's work between two MoE
                      layers' CPU experts is one graph launch; this launches each kernel, for comparison)
  --experts-per-token K
                      routed experts per token, 1 to the count the model was trained with (expert_used_count);
                      fewer is "selective experts": faster, the logits drift (docs/selective-experts.md).
                      Default 0 = as trained
  --pipeline P        hybrid layout: overlap (default: the shared experts run on the GPU while the CPU runs the
                      routed ones) or sequential (nothing overlaps; for comparison)
  --micro-batches N   hybrid layout: split prompts into N micro-batches (1-8) whose GPU and CPU work overlap;
                      default 1 (measured fastest on the H100 machine, where the CPU experts dominate prefill)
  --expert-offload N  hybrid layout: prompt chunks of at least N tokens (default 256) copy each layer's routed
                      experts to the GPU and run them there, overlapped with the layer before; 0 = never
  --batch-tokens N    GPU layouts: a prompt runs in chunks of at most N tokens (default 512, like llama.cpp's
                      -ub). With prompt experts on the GPU every chunk copies all routed experts over PCIe once,
                      so longer chunks prefill faster; scratch and pinned staging grow with N (vocab floats a token)
  --no-spin           expert threads sleep between layers (default: they poll for 5 ms first; faster, but
                      keeps the cores busy)
  --numa M            shard the CPU's routed experts over NUMA nodes: each node's threads run (and at load
                      pack or copy into their node's memory) only the experts that node owns, none held twice.
                      auto (default: on when the machine has 2 or more nodes), on, off. The threads of -t
                      are split evenly over the nodes (the calling one runs no expert task).
                      HMOE_NUMA_NODES=N simulates N nodes (docs/numa.md)
  --gpu-experts-budget SIZE
                      hybrid layout: keep the hottest routed experts in SIZE of GPU memory (24G, 800M, bytes;
                      binary units) beside everything else the layout puts there; their tokens run on the GPU
                      while the CPU runs the rest. Needs --expert-stats (without statistics it is refused: any
                      choice would be a guess). Leave room for the KV cache. Not with --cuda-graph
  --expert-stats FILE router statistics that rank the experts (hmoe-plan --calibrate --stats-out FILE); repeat
                      to merge several
)";

/// Consumes one flag of ModelChoice at argv[i] (advancing i past its value); false if the flag is not one of them.
inline bool parse_model_choice(ModelChoice& c, int argc, char** argv, int& i) {
  const std::string a = argv[i];
  auto value = [&]() -> std::string {
    if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
    return argv[++i];
  };
  if (a == "--layout") c.layout = value();
  else if (a == "--experts") c.experts = value();
  else if (a == "--reference") c.experts = "reference";
  else if (a == "--kv") c.kv = value();
  else if (a == "--gpu-precision") c.precision = value();
  else if (a == "--device") c.device = std::stoi(value());
  else if (a == "--cuda-graph") c.cuda_graph = true;
  else if (a == "--no-layer-graphs") c.layer_graphs = false;
  else if (a == "--pipeline") c.pipeline = value();
  else if (a == "--micro-batches") c.micro_batches = std::stoi(value());
  else if (a == "--no-spin") c.spin = false;
  else if (a == "--expert-offload") c.offload_min = std::stoll(value());
  else if (a == "--batch-tokens") c.batch_tokens = std::stoll(value());
  else if (a == "--gpu-experts-budget") c.gpu_experts_budget = value();
  else if (a == "--expert-stats") c.expert_stats.push_back(value());
  else if (a == "--numa") {
    c.numa = value();
    if (c.numa != "auto" && c.numa != "on" && c.numa != "off")
      throw std::invalid_argument("--numa must be auto, on or off, got '" + c.numa + "'");
  }
  else if (a == "--experts-per-token") {
    const auto v = value();
    std::size_t used = 0;
    long long k = -1;
    try {
      k = std::stoll(v, &used);
    } catch (const std::exception&) {
    }
    if (used != v.size() || k < 0)
      throw std::invalid_argument("--experts-per-token takes a whole number >= 0 (0 = as trained), got '" + v + "'");
    c.experts_per_token = k;
  } else return false;
  return true;
}

/// The routed experts --gpu-experts-budget and --expert-stats keep on the GPU (model/placement_plan.hpp's
/// plan_routed_experts: hottest first until the budget is full), as GpuOptions::resident_experts; the plan's
/// summary goes to stderr. Empty without a budget.
inline std::vector<std::vector<std::int32_t>> resident_experts_of(const ModelChoice& c, const gguf::File& file,
                                                                  const DeepSeekHParams& h) {
  if (c.gpu_experts_budget.empty()) return {};
  const auto budget = parse_bytes(c.gpu_experts_budget);
  if (!budget)
    throw std::invalid_argument("--gpu-experts-budget: '" + c.gpu_experts_budget +
                                "' is not a size (e.g. 24G, 1.5G, 800M, 123456)");
  if (c.expert_stats.empty())
    throw std::invalid_argument("--gpu-experts-budget needs --expert-stats FILE: without router statistics any "
                                "choice of experts is a guess (gather them with hmoe-plan -m MODEL --calibrate "
                                "TEXT --stats-out FILE)");
  std::optional<ExpertStats> stats;
  for (const auto& path : c.expert_stats) {
    auto s = ExpertStats::load(path);
    s.require_matches(h, file.path().filename().string());
    if (stats) stats->merge(s);
    else stats = std::move(s);
  }
  const auto plan = plan_routed_experts(file, h, *budget, &*stats);
  std::cerr << "resident experts (--gpu-experts-budget " << c.gpu_experts_budget << "): " << format_routed_experts(plan);
  return plan.gpu_experts_by_layer();
}

/// parse_model_choice for a program whose usage errors go through `fail(message)` (which does not return): a bad
/// value is then a usage error, not an uncaught exception.
template <class Fail>
bool parse_model_choice_or(ModelChoice& c, int argc, char** argv, int& i, Fail&& fail) {
  try {
    return parse_model_choice(c, argc, argv, i);
  } catch (const std::logic_error& e) {  // std::invalid_argument, std::out_of_range (std::stoi)
    fail(e.what());
  }
  return false;
}

/// Loads the model type the choice names and calls f(model, description); returns what f returns. The
/// description ends with ", K of N experts/token" when --experts-per-token changes the trained count N.
template <class F>
int with_model(ModelChoice c, gguf::File file, F&& f) {
  if (c.experts == "auto") c.experts = AMX::available() ? "amx" : AVX512::available() ? "avx512" : "reference";
  if (c.experts != "reference" && c.experts != "avx512" && c.experts != "amx")
    throw std::invalid_argument("--experts must be reference, avx512, amx or auto, got '" + c.experts + "'");
#if HMOE_HAVE_CUDA
  if (c.layout == "auto") c.layout = cuda::device_count() > 0 ? "hybrid" : "cpu";
#else
  if (c.layout == "auto") c.layout = "cpu";
  if (c.layout == "hybrid" || c.layout == "gpu")
    throw std::invalid_argument("--layout " + c.layout + ": this binary was built without the CUDA unit "
                                "(configure with a CUDA compiler and -DHMOE_CUDA=ON)");
#endif
  const std::string kernels = c.experts == "reference" ? "reference f32" : c.experts == "avx512" ? "AVX-512" : "AMX";
  // Checked here (the loads check again), so that every layout refuses a bad K before anything is allocated.
  [[maybe_unused]] const auto h = read_hparams(file, overrides_of(c));
  if (!c.gpu_experts_budget.empty() && c.layout != "hybrid")
    throw std::invalid_argument("--gpu-experts-budget runs with --layout hybrid (resident experts beside the CPU's), "
                                "not --layout " + c.layout);
  if (!c.expert_stats.empty() && c.gpu_experts_budget.empty())
    throw std::invalid_argument("--expert-stats goes with --gpu-experts-budget");
  // NUMA: the loads below bind each node's routed experts on a pool over the same nodes as make_pool's, so the
  // weights are first touched, and live, on the node whose threads will run them (docs/numa.md).
  std::optional<cpu::ThreadPool> placer;
  std::optional<cpu::PlaceExpertsOn> placing;
  std::string sharded;
  if (const auto numa = numa_topology(c); numa && c.experts != "reference" && c.layout != "gpu") {
    placer.emplace(*numa);
    placing.emplace(*placer);
    sharded = ", experts on " + std::to_string(numa->size()) + " NUMA nodes" + (numa->is_simulated() ? " (simulated)" : "");
  }
  // Every layout must run with the K asked for (never silently the trained count); the description says K.
  auto run = [&](const auto& model, std::string desc) -> int {
    placing.reset();  // the model is loaded: its experts are placed, the placer's threads can go
    placer.reset();
    desc += sharded;
    const auto& mh = model.hparams();
    if (c.experts_per_token != 0 && mh.experts_used != c.experts_per_token)
      throw std::logic_error(desc + ": the model runs " + std::to_string(mh.experts_used) +
                             " experts per token, not --experts-per-token " + std::to_string(c.experts_per_token) +
                             " (this layout does not apply the override)");
    if (mh.experts_used != mh.trained_experts_used)
      desc += ", " + std::to_string(mh.experts_used) + " of " + std::to_string(mh.trained_experts_used) +
              " experts/token";
    return f(model, desc);
  };
  if (c.layout == "cpu") {
    const auto desc = "cpu, experts " + kernels;
    if (c.experts == "reference") return run(ReferenceModel<>::load(std::move(file), overrides_of(c)), desc);
    if (c.experts == "avx512") return run(CpuModel<AVX512>::load(std::move(file), overrides_of(c)), desc);
    return run(CpuModel<AMX>::load(std::move(file), overrides_of(c)), desc);
  }
#if HMOE_HAVE_CUDA
  if (c.layout != "hybrid" && c.layout != "gpu")
    throw std::invalid_argument("--layout must be cpu, hybrid, gpu or auto, got '" + c.layout + "'");
  gpu::GpuOptions o;
  o.device = c.device;
  o.cuda_graph = c.cuda_graph;
  o.layer_graphs = c.layer_graphs;
  o.overrides = overrides_of(c);
  o.micro_batches = c.micro_batches;
  o.expert_offload_min_tokens = c.offload_min;
  o.max_batch_tokens = c.batch_tokens;
  if (c.layout == "hybrid") o.resident_experts = resident_experts_of(c, file, h);
  if (c.pipeline != "overlap" && c.pipeline != "sequential")
    throw std::invalid_argument("--pipeline must be overlap or sequential, got '" + c.pipeline + "'");
  const bool tiles_fit = h.kv_lora_rank == 512 && h.qk_rope == 64;
  if (c.kv == "auto") c.kv = tiles_fit ? "bf16" : "f32";
  if (c.kv != "f32" && c.kv != "bf16") throw std::invalid_argument("--kv must be f32, bf16 or auto, got '" + c.kv + "'");
  o.kv = c.kv == "bf16" ? gpu::KvFormat::BF16 : gpu::KvFormat::F32;
  if (c.precision == "auto") c.precision = "bf16";
  if (c.precision != "f32" && c.precision != "bf16")
    throw std::invalid_argument("--gpu-precision must be f32, bf16 or auto, got '" + c.precision + "'");
  o.precision = c.precision == "bf16" ? cuda::Precision::BF16 : cuda::Precision::F32;
  const auto progress = [](const std::string& line) { std::cerr << "\n  " << line << std::flush; };
  const std::string gpu_desc = ", GPU " + cuda::Device(c.device).name() + ", kv " + c.kv + ", GEMMs " + c.precision +
                               (c.cuda_graph ? ", CUDA graph" : c.layer_graphs ? ", layer graphs" : "");
  if (c.layout == "gpu") return run(GpuModel<>::load(std::move(file), o, progress), "gpu" + gpu_desc);
  std::string desc = "hybrid, experts " + kernels + " on the CPU" + gpu_desc;
  if (const auto n = gpu::resident_count(o.resident_experts); n > 0)
    desc += ", " + std::to_string(n) + " routed experts resident on the GPU";
  if (c.pipeline == "sequential") {
    desc += ", pipeline sequential";
    using Seq = Pipeline<Sequential>;
    if (c.experts == "reference") throw std::invalid_argument("--pipeline sequential runs with avx512 or amx experts");
    if (c.experts == "avx512") return run(HybridModel<AVX512, Stored, Stored, dims::Dynamic, Seq>::load(std::move(file), o, progress), desc);
    return run(HybridModel<AMX, Stored, Stored, dims::Dynamic, Seq>::load(std::move(file), o, progress), desc);
  }
  if (c.micro_batches > 1) desc += ", " + std::to_string(c.micro_batches) + " micro-batches";
  desc += c.offload_min > 0 ? ", prompt experts on the GPU from " + std::to_string(c.offload_min) + " tokens"
                            : ", prompt experts on the CPU";
  if (c.experts == "reference") return run(HybridModel<Generic>::load(std::move(file), o, progress), desc);
  if (c.experts == "avx512") return run(HybridModel<AVX512>::load(std::move(file), o, progress), desc);
  return run(HybridModel<AMX>::load(std::move(file), o, progress), desc);
#else
  throw std::invalid_argument("--layout must be cpu or auto in this build, got '" + c.layout + "'");
#endif
}

}  // namespace hmoe::examples
