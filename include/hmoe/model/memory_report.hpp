/// \file
/// \brief What a layout costs before anything is allocated: bytes of every tensor group on the GPU and in host
/// RAM, plus the compressed KV cache for a context, and a refusal with numbers when a budget is exceeded.
///
/// Groups follow what a layout can place separately: attention (MLA projections and every per-layer norm), the dense
/// layers' FFN, the shared experts, the routed experts, the routers, the token embedding, the output head (with
/// the final norm). Bytes are the file's tensor bytes: weights stay in their stored format, and a format
/// converted at load (Int8, BF16) is reported at its stored size, the plan's lower bound.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "hmoe/io/gguf.hpp"
#include "hmoe/model/hparams.hpp"

namespace hmoe {

enum class TensorGroup { Attention, DenseFfn, SharedExperts, RoutedExperts, Router, Embedding, OutputHead };
inline constexpr std::size_t tensor_group_count = 7;

constexpr std::string_view name(TensorGroup g) {
  constexpr std::array<std::string_view, tensor_group_count> names{
      "attention, norms", "dense FFN", "shared experts", "routed experts", "router", "token embedding", "output head"};
  return names[static_cast<std::size_t>(g)];
}

/// Which group a GGUF tensor of a deepseek2 file belongs to (by llama.cpp's tensor names).
inline TensorGroup group_of(std::string_view tensor) {
  auto has = [&](std::string_view s) { return tensor.find(s) != std::string_view::npos; };
  if (tensor.starts_with("token_embd")) return TensorGroup::Embedding;
  if (tensor.starts_with("output")) return TensorGroup::OutputHead;  // output.weight, output_norm.weight
  if (has("_exps")) return TensorGroup::RoutedExperts;
  if (has("_shexp")) return TensorGroup::SharedExperts;
  if (has("ffn_gate_inp") || has("exp_probs_b")) return TensorGroup::Router;
  if (has(".ffn_norm")) return TensorGroup::Attention;  // the per-layer norms travel with attention
  if (has(".ffn_")) return TensorGroup::DenseFfn;       // ffn_gate/up/down of the dense blocks
  return TensorGroup::Attention;                        // attn_*, attn_norm, the q/kv LoRA norms
}

/// Where each group lives: the run-time mirror of a model type's Placement policies.
struct LayoutPlan {
  std::array<bool, tensor_group_count> on_gpu{};  ///< all false: everything in host RAM
  bool kv_cache_on_gpu = false;
  std::uint64_t kv_bytes_per_value = 4;  ///< f32 on the CPU today; 2 for the GPU's bf16 paged cache

  static LayoutPlan all_cpu() { return {}; }
  /// The hybrid layout: routed experts in host RAM, the rest and the KV cache (bf16) on the GPU.
  static LayoutPlan hybrid() {
    LayoutPlan p;
    p.on_gpu.fill(true);
    p.on_gpu[static_cast<std::size_t>(TensorGroup::RoutedExperts)] = false;
    p.kv_cache_on_gpu = true;
    p.kv_bytes_per_value = 2;
    return p;
  }
  static LayoutPlan all_gpu() {
    auto p = hybrid();
    p.on_gpu.fill(true);
    return p;
  }
  bool gpu(TensorGroup g) const { return on_gpu[static_cast<std::size_t>(g)]; }
};

struct MemoryReport {
  std::array<std::uint64_t, tensor_group_count> group_bytes{};
  std::array<std::uint64_t, tensor_group_count> group_tensors{};
  std::uint64_t kv_bytes = 0, gpu_bytes = 0, host_bytes = 0;
  std::int64_t context = 0;
};

/// The compressed MLA cache: per layer and position, kv_lora_rank latent values and the rope key.
inline std::uint64_t kv_cache_bytes(const DeepSeekHParams& h, std::int64_t context, std::uint64_t bytes_per_value) {
  return static_cast<std::uint64_t>(h.layers) * static_cast<std::uint64_t>(context) *
         static_cast<std::uint64_t>(h.kv_lora_rank + h.qk_rope) * bytes_per_value;
}

inline MemoryReport memory_report(const gguf::File& f, const DeepSeekHParams& h, const LayoutPlan& plan,
                                  std::int64_t context) {
  MemoryReport r;
  r.context = context;
  for (const auto& t : f.tensors()) {
    const auto g = static_cast<std::size_t>(group_of(t.name));
    r.group_bytes[g] += t.n_bytes();
    ++r.group_tensors[g];
    (plan.on_gpu[g] ? r.gpu_bytes : r.host_bytes) += t.n_bytes();
  }
  r.kv_bytes = kv_cache_bytes(h, context, plan.kv_bytes_per_value);
  (plan.kv_cache_on_gpu ? r.gpu_bytes : r.host_bytes) += r.kv_bytes;
  return r;
}

/// "1.23 GiB", "45.6 MiB", "789 KiB": three significant figures in the largest unit below the value.
inline std::string bytes_text(std::uint64_t bytes) {
  char s[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (1ull << 30)) std::snprintf(s, sizeof s, "%.2f GiB", b / (1ull << 30));
  else if (bytes >= (1ull << 20)) std::snprintf(s, sizeof s, "%.1f MiB", b / (1ull << 20));
  else std::snprintf(s, sizeof s, "%.0f KiB", b / (1ull << 10));
  return s;
}

/// A table, one line per group: where it lives and its size.
inline std::string format(const MemoryReport& r, const LayoutPlan& plan) {
  std::string out;
  for (std::size_t g = 0; g < tensor_group_count; ++g) {
    if (r.group_tensors[g] == 0) continue;
    char line[160];
    std::snprintf(line, sizeof line, "  %-16s %5s  %12s  (%llu tensors)\n", std::string(name(TensorGroup(g))).c_str(),
                  plan.on_gpu[g] ? "GPU" : "host", bytes_text(r.group_bytes[g]).c_str(),
                  static_cast<unsigned long long>(r.group_tensors[g]));
    out += line;
  }
  out += "  KV cache (" + std::to_string(r.context) + " tokens) " + (plan.kv_cache_on_gpu ? "GPU" : "host") + "  " +
         bytes_text(r.kv_bytes) + "\n  total: GPU " + bytes_text(r.gpu_bytes) + ", host " + bytes_text(r.host_bytes) + "\n";
  return out;
}

/// Throws, naming both numbers, when the plan needs more than a budget allows; checked before any allocation.
inline void require_fits(const MemoryReport& r, std::uint64_t gpu_budget, std::uint64_t host_budget,
                         std::string_view what) {
  if (r.gpu_bytes > gpu_budget)
    throw ModelError("hmoe: " + std::string(what) + " needs " + bytes_text(r.gpu_bytes) + " of GPU memory (KV cache for " +
                     std::to_string(r.context) + " tokens: " + bytes_text(r.kv_bytes) + "), but the budget is " +
                     bytes_text(gpu_budget) + "; keep more groups in host RAM or shorten the context");
  if (r.host_bytes > host_budget)
    throw ModelError("hmoe: " + std::string(what) + " needs " + bytes_text(r.host_bytes) + " of host memory, but the budget is " +
                     bytes_text(host_budget));
}

}  // namespace hmoe
