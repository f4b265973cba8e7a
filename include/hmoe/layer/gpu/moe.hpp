/// \file
/// \brief `MoeLayer` with its router on the GPU: the routed experts either on the CPU (the hybrid layout: the
/// normalized hidden states cross PCIe once each way per layer, and the shared experts run on the GPU while the
/// CPU runs the routed ones) or on the GPU (all-GPU layout).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <optional>
#include <vector>

#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/layer/gpu/experts.hpp"
#include "hmoe/layer/gpu/mlp.hpp"
#include "hmoe/layer/gpu/router.hpp"
#include "hmoe/layer/moe.hpp"

namespace hmoe {

template <class Router, class Routed, class Shared>
  requires std::same_as<typename Router::policies::device, GPU>
class MoeLayer<Router, Routed, Shared> {
  static_assert(std::same_as<typename Shared::policies::device, GPU>,
                "hmoe: with the router on the GPU the shared experts must be there too (Mlp<D, Placement<GPU>>)");
  static constexpr bool routed_on_cpu = std::same_as<typename Routed::policies::device, CPU>;

 public:
  using policies = typename Router::policies;
  static constexpr bool routed_on_gpu = !routed_on_cpu;

  MoeLayer(const gguf::File& f, const DeepSeekHParams& h, int layer)
      : hidden_(h.hidden), per_token_(h.experts_used), router_(f, h, layer), routed_(f, h, layer) {
    if (h.shared_experts > 0) shared_.emplace(f, h, layer, MlpRole::SharedExperts);
  }

  /// Device bytes (the routed experts count only when they are on the GPU).
  std::size_t bytes() const {
    std::size_t b = router_.bytes() + (shared_ ? shared_->bytes() : 0);
    if constexpr (!routed_on_cpu) b += routed_.bytes();
    return b;
  }

  static std::int64_t scratch_per_token(const DeepSeekHParams& h) {
    std::int64_t b = 2 * h.experts_used + h.hidden + h.experts + 2 * h.expert_ffn * std::max<std::int64_t>(1, h.shared_experts);
    if constexpr (!routed_on_cpu) b += Routed::scratch_per_token(h);
    return b;
  }

  /// out (tokens × hidden, device) = routed + shared experts of the normalized x (device).
  void forward(gpu::GpuStep& s, const float* x, float* out) const {
    const auto n = s.tokens, k = per_token_, hidden = hidden_;
    gpu::Scratch::Frame frame(s.scratch);
    auto* ids = frame.take<std::int32_t>(n * k);
    auto* weights = frame.take<float>(n * k);
    router_.route(s, x, ids, weights);
    const auto bytes_nk = static_cast<std::size_t>(n * k);
    cuda::copy_async(s.host.ids.data(), ids, bytes_nk * sizeof(std::int32_t), s.stream);
    cuda::copy_async(s.host.weights.data(), weights, bytes_nk * sizeof(float), s.stream);
    if constexpr (routed_on_cpu) {
      cuda::copy_async(s.host.x.data(), x, static_cast<std::size_t>(n * hidden) * sizeof(float), s.stream);
      if (s.graph) return forward_in_graph(s, x, out, frame);
    }
    s.copied.record(s.stream);

    // Queued now, so the GPU runs the shared experts while the host works on the routed ones below.
    float* shared_out = shared_ ? frame.take<float>(n * hidden) : nullptr;
    if (shared_) shared_->forward(s, x, shared_out);

    s.copied.synchronize();
    if constexpr (routed_on_cpu) {
      cpu_experts(s.pool, s.host, n);
      cuda::copy_async(out, s.host.out.data(), static_cast<std::size_t>(n * hidden) * sizeof(float), s.stream);
    } else {
      const auto* hid = s.host.ids.as<const std::int32_t>();
      const auto* hw = s.host.weights.as<const float>();
      const Routing routing{n, k, std::vector<std::int32_t>(hid, hid + n * k), std::vector<float>(hw, hw + n * k)};
      cuda::fill_zero(out, n * hidden, s.stream);
      routed_.forward(s, x, routing, out);
    }
    if (shared_) cuda::add_inplace(out, shared_out, n * hidden, s.stream);
  }

 private:
  /// The routed experts on the CPU over what the staging buffers hold: routing and x in, host.out written.
  void cpu_experts(cpu::ThreadPool& pool, gpu::HostStaging& host, std::int64_t n) const {
    const auto k = per_token_;
    const auto* hid = host.ids.as<const std::int32_t>();
    const auto* hw = host.weights.as<const float>();
    const Routing routing{n, k, std::vector<std::int32_t>(hid, hid + n * k), std::vector<float>(hw, hw + n * k)};
    float* host_out = host.out.as<float>();
    std::fill_n(host_out, n * hidden_, 0.0f);
    routed_.forward(pool, host.x.as<const float>(), routing, host_out);
  }

  /// What the captured host function needs; lives in the layer, so as long as the graph does.
  /// (The thread pool is read from the staging at run time: a graph outlives the call that captured it.)
  struct HostCall {
    const MoeLayer* layer = nullptr;
    gpu::HostStaging* host = nullptr;
    std::int64_t tokens = 0;
  };
  static void run_host_call(void* p) {
    const auto& c = *static_cast<const HostCall*>(p);
    c.layer->cpu_experts(*c.host->pool, *c.host, c.tokens);
  }

  /// Graph capture: the shared experts, then the CPU experts as a host function on the stream (the graph runs
  /// them when the copies before it are done), then their output back.
  void forward_in_graph(gpu::GpuStep& s, const float* x, float* out, gpu::Scratch::Frame& frame) const {
    const auto n = s.tokens, hidden = hidden_;
    float* shared_out = shared_ ? frame.take<float>(n * hidden) : nullptr;
    if (shared_) shared_->forward(s, x, shared_out);
    call_ = {this, &s.host, n};
    cuda::launch_host_function(s.stream, &MoeLayer::run_host_call, &call_);
    cuda::copy_async(out, s.host.out.data(), static_cast<std::size_t>(n * hidden) * sizeof(float), s.stream);
    if (shared_) cuda::add_inplace(out, shared_out, n * hidden, s.stream);
  }

  mutable HostCall call_;
  std::int64_t hidden_, per_token_;
  Router router_;
  Routed routed_;
  std::optional<Shared> shared_;
};

}  // namespace hmoe
