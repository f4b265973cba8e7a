/// \file
/// \brief Placement by compute intensity: fill a GPU memory budget with what gains most per byte.
///
/// The order, each item charged its bytes in the file (memory_report.hpp's groups):
///  1. mandatory — the KV cache for the context, attention with every per-layer norm, and the routers (the GPU
///     MoE layer routes beside the attention). If these do not fit, the plan is refused with the numbers.
///  2. the shared experts, 3. the dense layers' FFN, 4. the output head with its norm — each group whole, as the
///     compile-time layouts place them;
///  5. routed experts, one (gate, up, down) triple at a time, hottest first by the router statistics' token
///     count. Without statistics none are placed: any order would be a guess, and the plan could not say how
///     much traffic the GPU copies serve.
/// An item that does not fit in what is left stays in host RAM and the planner goes on with the next one, which
/// may be smaller (first fit in priority order), so nothing that is left in host RAM would still fit. The token
/// embedding stays in host RAM (the GPU models gather its rows there).
///
/// The plan is advice within what a model type allows: the compile-time layout still decides what may go where.
/// It has no CUDA dependency; `expert_on_gpu(layer, expert)` is one index into a byte mask.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hmoe/io/gguf.hpp"
#include "hmoe/model/expert_stats.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/memory_report.hpp"

namespace hmoe {

/// One whole group of the plan (or the KV cache), in placement order.
struct PlanGroup {
  std::string name;              ///< memory_report's group name, or "KV cache"
  std::optional<TensorGroup> group;  ///< empty for the KV cache
  std::uint64_t bytes = 0;       ///< what it costs on the GPU
  std::uint64_t tensors = 0;     ///< 0: the file has none (nothing to place)
  bool mandatory = false, on_gpu = false;
  std::string note;              ///< why it stays in host RAM, or a remark
};

/// A routed expert the plan puts on the GPU.
struct PlacedExpert {
  int layer = 0, expert = 0;
  std::uint64_t count = 0;  ///< tokens the statistics routed to it
  std::uint64_t bytes = 0;  ///< its gate, up and down rows in the file
};

struct PlacementPlan {
  std::uint64_t budget = 0, gpu_bytes = 0;  ///< bytes the plan puts on the GPU, <= budget
  std::int64_t context = 0;
  std::uint64_t kv_bytes_per_value = 2, kv_bytes = 0;
  std::int64_t layers = 0, dense_layers = 0, experts = 0;
  /// Whole groups on the GPU, as a memory-report layout; routed experts is true only when every expert is placed.
  LayoutPlan layout;
  std::vector<PlanGroup> groups;  ///< KV cache, attention, router, shared experts, dense FFN, output head, embedding
  std::vector<std::uint64_t> expert_bytes;  ///< per layer: bytes of one routed expert (0 for dense layers)
  std::vector<PlacedExpert> placed;         ///< the experts on the GPU, in placement order (hottest first)
  std::uint64_t experts_skipped = 0;        ///< experts that did not fit in what was left when their turn came
  bool has_stats = false;
  std::uint64_t routed_traffic = 0;         ///< token-to-expert assignments in the statistics
  std::uint64_t gpu_routed_traffic = 0;     ///< of those, the ones the GPU copies serve
  std::vector<std::uint64_t> layer_traffic, layer_gpu_traffic;  ///< the same per layer (empty without statistics)
  std::vector<std::uint8_t> expert_mask;    ///< layers × experts, row-major: 1 = on the GPU

