/// \file
/// \brief `MoeLayer` with its router on the GPU: the routed experts either on the CPU (the hybrid layout: the
/// normalized hidden states cross PCIe once each way per layer, and the shared experts run on the GPU while the
/// CPU runs the routed ones) or on the GPU (all-GPU layout). In the hybrid layout some routed experts may also
/// be resident in GPU memory (gpu/resident_experts.hpp): their pairs run on the GPU while the CPU runs the rest.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/gpu/expert_groups.hpp"
#include "hmoe/gpu/expert_offload.hpp"
#include "hmoe/gpu/resident_experts.hpp"
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

  /// The hybrid layout with the routed experts `resident` (ids, checked by check_resident_experts) also in GPU
  /// memory, as the file stores them (the matrices the offload path views in its staged copy of the layer).
  MoeLayer(const gguf::File& f, const DeepSeekHParams& h, int layer, std::span<const std::int32_t> resident)
    requires routed_on_cpu
      : MoeLayer(f, h, layer) {
    if (resident.empty()) return;
    resident_mask_ = gpu::resident_mask(resident, h.experts);
    resident_.resize(static_cast<std::size_t>(h.experts));
    for (const auto e : resident)
      for (std::size_t i = 0; i < 3; ++i) {
        const auto& p = tensors_.parts[i];
        resident_[static_cast<std::size_t>(e)][i] = cuda::DeviceMatrix::upload(
            p.name, p.type, p.rows, p.cols, p.host + static_cast<std::size_t>(e) * p.expert_bytes,
            p.expert_bytes / static_cast<std::size_t>(p.rows));
      }
  }

  /// Whether some routed experts of this (hybrid) layer are resident in GPU memory.
  bool has_resident_experts() const { return !resident_mask_.empty(); }
  /// How many.
  std::int64_t resident_expert_count() const {
    return std::count(resident_mask_.begin(), resident_mask_.end(), std::uint8_t{1});
  }

  /// The routed experts' tensors in the file (what an ExpertOffload stages for long prompts).
  const gpu::ExpertTensors& expert_tensors() const requires routed_on_cpu { return tensors_; }

  /// Device bytes (the routed experts count when they are on the GPU: all of them, or the resident ones).
  std::size_t bytes() const {
    std::size_t b = router_.bytes() + (shared_ ? shared_->bytes() : 0);
    if constexpr (!routed_on_cpu) b += routed_.bytes();
    for (const auto& m : resident_) b += m[0].bytes() + m[1].bytes() + m[2].bytes();
    return b;
  }

  static std::int64_t scratch_per_token(const DeepSeekHParams& h) {
    std::int64_t b = 2 * h.experts_used + h.hidden + h.experts + 2 * h.expert_ffn * std::max<std::int64_t>(1, h.shared_experts);
    if constexpr (!routed_on_cpu) b += Routed::scratch_per_token(h);
    else b += 2 * h.experts_used + 3 * h.hidden + 2 * h.expert_ffn;  // grouped experts on the GPU, resident_out
    return b;
  }

  /// Device scratch one MoE step keeps between its stages (taken from the caller's frame).
  struct Handoff {
    std::int32_t* ids = nullptr;
    float* weights = nullptr;
    float* shared_out = nullptr;  ///< null without shared experts
    float* resident_out = nullptr;  ///< the resident experts' output; null without them
  };
  Handoff handoff(gpu::Scratch::Frame& frame, std::int64_t tokens) const {
    Handoff h;
    h.ids = frame.take<std::int32_t>(tokens * per_token_);
    h.weights = frame.take<float>(tokens * per_token_);
    if (shared_) h.shared_out = frame.take<float>(tokens * hidden_);
    if (has_resident_experts()) h.resident_out = frame.take<float>(tokens * hidden_);
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
      run_gpu_experts(s, x, h);
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
    // Zero even if run_gpu_experts is skipped: the CPU then runs every pair and finish adds nothing.
    if (h.resident_out) cuda::fill_zero(h.resident_out, s.tokens * hidden_, s.stream);
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

  /// Stage 2, GPU part (once s.copied is done, before run_cpu_experts): the pairs routed to resident experts are
  /// queued on the stream into h.resident_out, then their ids in the staging's routing become -1, so the CPU
  /// skips them and the GPU computes them while the CPU runs the rest. Does nothing without resident experts.
  /// Their grouped rows are staged after the routing in the staging's ids/weights buffers (the model reserves
  /// 2 × tokens × experts_used there).
  void run_gpu_experts(gpu::GpuStep& s, const float* x, const Handoff& h) const
    requires routed_on_cpu
  {
    if (!has_resident_experts()) return;
    const auto nk = s.tokens * per_token_;
    if (s.host.ids.bytes() < static_cast<std::size_t>(2 * nk) * sizeof(std::int32_t) ||
        s.host.weights.bytes() < static_cast<std::size_t>(2 * nk) * sizeof(float))
      throw std::logic_error("hmoe: the host staging has no room for the resident experts' rows of " +
                             std::to_string(s.tokens) + " tokens (the model reserves too little)");
    auto* ids = s.host.ids.as<std::int32_t>();
    auto* weights = s.host.weights.as<float>();
    const auto groups = gpu::group_by_expert(ids, weights, s.tokens, per_token_, tensors_.experts, resident_mask_);
    gpu::run_expert_groups<Shared>(s, x, s.tokens, groups, ids + nk, weights + nk, hidden_, h.resident_out,
                                   [&](std::size_t e) {
                                     const auto& m = resident_[e];
                                     return std::tie(m[0], m[1], m[2]);
                                   });
    gpu::hide_resident_pairs(std::span(ids, static_cast<std::size_t>(nk)), resident_mask_);
  }

  /// Stage 2, CPU: the routed experts over what the staging holds (once s.copied is done); writes host.out.
  /// Pairs whose id is -1 (resident experts, after run_gpu_experts) are skipped.
  void run_cpu_experts(cpu::ThreadPool& pool, gpu::HostStaging& host, std::int64_t n) const
    requires routed_on_cpu
  {
    float* host_out = host.out.as<float>();
    std::fill_n(host_out, n * hidden_, 0.0f);
    routed_.forward(pool, host.x.as<const float>(), n, per_token_, host.ids.as<const std::int32_t>(),
                    host.weights.as<const float>(), host_out);
  }

  /// Stage 3, GPU: the CPU experts' output back into out, plus the resident experts' and the shared experts'
  /// (queued here unless begin queued them: `shared_ran`).
  void finish(gpu::GpuStep& s, const float* x, const Handoff& h, bool shared_ran, float* out) const
    requires routed_on_cpu
  {
    const auto n = s.tokens;
    cuda::copy_async(out, s.host.out.data(), static_cast<std::size_t>(n * hidden_) * sizeof(float), s.stream);
    if (h.resident_out) cuda::add_inplace(out, h.resident_out, n * hidden_, s.stream);
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
    // Resident experts group their tokens on the host each step, which a captured graph cannot (the model
    // refuses the combination at load; this is the backstop).
    if (has_resident_experts())
      throw std::logic_error("hmoe: a CUDA graph cannot run resident experts (GpuOptions::cuda_graph with "
                             "GpuOptions::resident_experts)");
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
  std::vector<std::uint8_t> resident_mask_;  ///< per expert, 1 = resident on the GPU; empty without any
  std::vector<std::array<cuda::DeviceMatrix, 3>> resident_;  ///< by expert id: gate, up, down (empty if not resident)
};

}  // namespace hmoe
