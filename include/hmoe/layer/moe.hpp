/// \file
/// \brief A DeepSeek MoE block: routed experts chosen by the router plus always-on shared experts.
#pragma once

#include <cstdint>
#include <vector>

#include "hmoe/layer/experts.hpp"
#include "hmoe/layer/mlp.hpp"
#include "hmoe/layer/router.hpp"

namespace hmoe {

template <class Router, class Routed, class Shared>
class MoeLayer {
 public:
  MoeLayer(const gguf::File& f, const DeepSeekHParams& h, int layer)
      : hidden_(h.hidden), shared_count_(h.shared_experts), router_(f, h, layer), routed_(f, h, layer),
        shared_(make_shared(f, h, layer)) {}

  /// out (tokens × hidden) = routed experts + shared experts of the normalized input x.
  void forward(cpu::ThreadPool& pool, const float* x, std::int64_t tokens, float* out) const {
    const auto routing = router_.route(pool, x, tokens);
    std::fill_n(out, tokens * hidden_, 0.0f);
    routed_.forward(pool, x, routing, out);
    if (!shared_) return;
    std::vector<float> s(static_cast<std::size_t>(tokens * hidden_));
    shared_->forward(pool, x, tokens, s.data());
    for (std::size_t i = 0; i < s.size(); ++i) out[i] += s[i];
  }

 private:
  static std::optional<Shared> make_shared(const gguf::File& f, const DeepSeekHParams& h, int layer) {
    if (h.shared_experts == 0) return std::nullopt;
    return Shared(f, h, layer, MlpRole::SharedExperts);
  }

  std::int64_t hidden_, shared_count_;
  Router router_;
  Routed routed_;
  std::optional<Shared> shared_;
};

}  // namespace hmoe