  std::uint64_t bytes_left() const { return budget - gpu_bytes; }
  /// The share of routed-expert traffic (by the statistics' token counts) the GPU copies serve: what predicts
  /// the decode speed-up. 0 without statistics.
  double gpu_traffic_fraction() const {
    return routed_traffic ? static_cast<double>(gpu_routed_traffic) / static_cast<double>(routed_traffic) : 0.0;
  }
  /// Whether expert `expert` of block `layer` is on the GPU (false for dense layers).
  bool expert_on_gpu(int layer, int expert) const {
    return expert_mask[static_cast<std::size_t>(layer) * static_cast<std::size_t>(experts) + static_cast<std::size_t>(expert)] != 0;
  }
  /// Layer `layer`'s mask: element e is 1 when expert e is on the GPU.
  std::span<const std::uint8_t> gpu_mask(int layer) const {
    return std::span(expert_mask).subspan(static_cast<std::size_t>(layer) * static_cast<std::size_t>(experts),
                                          static_cast<std::size_t>(experts));
  }
  std::int64_t experts_on_gpu(int layer) const {
    const auto m = gpu_mask(layer);
    return std::count(m.begin(), m.end(), std::uint8_t{1});
  }
  /// Expert ids of `layer` on the GPU, ascending.
  std::vector<std::int32_t> gpu_experts(int layer) const {
    std::vector<std::int32_t> ids;
    const auto m = gpu_mask(layer);
    for (std::size_t e = 0; e < m.size(); ++e)
      if (m[e]) ids.push_back(static_cast<std::int32_t>(e));
    return ids;
  }
  /// gpu_experts(layer) for every block, indexed by blk.N (empty for dense blocks): the shape of
  /// gpu::GpuOptions::resident_experts, which runs the plan's routed experts in the hybrid layout.
  std::vector<std::vector<std::int32_t>> gpu_experts_by_layer() const {
    std::vector<std::vector<std::int32_t>> out(static_cast<std::size_t>(layers));
    for (std::int64_t l = 0; l < layers; ++l) out[static_cast<std::size_t>(l)] = gpu_experts(static_cast<int>(l));
    return out;
  }
  /// Bytes of the routed experts the plan puts on the GPU.
  std::uint64_t routed_gpu_bytes() const {
    std::uint64_t b = 0;
    for (const auto& e : placed) b += e.bytes;
    return b;
  }
};

/// The block index of a `blk.N.` tensor name; -1 for any other name.
inline int block_of(std::string_view tensor) {
  if (!tensor.starts_with("blk.")) return -1;
  long long n = 0;
  std::size_t i = 4;
  for (; i < tensor.size() && tensor[i] >= '0' && tensor[i] <= '9' && n < (1 << 24); ++i) n = n * 10 + (tensor[i] - '0');
  return i > 4 && i < tensor.size() && tensor[i] == '.' && n < (1 << 24) ? static_cast<int>(n) : -1;
}

/// Bytes of one routed expert (its gate, up and down rows) per block; 0 for dense blocks. The experts of a layer
/// are the outermost dimension of its `*_exps` tensors, so each expert's share is exact; layers may differ
/// (Q4_K_M keeps some down projections in Q6_K). Sums to memory_report's routed-experts group.
inline std::vector<std::uint64_t> routed_expert_bytes(const gguf::File& f, const DeepSeekHParams& h) {
  std::vector<std::uint64_t> out(static_cast<std::size_t>(h.layers), 0);
  for (const auto& t : f.tensors()) {
    if (group_of(t.name) != TensorGroup::RoutedExperts) continue;
    const int l = block_of(t.name);
    if (l < 0 || l >= h.layers || t.n_dims != 3 || t.ne[2] != static_cast<std::uint64_t>(h.experts) ||
        t.n_bytes() % static_cast<std::uint64_t>(h.experts) != 0)
      throw ModelError(f.path().string() + ": routed-expert tensor " + t.name + " is not (.., .., " +
                       std::to_string(h.experts) + " experts) in a block");
    out[static_cast<std::size_t>(l)] += t.n_bytes() / static_cast<std::uint64_t>(h.experts);
  }
  return out;
}

/// Fills `gpu_budget_bytes` in the order the file header describes. `stats` (may be null) must come from a model
/// of this shape; `context` positions of KV cache at `kv_bytes_per_value` bytes per value (2: the GPU's bf16
/// cache, 4: f32). Throws ModelError, with the numbers, when the mandatory part does not fit.
inline PlacementPlan plan_placement(const gguf::File& f, const DeepSeekHParams& h, std::uint64_t gpu_budget_bytes,
                                    const ExpertStats* stats, std::int64_t context,
                                    std::uint64_t kv_bytes_per_value = 2) {
  if (context < 0) throw std::invalid_argument("plan_placement: context must be >= 0, got " + std::to_string(context));
  if (kv_bytes_per_value == 0) throw std::invalid_argument("plan_placement: kv_bytes_per_value must be > 0");
  if (stats) stats->require_matches(h, f.path().filename().string());

  PlacementPlan p;
  p.budget = gpu_budget_bytes;
  p.context = context;
  p.kv_bytes_per_value = kv_bytes_per_value;
  p.layers = h.layers;
  p.dense_layers = h.dense_layers;
  p.experts = h.experts;
  p.has_stats = stats != nullptr;
  p.layout.kv_cache_on_gpu = true;
  p.layout.kv_bytes_per_value = kv_bytes_per_value;

  const auto report = memory_report(f, h, LayoutPlan::all_cpu(), context);
  auto group = [&](TensorGroup g, bool mandatory) {
    const auto i = static_cast<std::size_t>(g);
    return PlanGroup{std::string(name(g)), g, report.group_bytes[i], report.group_tensors[i], mandatory, false, {}};
  };
  p.kv_bytes = kv_cache_bytes(h, context, kv_bytes_per_value);
  p.groups.push_back({"KV cache", std::nullopt, p.kv_bytes, 0, true, false,
                      std::to_string(context) + " tokens, " + std::to_string(kv_bytes_per_value) + " bytes/value"});
  p.groups.push_back(group(TensorGroup::Attention, true));
  p.groups.push_back(group(TensorGroup::Router, true));
  p.groups.push_back(group(TensorGroup::SharedExperts, false));
  p.groups.push_back(group(TensorGroup::DenseFfn, false));
  auto head = group(TensorGroup::OutputHead, false);
  if (!f.find_tensor("output.weight")) {  // tied: the GPU head is a copy of the embedding
    head.bytes += report.group_bytes[static_cast<std::size_t>(TensorGroup::Embedding)];
    head.note = "tied to the token embedding: a GPU copy of it";
  }
  p.groups.push_back(head);
  auto embedding = group(TensorGroup::Embedding, false);
  embedding.note = "rows are gathered on the host";
  p.groups.push_back(embedding);

  std::uint64_t mandatory = 0;
  for (const auto& g : p.groups)
    if (g.mandatory) mandatory += g.bytes;
  if (mandatory > gpu_budget_bytes) {
    std::string parts;
    for (const auto& g : p.groups)
      if (g.mandatory)
        parts += (parts.empty() ? "" : " + ") + (g.group ? g.name : "KV cache for " + std::to_string(context) + " tokens") +
                 " " + bytes_text(g.bytes);
    throw ModelError("hmoe: what " + f.path().filename().string() + " must have on the GPU, " + parts + " = " +
                     bytes_text(mandatory) + " (" + std::to_string(mandatory) + " bytes), does not fit in the GPU "
                     "budget of " + bytes_text(gpu_budget_bytes) + " (" + std::to_string(gpu_budget_bytes) +
                     " bytes); give a larger budget, shorten the context or run on the CPU");
  }

  // Whole groups first, in order; one that does not fit stays in host RAM and the next may.
  for (auto& g : p.groups) {
    const bool placeable = !g.group || g.group != TensorGroup::Embedding;
    if (g.mandatory || (placeable && g.bytes <= p.bytes_left())) {
      g.on_gpu = true;
      p.gpu_bytes += g.bytes;
    } else if (placeable) {
      g.note = "does not fit: " + bytes_text(p.bytes_left()) + " left";
    }
    if (g.group) p.layout.on_gpu[static_cast<std::size_t>(*g.group)] = g.on_gpu;
  }

  // Routed experts, hottest first.
  p.expert_bytes = routed_expert_bytes(f, h);
  p.expert_mask.assign(static_cast<std::size_t>(h.layers * h.experts), 0);
  const auto total_experts = static_cast<std::uint64_t>((h.layers - h.dense_layers) * h.experts);
  if (stats) {
    p.routed_traffic = stats->total_count();
    p.layer_traffic.assign(static_cast<std::size_t>(h.layers), 0);
    p.layer_gpu_traffic.assign(static_cast<std::size_t>(h.layers), 0);
    for (auto l = static_cast<int>(h.dense_layers); l < h.layers; ++l)
      p.layer_traffic[static_cast<std::size_t>(l)] = stats->layer_count(l);
    for (const auto& e : stats->hottest()) {
      const auto bytes = p.expert_bytes[static_cast<std::size_t>(e.layer)];
      if (bytes > p.bytes_left()) {
        ++p.experts_skipped;
        continue;
      }
      p.gpu_bytes += bytes;
      p.gpu_routed_traffic += e.count;
      p.layer_gpu_traffic[static_cast<std::size_t>(e.layer)] += e.count;
      p.placed.push_back({e.layer, e.expert, e.count, bytes});
      p.expert_mask[static_cast<std::size_t>(e.layer) * static_cast<std::size_t>(h.experts) + static_cast<std::size_t>(e.expert)] = 1;
    }
  }
  p.layout.on_gpu[static_cast<std::size_t>(TensorGroup::RoutedExperts)] = total_experts > 0 && p.placed.size() == total_experts;
  return p;
}

/// The plan for the hybrid layout with `expert_budget` bytes of GPU memory for routed experts: everything else
/// that layout keeps on the GPU (attention, routers, shared experts, dense FFN, output head) is placed first and
/// not charged to the budget, nor is the KV cache (the model sizes it later, for its context); then the experts,
/// hottest first, as plan_placement places them. Without statistics none is placed.
inline PlacementPlan plan_routed_experts(const gguf::File& f, const DeepSeekHParams& h, std::uint64_t expert_budget,
                                         const ExpertStats* stats) {
  const auto everything = ~std::uint64_t{0};
  const auto fixed = plan_placement(f, h, everything, nullptr, 0).gpu_bytes;
  return plan_placement(f, h, expert_budget > everything - fixed ? everything : fixed + expert_budget, stats, 0);
}

/// One paragraph on a plan's routed experts, for a model that runs them (plan_routed_experts): how many, their
/// bytes, the traffic they serve by the statistics, and the count per MoE layer.
inline std::string format_routed_experts(const PlacementPlan& p) {
  const auto all = static_cast<unsigned long long>((p.layers - p.dense_layers) * p.experts);
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%zu of %llu routed experts on the GPU (%s), hottest first", p.placed.size(), all,
                bytes_text(p.routed_gpu_bytes()).c_str());
  out += line;
  if (!p.has_stats) return out + ": none without router statistics (hmoe-plan --calibrate gathers them)\n";
  std::snprintf(line, sizeof line, ": %.1f %% of the routed traffic in the statistics; %s of the budget left\n",
                100.0 * p.gpu_traffic_fraction(), bytes_text(p.bytes_left()).c_str());
  out += line;
  out += "  per layer (blk:experts)";
  for (auto l = static_cast<int>(p.dense_layers); l < p.layers; ++l)
    out.append(" ").append(std::to_string(l)).append(":").append(std::to_string(p.experts_on_gpu(l)));
  return out + "\n";
}

