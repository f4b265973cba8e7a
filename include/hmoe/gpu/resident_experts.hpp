/// \file
/// \brief Resident experts: routed experts of the hybrid layout kept in GPU memory (the hot ones a placement
/// plan picks), so the pairs (token, j) routed to them run on the GPU while the CPU runs the rest.
///
/// This header is the host-side part: the option's shape and checks, and the split of a routing between the
/// two sides. The CPU gets the routing with resident ids replaced by -1 (its experts skip ids < 0); the GPU
/// groups only the resident pairs (gpu/expert_groups.hpp). Every pair runs on exactly one side, with its
/// router weight, and finish() adds the two outputs. No CUDA dependency (the CPU unit tests check it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/model/hparams.hpp"
#include "hmoe/model/memory_report.hpp"

namespace hmoe::gpu {

/// Per block (the outer index is blk.N, as PlacementPlan::gpu_experts(layer) counts), the routed expert ids
/// kept in GPU memory. A block without an entry, or with an empty one, keeps all its experts on the CPU; dense
/// blocks have none.
using ResidentExperts = std::vector<std::vector<std::int32_t>>;

/// How many routed experts the lists name in all.
inline std::int64_t resident_count(const ResidentExperts& r) {
  std::int64_t n = 0;
  for (const auto& ids : r) n += static_cast<std::int64_t>(ids.size());
  return n;
}

/// Throws std::invalid_argument, naming the block and the id, for a list on a block past the model's layers or
/// on a dense block, an id outside [0, experts), or an id given twice.
inline void check_resident_experts(const ResidentExperts& r, const DeepSeekHParams& h) {
  const std::string what = "GpuOptions::resident_experts";
  for (std::size_t l = 0; l < r.size(); ++l) {
    const auto& ids = r[l];
    if (ids.empty()) continue;
    const auto index = std::to_string(l);
    const auto blk = std::string("[").append(index).append("] (blk.").append(index).append(")");
    if (static_cast<std::int64_t>(l) >= h.layers)
      throw std::invalid_argument(what + blk + ": the model has " + std::to_string(h.layers) + " layers");
    if (static_cast<std::int64_t>(l) < h.dense_layers)
      throw std::invalid_argument(what + blk + ": a dense layer (the first " + std::to_string(h.dense_layers) +
                                  " have no routed experts)");
    std::vector<std::uint8_t> seen(static_cast<std::size_t>(h.experts), 0);
    for (const auto id : ids) {
      if (id < 0 || id >= h.experts)
        throw std::invalid_argument(what + blk + ": expert id " + std::to_string(id) + " outside [0, " +
                                    std::to_string(h.experts) + ")");
      if (seen[static_cast<std::size_t>(id)]++)
        throw std::invalid_argument(what + blk + ": expert id " + std::to_string(id) + " given twice");
    }
  }
}

/// Block `layer`'s list as a mask over its experts (1 = resident).
inline std::vector<std::uint8_t> resident_mask(std::span<const std::int32_t> ids, std::int64_t experts) {
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(experts), 0);
  for (const auto id : ids) mask.at(static_cast<std::size_t>(id)) = 1;
  return mask;
}

/// Block `layer`'s list (empty when the option has no entry for it).
inline std::span<const std::int32_t> resident_ids(const ResidentExperts& r, int layer) {
  if (layer < 0 || static_cast<std::size_t>(layer) >= r.size()) return {};
  return r[static_cast<std::size_t>(layer)];
}

/// The CPU's part of a routing, in place: the ids of resident experts become -1, which the CPU experts skip.
/// Returns how many pairs are left to the CPU.
inline std::int64_t hide_resident_pairs(std::span<std::int32_t> ids, std::span<const std::uint8_t> resident) {
  std::int64_t left = 0;
  for (auto& id : ids) {
    if (id >= 0 && static_cast<std::size_t>(id) < resident.size() && resident[static_cast<std::size_t>(id)]) id = -1;
    left += id >= 0;
  }
  return left;
}

/// Throws ModelError with the numbers when `resident_bytes` of resident experts do not fit beside
/// `layout_bytes` (everything else the layout uploads) in `free_bytes` of GPU memory.
inline void require_resident_fits(std::int64_t experts, std::uint64_t resident_bytes, std::uint64_t layout_bytes,
                                  std::uint64_t free_bytes) {
  if (layout_bytes + resident_bytes <= free_bytes) return;
  auto both = [](std::uint64_t b) { return bytes_text(b) + " (" + std::to_string(b) + " bytes)"; };
  throw ModelError("hmoe: " + std::to_string(experts) + " resident routed experts need " + both(resident_bytes) +
                   " of GPU memory beside the hybrid layout's " + both(layout_bytes) + ", " +
                   both(layout_bytes + resident_bytes) + " in all, but only " + both(free_bytes) +
                   " is free; give fewer experts (a smaller --gpu-experts-budget)");
}

}  // namespace hmoe::gpu
