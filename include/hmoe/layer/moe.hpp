/// \file
/// \brief A DeepSeek MoE block: routed experts chosen by the router plus always-on shared experts.
///
/// The CPU block can report each forward's routing to a `RoutingObserver` (router statistics for placement:
/// model/expert_stats.hpp). An observer is installed for the calling thread by an `ObserveRouting` scope, so the
/// model types need no change and a model that is not observed pays one thread-local load and branch per MoE
/// layer forward.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "hmoe/layer/experts.hpp"
#include "hmoe/layer/mlp.hpp"
#include "hmoe/layer/router.hpp"

namespace hmoe {

/// Sees the routing decisions of the CPU MoE layers that run on a thread while it is installed there.
class RoutingObserver {
 public:
  /// Called by the MoE layer of block `layer` (the GGUF's blk index) after its router ran, before the experts
  /// run, on the thread that called the model's forward.
  virtual void observe(int layer, const Routing& routing) = 0;

 protected:
  ~RoutingObserver() = default;
  RoutingObserver() = default;
  RoutingObserver(const RoutingObserver&) = default;
  RoutingObserver& operator=(const RoutingObserver&) = default;
};

/// Installs `observer` for the CPU MoE forwards of the calling thread for the scope's lifetime. Scopes nest:
/// the previous observer (or none) comes back when the scope ends.
class ObserveRouting {
 public:
  explicit ObserveRouting(RoutingObserver& observer) noexcept : previous_(std::exchange(current_, &observer)) {}
  ~ObserveRouting() { current_ = previous_; }
  ObserveRouting(const ObserveRouting&) = delete;
  ObserveRouting& operator=(const ObserveRouting&) = delete;

  /// The observer installed on this thread, or nullptr.
  static RoutingObserver* current() noexcept { return current_; }

 private:
  static inline thread_local RoutingObserver* current_ = nullptr;
  RoutingObserver* previous_;
};

template <class Router, class Routed, class Shared>
class MoeLayer {
 public:
  MoeLayer(const gguf::File& f, const DeepSeekHParams& h, int layer)
      : layer_(layer), hidden_(h.hidden), shared_count_(h.shared_experts), router_(f, h, layer), routed_(f, h, layer),
        shared_(make_shared(f, h, layer)) {}

  /// out (tokens × hidden) = routed experts + shared experts of the normalized input x.
  void forward(cpu::ThreadPool& pool, const float* x, std::int64_t tokens, float* out) const {
    const auto routing = router_.route(pool, x, tokens);
    if (auto* observer = ObserveRouting::current()) observer->observe(layer_, routing);
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

  int layer_;
  std::int64_t hidden_, shared_count_;
  Router router_;
  Routed routed_;
  std::optional<Shared> shared_;
};

}  // namespace hmoe