/// "24G", "1.5GiB", "800M", "123456" as bytes (binary units: K, M, G, T, with or without "iB" / "B"); empty for
/// anything else.
inline std::optional<std::uint64_t> parse_bytes(std::string_view s) {
  const std::string text(s);
  std::size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return std::nullopt;
  }
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.ends_with("IB")) unit.resize(unit.size() - 2);
  else if (unit.size() > 1 && unit.ends_with("B")) unit.pop_back();
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K") scale = 0x1p10;
  else if (unit == "M") scale = 0x1p20;
  else if (unit == "G") scale = 0x1p30;
  else if (unit == "T") scale = 0x1p40;
  const double bytes = v * scale;
  if (!(v >= 0) || scale == 0 || !(bytes < 0x1p63)) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(bytes));
}

/// The plan as text: one line per group, the routed experts' totals, the experts on the GPU per layer (compact)
/// and the totals.
inline std::string format(const PlacementPlan& p) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "GPU budget %s (%llu bytes), in placement order:\n", bytes_text(p.budget).c_str(),
                static_cast<unsigned long long>(p.budget));
  out += line;
  for (const auto& g : p.groups) {
    if (g.group && g.tensors == 0) continue;
    std::snprintf(line, sizeof line, "  %-18s %-4s %12s%s%s%s\n", g.name.c_str(), g.on_gpu ? "GPU" : "host",
                  bytes_text(g.bytes).c_str(), g.mandatory ? "  (mandatory)" : "", g.note.empty() ? "" : "  ",
                  g.note.c_str());
    out += line;
  }
  const auto moe_layers = p.layers - p.dense_layers;
  const auto all = static_cast<unsigned long long>(moe_layers * p.experts);
  std::uint64_t routed_total = 0;
  for (auto b : p.expert_bytes) routed_total += b * static_cast<std::uint64_t>(p.experts);
  if (moe_layers > 0) {
    const char* where = p.placed.empty() ? "host" : p.placed.size() == all ? "GPU" : "part";
    if (!p.has_stats) {
      std::snprintf(line, sizeof line, "  %-18s %-4s %12s  none placed: no router statistics (hmoe-plan --calibrate "
                    "gathers them)\n", "routed experts", where, bytes_text(routed_total).c_str());
    } else {
      std::snprintf(line, sizeof line, "  %-18s %-4s %12s  %zu of %llu experts (of %s), hottest first: %.1f %% of the "
                    "routed traffic\n", "routed experts", where, bytes_text(p.routed_gpu_bytes()).c_str(),
                    p.placed.size(), all, bytes_text(routed_total).c_str(), 100.0 * p.gpu_traffic_fraction());
    }
    out += line;
    if (!p.placed.empty()) {
      out += p.has_stats && p.routed_traffic ? "  experts on the GPU per layer (blk: count, share of that layer's routed traffic):\n"
                                             : "  experts on the GPU per layer (blk: count):\n";
      std::string row;
      int in_row = 0;
      for (auto l = static_cast<int>(p.dense_layers); l < p.layers; ++l) {
        const auto i = static_cast<std::size_t>(l);
        std::snprintf(line, sizeof line, "%s%3d: %3lld", in_row ? "   " : "    ", l,
                      static_cast<long long>(p.experts_on_gpu(l)));
        row += line;
        if (p.has_stats && p.routed_traffic) {
          const double share = p.layer_traffic[i] ? static_cast<double>(p.layer_gpu_traffic[i]) /
                                                        static_cast<double>(p.layer_traffic[i]) : 0.0;
          std::snprintf(line, sizeof line, " %5.1f%%", 100.0 * share);
          row += line;
        }
        if (++in_row == 6 || l + 1 == p.layers) {
          out += row + "\n";
          row.clear();
          in_row = 0;
        }
      }
    }
  }
  std::snprintf(line, sizeof line, "  total on the GPU %s (%llu bytes), %s (%llu bytes) of the budget left\n",
                bytes_text(p.gpu_bytes).c_str(), static_cast<unsigned long long>(p.gpu_bytes),
                bytes_text(p.bytes_left()).c_str(), static_cast<unsigned long long>(p.bytes_left()));
  out += line;
  return out;
}

}  // namespace hmoe
