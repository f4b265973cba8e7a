/// \file
/// \brief The examples' common flags for picking a layout at run time: which compile-time model type to load
/// (all-CPU, hybrid, all-GPU) and with which routed-expert kernels, KV cache and GEMM precision.
///
/// Every combination is its own model type, fixed at compile time; this header only maps flags to types. The
/// GPU layouts exist when the examples are built with the CUDA unit (HMOE_HAVE_CUDA).
#pragma once

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
};

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
  else return false;
  return true;
}

/// Loads the model type the choice names and calls f(model, description); returns what f returns.
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
  if (c.layout == "cpu") {
    if (c.experts == "reference") return f(ReferenceModel<>::load(std::move(file)), "cpu, experts " + kernels);
    if (c.experts == "avx512") return f(CpuModel<AVX512>::load(std::move(file)), "cpu, experts " + kernels);
    return f(CpuModel<AMX>::load(std::move(file)), "cpu, experts " + kernels);
  }
#if HMOE_HAVE_CUDA
  if (c.layout != "hybrid" && c.layout != "gpu")
    throw std::invalid_argument("--layout must be cpu, hybrid, gpu or auto, got '" + c.layout + "'");
  gpu::GpuOptions o;
  o.device = c.device;
  o.cuda_graph = c.cuda_graph;
  const auto h = read_hparams(file);
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
  if (c.layout == "gpu") return f(GpuModel<>::load(std::move(file), o, progress), "gpu" + gpu_desc);
  const std::string desc = "hybrid, experts " + kernels + " on the CPU" + gpu_desc;
  if (c.experts == "reference") return f(HybridModel<Generic>::load(std::move(file), o, progress), desc);
  if (c.experts == "avx512") return f(HybridModel<AVX512>::load(std::move(file), o, progress), desc);
  return f(HybridModel<AMX>::load(std::move(file), o, progress), desc);
#else
  throw std::invalid_argument("--layout must be cpu or auto in this build, got '" + c.layout + "'");
#endif
}

}  // namespace hmoe::examples
