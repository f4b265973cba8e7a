/// \file
/// \brief DeepSeek's top-k expert selection on the GPU, from router logits to expert ids and weights, with the
/// semantics of layer/router.hpp: V2 softmax (a group scores its best) or V3 sigmoid + selection bias (a group
/// scores the sum of its two best), group-limited, ties to the lower index, optional normalization, then scale.
#pragma once

#include <cstdint>

namespace hmoe::cuda {

class Stream;

struct RouterConfig {
  int experts = 0;            ///< n (at most 1024)
  int experts_used = 0;       ///< k (at most n)
  int groups = 1;             ///< divides n; at most 64
  int groups_used = 1;        ///< at most groups
  bool sigmoid = false;       ///< false: softmax (V2), true: sigmoid (V3)
  bool normalize = false;     ///< divide the chosen weights by their sum (+1e-20)
  float scale = 1.0f;         ///< multiplies the final weights
};

/// Throws std::invalid_argument naming the first bad field.
void validate(const RouterConfig& c);

/// logits (tokens × experts, f32, device); bias (experts, f32, device) or null: it steers the choice only.
/// ids and weights (tokens × experts_used, device): best first, as the CPU router orders them.
void route_topk(const float* logits, const float* bias, std::int32_t* ids, float* weights, std::int64_t tokens,
                const RouterConfig& c, const Stream& s);

}  // namespace hmoe::cuda
