/// \file
/// \brief The examples' common flags for picking a layout at run time: which compile-time model type to load
/// (all-CPU, hybrid, all-GPU) and with which routed-expert kernels, KV cache and GEMM precision, and how many
/// routed experts each token uses (--experts-per-token, docs/selective-experts.md).
///
/// Every combination is its own model type, fixed at compile time; this header only maps flags to types. The
/// GPU layouts exist when the examples are built with the CUDA unit (HMOE_HAVE_CUDA).
#pragma once

#include <cstdint>
#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>

#include <hmoe/hmoe.hpp>
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
  std::int64_t experts_per_token = 0;  ///< routed experts per token; 0 = as trained (ModelOverrides)
  std::string pipeline = "overlap";  ///< hybrid: overlap (Pipeline<CpuGpuOverlap<1>>) | sequential
  int micro_batches = 0;             ///< hybrid prompts in this many micro-batches; 0 = the pipeline's (1)
  bool spin = true;                  ///< expert threads poll between layers instead of sleeping
  std::int64_t offload_min = 256;    ///< hybrid: prompt chunks of this many tokens run the experts on the GPU; 0 = never
};

/// The expert thread pool the choice asks for: with `spin`, threads poll for 5 ms before they sleep, which
/// covers the GPU's part of a layer, so the CPU experts of the next layer start without a wake-up (measured on
/// the H100 machine: hybrid pp2048 467 → 658 tok/s, tg 19–29 → 39–41 tok/s; benchmarks/results/pipeline.md).
inline cpu::ThreadPool make_pool(const ModelChoice& c, unsigned threads) {
  return cpu::ThreadPool(threads, cpu::Pin::None, c.spin ? cpu::Wait::Spin : cpu::Wait::Block,
                         std::chrono::microseconds(c.spin ? 5000 : 200));
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
  --cuda-graph        run each decode step as one captured CUDA graph (hybrid layout; off by default: slower
                      on the H100 machine so far, see benchmarks/results/e2e.md)
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
  --no-spin           expert threads sleep between layers (default: they poll for 5 ms first; faster, but
                      keeps the cores busy)
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
  else if (a == "--pipeline") c.pipeline = value();
  else if (a == "--micro-batches") c.micro_batches = std::stoi(value());
  else if (a == "--no-spin") c.spin = false;
  else if (a == "--expert-offload") c.offload_min = std::stoll(value());
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
  // Every layout must run with the K asked for (never silently the trained count); the description says K.
  auto run = [&](const auto& model, std::string desc) -> int {
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
  o.overrides = overrides_of(c);
  o.micro_batches = c.micro_batches;
  o.expert_offload_min_tokens = c.offload_min;
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
                               (c.cuda_graph ? ", CUDA graph" : "");
  if (c.layout == "gpu") return run(GpuModel<>::load(std::move(file), o, progress), "gpu" + gpu_desc);
  std::string desc = "hybrid, experts " + kernels + " on the CPU" + gpu_desc;
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
