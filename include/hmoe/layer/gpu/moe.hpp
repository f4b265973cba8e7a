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
#include "hmoe/gpu/expert_offload.hpp"
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
    if constexpr (routed_on_cpu) tensors_ = gpu::ExpertTensors(f, h, layer);
  }

  /// The routed experts' tensors in the file (what an ExpertOffload stages for long prompts).
  const gpu::ExpertTensors& expert_tensors() const requires routed_on_cpu { return tensors_; }

  /// Device bytes (the routed experts count only when they are on the GPU).
  std::size_t bytes() const {
    std::size_t b = router_.bytes() + (shared_ ? shared_->bytes() : 0);
    if constexpr (!routed_on_cpu) b += routed_.bytes();
    return b;
  }

  static std::int64_t scratch_per_token(const DeepSeekHParams& h) {
    std::int64_t b = 2 * h.experts_used + h.hidden + h.experts + 2 * h.expert_ffn * std::max<std::int64_t>(1, h.shared_experts);
    if constexpr (!routed_on_cpu) b += Routed::scratch_per_token(h);
    else b += 2 * h.experts_used + 2 * h.hidden + 2 * h.expert_ffn;  // finish_on_gpu (grouped experts)
    return b;
  }

  /// Device scratch one MoE step keeps between its stages (taken from the caller's frame).
  struct Handoff {
    std::int32_t* ids = nullptr;
    float* weights = nullptr;
    float* shared_out = nullptr;  ///< null without shared experts
  };
  Handoff handoff(gpu::Scratch::Frame& frame, std::int64_t tokens) const {
    Handoff h;
    h.ids = frame.take<std::int32_t>(tokens * per_token_);
    h.weights = frame.take<float>(tokens * per_token_);
    if (shared_) h.shared_out = frame.take<float>(tokens * hidden_);
    return h;
  }

  /// out (tokens × hidden, device) = routed + shared experts of the normalized x (device). Waits on the host for
  /// the routing (and, in the hybrid layout, runs the CPU experts on the calling thread).
  void forward(gpu::GpuStep& s, const float* x, float* out) const {
    gpu::Scratch::Frame frame(s.scratch);
    const auto h = handoff(frame, s.tokens);
    if constexpr (routed_on_cpu) {
      if (s.graph) return forward_in_graph(s, x, out, h);
      begin(s, x, h, true);
      s.copied.synchronize();
      run_cpu_experts(s.pool, s.host, s.tokens);
      finish(s, x, h, true, out);
    } else {
      route_to_host(s, x, h);
      if (shared_) shared_->forward(s, x, h.shared_out);
      s.copied.synchronize();
      const auto n = s.tokens;
      cuda::fill_zero(out, n * hidden_, s.stream);
      routed_.forward(s, x, n, per_token_, s.host.ids.as<const std::int32_t>(), s.host.weights.as<const float>(), out);
      if (shared_) cuda::add_inplace(out, h.shared_out, n * hidden_, s.stream);
    }
  }

  // The hybrid layout's three stages, for a pipeline that interleaves them with other work.

  /// Stage 1, GPU: the router, then the normalized x and the routing copied to the host staging (s.copied marks
  /// them done). With `shared_now` the shared experts are queued right after, to run while the CPU works.
  void begin(gpu::GpuStep& s, const float* x, const Handoff& h, bool shared_now) const
    requires routed_on_cpu
  {
    cuda::copy_async(s.host.x.data(), x, static_cast<std::size_t>(s.tokens * hidden_) * sizeof(float), s.stream);
    route_to_host(s, x, h);
    if (shared_ && shared_now) shared_->forward(s, x, h.shared_out);
  }

  /// Stage 1 when the routed experts will run on the GPU (finish_on_gpu): only the routing goes to the host.
  void begin_offloaded(gpu::GpuStep& s, const float* x, const Handoff& h) const
    requires routed_on_cpu
  {
    route_to_host(s, x, h);
    if (shared_) shared_->forward(s, x, h.shared_out);
  }

  /// Stages 2 and 3 on the GPU (once s.copied is done): the routed experts over this layer's weights staged in
  /// `slot` of `offload`, plus the shared experts, into out.
  void finish_on_gpu(gpu::GpuStep& s, const float* x, const Handoff& h, float* out, gpu::ExpertOffload& offload,
                     int slot) const
    requires routed_on_cpu
  {
    const auto n = s.tokens;
    cuda::fill_zero(out, n * hidden_, s.stream);
    offload.wait_in(slot, s.stream);
    gpu::run_grouped_experts<Shared>(s, x, n, per_token_, s.host.ids.as<const std::int32_t>(),
                                     s.host.weights.as<const float>(), tensors_.experts, hidden_, out,
                                     [&](std::size_t e) { return offload.matrices(slot, tensors_, static_cast<std::int64_t>(e)); });
    offload.release(slot, s.stream);
    if (shared_) cuda::add_inplace(out, h.shared_out, n * hidden_, s.stream);
  }

  /// Stage 2, CPU: the routed experts over what the staging holds (once s.copied is done); writes host.out.
  void run_cpu_experts(cpu::ThreadPool& pool, gpu::HostStaging& host, std::int64_t n) const
    requires routed_on_cpu
  {
    float* host_out = host.out.as<float>();
    std::fill_n(host_out, n * hidden_, 0.0f);
    routed_.forward(pool, host.x.as<const float>(), n, per_token_, host.ids.as<const std::int32_t>(),
                    host.weights.as<const float>(), host_out);
  }

  /// Stage 3, GPU: the CPU experts' output back into out, plus the shared experts (queued here unless begin
  /// queued them: `shared_ran`).
  void finish(gpu::GpuStep& s, const float* x, const Handoff& h, bool shared_ran, float* out) const
    requires routed_on_cpu
  {
    const auto n = s.tokens;
    cuda::copy_async(out, s.host.out.data(), static_cast<std::size_t>(n * hidden_) * sizeof(float), s.stream);
    if (!shared_) return;
    if (!shared_ran) shared_->forward(s, x, h.shared_out);
    cuda::add_inplace(out, h.shared_out, n * hidden_, s.stream);
  }

 private:
  /// The router, with its ids and weights copied to the host staging; records s.copied after them.
  void route_to_host(gpu::GpuStep& s, const float* x, const Handoff& h) const {
    router_.route(s, x, h.ids, h.weights);
    const auto nk = static_cast<std::size_t>(s.tokens * per_token_);
    cuda::copy_async(s.host.ids.data(), h.ids, nk * sizeof(std::int32_t), s.stream);
    cuda::copy_async(s.host.weights.data(), h.weights, nk * sizeof(float), s.stream);
    s.copied.record(s.stream);
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
    c.layer->run_cpu_experts(*c.host->pool, *c.host, c.tokens);
  }

  /// Graph capture: stage 1, the CPU experts as a host function on the stream (the graph runs them when the
  /// copies before it are done), stage 3.
  void forward_in_graph(gpu::GpuStep& s, const float* x, float* out, const Handoff& h) const {
    begin(s, x, h, true);
    call_ = {this, &s.host, s.tokens};
    cuda::launch_host_function(s.stream, &MoeLayer::run_host_call, &call_);
    finish(s, x, h, true, out);
  }

  mutable HostCall call_;
  std::int64_t hidden_, per_token_;
  Router router_;
  Routed routed_;
  std::optional<Shared> shared_;
  gpu::ExpertTensors tensors_;  ///< hybrid layout only
};

}  // namespace hmoe
