/// \file
/// \brief The (token, j) pairs of a routing grouped by expert, on the host: what the GPU's grouped experts
/// (gpu::run_grouped_experts) gather, run and scatter expert by expert.
///
/// No CUDA dependency (the CPU unit tests check it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace hmoe::gpu {

/// Expert e's pairs are rows[start[e] .. start[e + 1]) (each pair's token) with weights[same range], in token
/// order.
struct ExpertGroups {
  std::vector<std::int64_t> start;  ///< experts + 1 offsets
  std::vector<std::int32_t> rows;
  std::vector<float> weights;

  std::int64_t pairs() const { return start.empty() ? 0 : start.back(); }
  std::int64_t count(std::size_t expert) const { return start[expert + 1] - start[expert]; }
};

/// Groups the pairs of a routing (expert[t · per_token + j], weight[t · per_token + j] for t < tokens) by
/// expert with a counting sort (token order kept). Pairs with an id < 0 are skipped (they run elsewhere); with a
/// non-empty `keep` (one byte per expert) only the pairs of experts whose byte is 1 are grouped. Throws
/// std::out_of_range for an id ≥ experts. The result does not alias the inputs (they may live in a staging
/// buffer the caller refills with the groups).
inline ExpertGroups group_by_expert(const std::int32_t* expert, const float* weight, std::int64_t tokens,
                                    std::int64_t per_token, std::int64_t experts,
                                    std::span<const std::uint8_t> keep = {}) {
  if (!keep.empty() && static_cast<std::int64_t>(keep.size()) != experts)
    throw std::invalid_argument("group_by_expert: the keep mask has " + std::to_string(keep.size()) +
                                " entries for " + std::to_string(experts) + " experts");
  const auto n = tokens * per_token;
  auto kept = [&](std::int32_t id) {
    if (id >= experts)
      throw std::out_of_range("group_by_expert: expert id " + std::to_string(id) + " outside [0, " +
                              std::to_string(experts) + ")");
    return id >= 0 && (keep.empty() || keep[static_cast<std::size_t>(id)] != 0);
  };
  ExpertGroups g;
  g.start.assign(static_cast<std::size_t>(experts) + 1, 0);
  for (std::int64_t i = 0; i < n; ++i)
    if (kept(expert[i])) ++g.start[static_cast<std::size_t>(expert[i]) + 1];
  for (std::size_t e = 0; e < static_cast<std::size_t>(experts); ++e) g.start[e + 1] += g.start[e];
  g.rows.resize(static_cast<std::size_t>(g.pairs()));
  g.weights.resize(g.rows.size());
  std::vector<std::int64_t> fill(g.start.begin(), g.start.end() - 1);
  for (std::int64_t i = 0; i < n; ++i) {
    if (!kept(expert[i])) continue;
    const auto slot = static_cast<std::size_t>(fill[static_cast<std::size_t>(expert[i])]++);
    g.rows[slot] = static_cast<std::int32_t>(i / per_token);
    g.weights[slot] = weight[i];
  }
  return g;
}

}  // namespace hmoe::gpu
