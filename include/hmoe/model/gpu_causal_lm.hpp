/// \file
/// \brief `CausalLM` whose blocks run on the GPU: the residual stream lives in device memory from the embedding
/// (gathered on the host, where the table stays) to the logits; routed experts placed on the CPU get the hidden
/// states over PCIe inside their MoE layer.
///
/// Same interface as the CPU model (load, make_cache, forward), so the examples take either. Not thread-safe:
/// one forward at a time per model (it owns the stream and the scratch).
///
/// A forward pass runs as Boost.Asio coroutines on the calling thread, one per micro-batch ("lane"): each
/// queues its GPU work on the one stream, `co_await`s the routing's copy to the host, runs its routed experts on
/// the CPU pool, and queues the rest. `PipelineP` (policy/pipeline.hpp) says how much of that overlaps.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/cuda/device.hpp"
#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/rms_norm.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/gpu/kv_cache.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/gpu/weights.hpp"
#include "hmoe/model/causal_lm.hpp"
#include "hmoe/model/gpu_decoder_layer.hpp"
#include "hmoe/model/memory_report.hpp"
#include "hmoe/pipeline/gpu_wait.hpp"
#include "hmoe/pipeline/run_lanes.hpp"
#include "hmoe/pipeline/trace.hpp"
#include "hmoe/pipeline/turns.hpp"
#include "hmoe/policy/pipeline.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace hmoe {

template <model_dims D, class DenseBlock, class MoeBlock, pipeline_policy PipelineP>
  requires(DenseBlock::on_gpu)
class CausalLM<D, DenseBlock, MoeBlock, PipelineP> {
  static_assert(MoeBlock::on_gpu, "hmoe: the dense and the MoE blocks must both have their attention on the GPU");

 public:
  using dims = D;
  using Cache = gpu::GpuKvCache;
  /// Called during load with the memory report's text, then one line per uploaded block.
  using Progress = std::function<void(const std::string&)>;

  static CausalLM load(gguf::File file, gpu::GpuOptions options = {}, Progress progress = {}) {
    return CausalLM(std::move(file), options, std::move(progress));
  }

  const DeepSeekHParams& hparams() const { return h_; }
  const gguf::File& file() const { return file_; }
  const gpu::GpuOptions& options() const { return opts_; }
  /// Device bytes of the weights uploaded at load.
  std::size_t gpu_weight_bytes() const { return weight_bytes_; }

  /// A cache for `context` positions in GPU memory; refused with numbers when it does not fit in what is free.
  Cache make_cache(std::int64_t context) const {
    if (context <= 0) throw std::invalid_argument("context must be > 0, got " + std::to_string(context));
    const auto bytes = kv_cache_bytes(h_, context, opts_.kv == gpu::KvFormat::BF16 ? 2 : 4);
    const auto free = device_.free_memory();
    if (bytes > free)
      throw ModelError("hmoe: a KV cache for " + std::to_string(context) + " tokens needs " + bytes_text(bytes) +
                       " of GPU memory, but only " + bytes_text(free) + " is free; shorten --ctx" +
                       (opts_.kv == gpu::KvFormat::F32 ? std::string(" or use the bf16 cache") : std::string()));
    device_.make_current();
    return Cache(h_.layers, context, h_.kv_lora_rank, h_.qk_rope, h_.heads, opts_.kv);
  }

  /// Records every following forward pass into `trace` (null: stop). The trace must outlive the passes.
  void set_trace(pipeline::Trace* trace) const { trace_ = trace; }

  /// Micro-batches a prompt of `tokens` tokens runs in: the policy's count (or GpuOptions::micro_batches), fewer
  /// when a micro-batch would fall under GpuOptions::min_micro_batch tokens, one for layouts without CPU work.
  int micro_batches(std::int64_t tokens) const {
    if constexpr (MoeBlock::routed_on_gpu || !mode::overlap) return 1;
    else {
      const std::int64_t want = opts_.micro_batches > 0 ? opts_.micro_batches : mode::micro_batches;
      return static_cast<int>(std::clamp<std::int64_t>(tokens / opts_.min_micro_batch, 1, want));
    }
  }

  std::vector<float> forward(cpu::ThreadPool& pool, std::span<const std::int32_t> tokens, Cache& cache,
                             Logits which = Logits::All) const {
    const auto total = static_cast<std::int64_t>(tokens.size()), vocab = h_.vocab;
    if (total == 0) throw std::invalid_argument("forward needs at least one token");
    cache.reserve(total);
    for (std::int64_t t = 0; t < total; ++t) {
      const auto id = tokens[static_cast<std::size_t>(t)];
      if (id < 0 || id >= vocab)
        throw std::out_of_range("token id " + std::to_string(id) + " at index " + std::to_string(t) +
                                " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    device_.make_current();
    for (auto& lane : lanes_) lane.host.pool = &pool;
    if (trace_) {
      stream_.synchronize();
      trace_->begin_pass(stream_);
    }
    const bool decode = !MoeBlock::routed_on_gpu && total == 1 && which == Logits::Last;
    const bool graph = opts_.cuda_graph && decode;
    const bool layer_graphs = opts_.layer_graphs && decode && !graph;
    std::vector<float> logits(static_cast<std::size_t>((which == Logits::All ? total : 1) * vocab));
    for (std::int64_t c0 = 0; c0 < total; c0 += opts_.max_batch_tokens) {
      const auto n = std::min(opts_.max_batch_tokens, total - c0);
      const bool last_chunk = c0 + n == total;
      const std::int64_t first = !(which == Logits::All || last_chunk) ? n : which == Logits::Last ? n - 1 : 0;
      const auto chunk = tokens.subspan(static_cast<std::size_t>(c0), static_cast<std::size_t>(n));
      float* dst = logits.data() + (which == Logits::All ? c0 * vocab : 0);
      if (graph) run_graph(pool, chunk, cache, dst);
      else if (layer_graphs) {
        if constexpr (!MoeBlock::routed_on_gpu) run_layer_graphs(pool, chunk, cache, dst);
      } else {
        run_chunk(pool, chunk, cache, first, dst);
      }
      cache.commit(n);
    }
    if (trace_) trace_->end_pass();
    return logits;
  }

 private:
  CausalLM(gguf::File file, const gpu::GpuOptions& o, Progress progress)
      : file_(std::move(file)), h_(read_hparams(file_, o.overrides)), opts_(o), device_(activate(o.device)) {
    check_dims<D>(h_, file_.path().string());
    gguf::require_types(file_, quant::dequantizable_types());
    if (opts_.max_batch_tokens < 1) throw std::invalid_argument("max_batch_tokens must be ≥ 1");
    if (opts_.kv == gpu::KvFormat::BF16 && (h_.kv_lora_rank != 512 || h_.qk_rope != 64))
      throw ModelError(file_.path().string() + ": the bf16 paged KV cache needs kv_lora_rank 512 and rope 64, this "
                       "file has " + std::to_string(h_.kv_lora_rank) + " + " + std::to_string(h_.qk_rope) +
                       "; use the f32 cache");
    device_.make_current();
    const auto& resident = opts_.resident_experts;
    const auto resident_n = gpu::resident_count(resident);
    if constexpr (MoeBlock::routed_on_gpu)
      if (resident_n > 0)
        throw std::invalid_argument("GpuOptions::resident_experts is for the hybrid layout: this one keeps every "
                                    "routed expert on the GPU already");
    gpu::check_resident_experts(resident, h_);
    if (resident_n > 0 && opts_.cuda_graph)
      throw std::invalid_argument("GpuOptions::resident_experts cannot run in a CUDA graph (cuda_graph): their "
                                  "tokens are grouped by expert on the host every step; turn one of them off");

    // What goes where, checked against the device before anything is uploaded.
    auto plan = LayoutPlan::hybrid();
    if constexpr (MoeBlock::routed_on_gpu) plan = LayoutPlan::all_gpu();
    plan.on_gpu[static_cast<std::size_t>(TensorGroup::Embedding)] = false;  // rows are gathered on the host
    plan.kv_bytes_per_value = opts_.kv == gpu::KvFormat::BF16 ? 2 : 4;
    const auto report = memory_report(file_, h_, plan, 0);
    if (progress) progress(format(report, plan));
    require_fits(report, device_.free_memory(), ~std::uint64_t{0}, "this layout of " + file_.path().filename().string());
    std::uint64_t resident_bytes = 0;
    for (int l = 0; l < h_.layers && resident_n > 0; ++l)
      if (const auto ids = gpu::resident_ids(resident, l); !ids.empty())
        resident_bytes += gpu::ExpertTensors(file_, h_, l).bytes / static_cast<std::uint64_t>(h_.experts) * ids.size();
    gpu::require_resident_fits(resident_n, resident_bytes, report.gpu_bytes, device_.free_memory());

    embedding_ = matrix(file_, "token_embd.weight", h_.vocab, h_.hidden);
    output_norm_ = gpu::to_device(vector_f32(file_, "output_norm.weight", h_.hidden));
    const auto head_weights = file_.find_tensor("output.weight")
                                  ? matrix(file_, "output.weight", h_.vocab, h_.hidden)
                                  : embedding_;
    // The head is read once per decode step in full (vocab × hidden). Stored as Q6_K it goes through the block
    // GEMV, which decodes one whole block per lane and is slow: on the H100 ~4 ms a step for V2-Lite's head, ~10 ms
    // for V3's (tg 34.9 vs 53.3 tok/s on a 7-layer V3-width model). As f32 it streams at full bandwidth with
    // bit-identical values, so it is widened when that costs at most an eighth of the free memory.
    const auto f32_bytes = static_cast<std::uint64_t>(h_.vocab * h_.hidden) * sizeof(float);
    const bool widen = head_weights.type != GgmlType::F32 && f32_bytes <= device_.free_memory() / 8;
    output_ = widen ? gpu::to_device_f32(head_weights) : gpu::to_device<Stored>(head_weights);
    if (widen && progress) progress("output head as f32 on the GPU (" + bytes_text(f32_bytes) + ") for decode speed");
    weight_bytes_ = output_norm_.bytes() + output_.bytes();
    for (int l = 0; l < h_.layers; ++l) {
      if (l < h_.dense_layers) weight_bytes_ += dense_.emplace_back(file_, h_, l).bytes();
      else if constexpr (MoeBlock::routed_on_gpu) weight_bytes_ += moe_.emplace_back(file_, h_, l).bytes();
      else weight_bytes_ += moe_.emplace_back(file_, h_, l, gpu::resident_ids(resident, l)).bytes();
      if (progress) progress("uploaded block " + std::to_string(l + 1) + " of " + std::to_string(h_.layers));
    }

    if (resident_n > 0 && progress)
      progress(std::to_string(resident_n) + " routed experts resident on the GPU (" + bytes_text(resident_bytes) +
               "): their tokens run there, the rest on the CPU");
    if constexpr (!MoeBlock::routed_on_gpu) {
      std::size_t layer_bytes = 0;
      for (const auto& l : moe_) layer_bytes = std::max(layer_bytes, l.ffn().expert_tensors().bytes);
      if (opts_.expert_offload_min_tokens < 0)
        throw std::invalid_argument("expert_offload_min_tokens must be ≥ 0 (0 = never)");
      if (opts_.expert_offload_min_tokens > 0 && layer_bytes > 0) {
        // Two slots; leave most of the device to the KV cache.
        if (2 * layer_bytes <= device_.free_memory() / 2) {
          offload_.emplace(layer_bytes);
          if (progress) progress("prompts of " + std::to_string(opts_.expert_offload_min_tokens) +
                                 "+ tokens run the routed experts on the GPU (2 × " + bytes_text(layer_bytes) +
                                 " of staging)");
        } else if (progress) {
          progress("routed experts stay on the CPU for prompts too: two layers of them (2 × " +
                   bytes_text(layer_bytes) + ") would take more than half the free GPU memory");
        }
      }
    }
    if (opts_.min_micro_batch < 1)
      throw std::invalid_argument("min_micro_batch must be ≥ 1, got " + std::to_string(opts_.min_micro_batch));
    if (opts_.micro_batches < 0 || opts_.micro_batches > 8)
      throw std::invalid_argument("micro_batches must be 0 (the pipeline policy's) to 8, got " +
                                  std::to_string(opts_.micro_batches));
    const auto per_token = std::max(DenseBlock::scratch_per_token(h_), MoeBlock::scratch_per_token(h_));
    const auto head = h_.hidden + h_.vocab;
    const int lanes = std::max<int>(mode::micro_batches, opts_.micro_batches);
    for (int b = 0; b < lanes; ++b) {
      auto& lane = lanes_.emplace_back();
      // Lane 0 holds a whole chunk (one micro-batch); with two or more, none has more than half of one.
      const auto capacity = b == 0 ? opts_.max_batch_tokens : (opts_.max_batch_tokens + 1) / 2;
      lane.scratch.reserve(static_cast<std::size_t>(capacity * std::max(per_token, head)) * sizeof(float) +
                           (std::size_t{1} << 20));
      // Resident experts stage their grouped rows after the routing (MoeLayer::run_gpu_experts): twice the pairs.
      lane.host.reserve(capacity, h_.hidden, (resident_n > 0 ? 2 : 1) * h_.experts_used, h_.vocab);
      lane.positions = cuda::Buffer(static_cast<std::size_t>(capacity + 1) * sizeof(std::int32_t));
    }
    x_ = cuda::Buffer(static_cast<std::size_t>(opts_.max_batch_tokens * h_.hidden) * sizeof(float));
  }

  /// The device, made current before any member that allocates on it is built.
  static cuda::Device activate(int index) {
    cuda::Device d(index);
    d.make_current();
    return d;
  }

  gguf::File file_;
  DeepSeekHParams h_;
  gpu::GpuOptions opts_;
  cuda::Device device_;
  WeightMatrix embedding_;
  cuda::Buffer output_norm_;
  cuda::DeviceMatrix output_;
  using mode = typename PipelineP::mode;

  using Lane = gpu::Lane;

  /// Rows [begin, end) of the chunk, at cache positions pos0 + begin ..: embedding rows and positions into the
  /// lane's pinned staging.
  void stage_inputs(Lane& lane, std::span<const std::int32_t> chunk, std::int64_t begin, std::int64_t end,
                    std::int64_t pos0) const {
    auto* hx = lane.host.x.as<float>();
    auto* hpos = lane.host.positions.as<std::int32_t>();
    for (std::int64_t t = begin; t < end; ++t) {
      embedding_.dequantize_row(chunk[static_cast<std::size_t>(t)], hx + (t - begin) * h_.hidden);
      hpos[t - begin] = static_cast<std::int32_t>(pos0 + t);
    }
    hpos[end - begin] = static_cast<std::int32_t>(pos0 + end);
  }

  gpu::GpuStep step_for(cpu::ThreadPool& pool, Lane& lane, std::int64_t tokens, std::int64_t pos0) const {
    return gpu::GpuStep{.stream = stream_, .matmul_ws = matmul_ws_, .head_gemm = head_gemm_,
                        .precision = opts_.precision, .scratch = lane.scratch, .host = lane.host, .pool = pool,
                        .tokens = tokens, .pos0 = pos0, .positions = lane.positions.as<const std::int32_t>(),
                        .seq_len = lane.positions.as<const std::int32_t>() + tokens, .copied = lane.copied};
  }

  /// One chunk (≤ max_batch_tokens) through the pipeline: a coroutine per micro-batch, all on this thread. The
  /// logits of chunk rows `first` .. go to dst.
  void run_chunk(cpu::ThreadPool& pool, std::span<const std::int32_t> chunk, Cache& cache, std::int64_t first,
                 float* dst) const {
    const auto n = static_cast<std::int64_t>(chunk.size());
    const int lanes = micro_batches(n);
    const auto per_lane = (n + lanes - 1) / lanes;
    std::vector<gpu::GpuStep> steps;
    steps.reserve(static_cast<std::size_t>(lanes));
    for (int b = 0; b < lanes; ++b) {
      const auto begin = b * per_lane, end = std::min(n, begin + per_lane);
      auto& lane = lanes_[static_cast<std::size_t>(b)];
      stage_inputs(lane, chunk, begin, end, cache.size());
      steps.push_back(step_for(pool, lane, end - begin, cache.size() + begin));
    }

    std::int64_t turns_taken = 0;
    try {
      turns_taken = pipeline::run_lanes(lanes, [&](int b, pipeline::Turns& turns) {
        return run_lane(steps[static_cast<std::size_t>(b)], cache, turns, b, lanes, b * per_lane, first);
      });
    } catch (...) {
      try { stream_.synchronize(); } catch (...) {}  // nothing may still write the scratch when we unwind
      throw;
    }
    if (turns_taken != static_cast<std::int64_t>(h_.layers) * lanes)
      throw std::logic_error("hmoe: the pipeline stopped before every block ran");
    stream_.synchronize();
    for (int b = 0; b < lanes; ++b) {  // each lane's logits rows, in order
      const auto begin = std::max(first, b * per_lane), end = std::min(n, (b + 1) * per_lane);
      if (end > begin)
        std::memcpy(dst + (begin - first) * h_.vocab, lanes_[static_cast<std::size_t>(b)].host.logits.data(),
                    static_cast<std::size_t>((end - begin) * h_.vocab) * sizeof(float));
    }
  }

  /// Micro-batch `b` of a chunk (chunk rows row0 ..): every block in turn, then the head for the rows from `first`.
  boost::asio::awaitable<void> run_lane(gpu::GpuStep& s, Cache& cache, pipeline::Turns& turns, int b, int lanes,
                                        std::int64_t row0, std::int64_t first) const {
    using boost::asio::use_awaitable;
    auto& lane = lanes_[static_cast<std::size_t>(b)];
    const auto n = s.tokens, hidden = h_.hidden;
    float* x = x_.as<float>() + row0 * hidden;
    auto* tr = trace_;
    auto mark = [&] { return tr ? tr->mark(stream_) : std::size_t{0}; };
    auto name = [](const char* what, int l) { return std::string(what) + " L" + std::to_string(l); };

    bool offload = false;
    if constexpr (!MoeBlock::routed_on_gpu) {
      offload = offload_ && lanes == 1 && n >= opts_.expert_offload_min_tokens && !moe_.empty();
      if (offload) offload_->stage(0, moe_.front().ffn().expert_tensors(), s.pool);
    }
    for (int l = 0; l < h_.layers; ++l) {
      const double wait0 = tr ? pipeline::Trace::now_us() : 0.0;
      co_await turns.wait(static_cast<std::int64_t>(l) * lanes + b, use_awaitable);
      if (tr && pipeline::Trace::now_us() - wait0 > 2.0)
        tr->host_span(pipeline::Track::Host, name("wait for turn", l), wait0, pipeline::Trace::now_us(), l, b);
      if (l == 0) {
        cuda::copy_async(x, lane.host.x.data(), static_cast<std::size_t>(n * hidden) * sizeof(float), stream_);
        cuda::copy_async(lane.positions.data(), lane.host.positions.data(), static_cast<std::size_t>(n + 1) * sizeof(std::int32_t),
                         stream_);
      }
      gpu::Scratch::Frame frame(lane.scratch);
      float* normed = frame.take<float>(n * hidden);
      float* delta = frame.take<float>(n * hidden);
      const auto m0 = mark();
      auto block_ffn_on_gpu = [&](const auto& block) {
        block.attend(s, x, cache, normed);
        block.ffn().forward(s, normed, delta);
        cuda::add_inplace(x, delta, n * hidden, stream_);
        if (tr) tr->gpu_span(name("block", l), m0, mark(), l, b);
        turns.advance();
      };
      if (l < h_.dense_layers) {
        block_ffn_on_gpu(dense_[static_cast<std::size_t>(l)]);
        continue;
      }
      const auto& block = moe_[static_cast<std::size_t>(l - h_.dense_layers)];
      if constexpr (MoeBlock::routed_on_gpu) {
        block_ffn_on_gpu(block);
      } else if (offload) {
        // The routed experts on the GPU: this layer's weights were staged by the layer before (or before the
        // loop); stage the next layer's now, while the GPU works on this one.
        const auto j = l - h_.dense_layers;
        const auto& moe = block.ffn();
        const auto handoff = moe.handoff(frame, n);
        block.attend(s, x, cache, normed);
        moe.begin_offloaded(s, normed, handoff);
        const auto m1 = mark();
        turns.advance();
        if (j + 1 < static_cast<int>(moe_.size()))
          offload_->stage((j + 1) % 2, moe_[static_cast<std::size_t>(j + 1)].ffn().expert_tensors(), s.pool);
        co_await pipeline::async_ready(lane.copied, use_awaitable);
        moe.finish_on_gpu(s, normed, handoff, delta, *offload_, j % 2);
        cuda::add_inplace(x, delta, n * hidden, stream_);
        if (tr) {
          tr->gpu_span(name("attention, router, shared experts", l), m0, m1, l, b);
          tr->gpu_span(name("routed experts on the GPU, add", l), m1, mark(), l, b);
        }
      } else {
        const auto& moe = block.ffn();
        const auto handoff = moe.handoff(frame, n);
        block.attend(s, x, cache, normed);
        const auto m1 = mark();
        moe.begin(s, normed, handoff, mode::overlap);
        const auto m2 = mark();
        turns.advance();
        if (tr) {
          tr->gpu_span(name("attention", l), m0, m1, l, b);
          tr->gpu_span(name(mode::overlap ? "router, copy out, shared experts" : "router, copy out", l), m1, m2, l, b);
        }
        const double t0 = tr ? pipeline::Trace::now_us() : 0.0;
        co_await pipeline::async_ready(lane.copied, use_awaitable);
        const double t1 = tr ? pipeline::Trace::now_us() : 0.0;
        moe.run_gpu_experts(s, normed, handoff);  // resident experts (if any) on the GPU while the CPU runs the rest
        moe.run_cpu_experts(s.pool, lane.host, n);
        if (tr) {
          const double t2 = pipeline::Trace::now_us();
          tr->host_span(pipeline::Track::Host, name("wait for GPU", l), t0, t1, l, b);
          tr->host_span(pipeline::Track::CpuExperts, name("routed experts", l), t1, t2, l, b);
        }
        const auto m3 = mark();
        moe.finish(s, normed, handoff, mode::overlap, delta);
        cuda::add_inplace(x, delta, n * hidden, stream_);
        if (tr) tr->gpu_span(name(mode::overlap ? "copy in, add" : "copy in, shared experts, add", l), m3, mark(), l, b);
      }
    }
    const auto begin = std::max(first, row0), end = row0 + n;
    if (end > begin) {
      const auto m0 = mark();
      enqueue_head(s, lane, x + (begin - row0) * hidden, end - begin);
      if (tr) tr->gpu_span("output head", m0, mark(), h_.layers, b);
    }
  }

  /// The final norm and the output head on `rows` rows of the residual at x; logits to the lane's staging.
  void enqueue_head(gpu::GpuStep& s, Lane& lane, const float* x, std::int64_t rows) const {
    gpu::Scratch::Frame frame(lane.scratch);
    float* normed = frame.take<float>(rows * h_.hidden);
    float* out = frame.take<float>(rows * h_.vocab);
    cuda::rms_norm_residual<float>(const_cast<float*>(x), nullptr, output_norm_.as<float>(), normed, rows, h_.hidden,
                                   static_cast<float>(h_.rms_eps), stream_);
    s.matmul(output_, normed, out, rows);
    cuda::copy_async(lane.host.logits.data(), out, static_cast<std::size_t>(rows * h_.vocab) * sizeof(float), stream_);
  }

  /// One decode step as a captured CUDA graph (captured on first use per cache, replayed after), the CPU experts
  /// inside it as host functions.
  void run_graph(cpu::ThreadPool& pool, std::span<const std::int32_t> chunk, Cache& cache, float* dst) const {
    auto& lane = lanes_[0];
    stage_inputs(lane, chunk, 0, 1, cache.size());
    auto s = step_for(pool, lane, 1, cache.size());
    if (graph_.empty() || graph_cache_ != cache.id()) {
      s.graph = true;
      cuda::Graph::begin_capture(stream_);
      try {
        float* x = x_.as<float>();
        cuda::copy_async(x, lane.host.x.data(), static_cast<std::size_t>(h_.hidden) * sizeof(float), stream_);
        cuda::copy_async(lane.positions.data(), lane.host.positions.data(), 2 * sizeof(std::int32_t), stream_);
        for (const auto& l : dense_) l.forward(s, x, cache);
        for (const auto& l : moe_) l.forward(s, x, cache);
        enqueue_head(s, lane, x, 1);
      } catch (...) {
        try { (void)cuda::Graph::end_capture(stream_); } catch (...) {}
        throw;
      }
      graph_ = cuda::Graph::end_capture(stream_);
      graph_cache_ = cache.id();
    }
    graph_.launch(stream_);
    stream_.synchronize();
    std::memcpy(dst, lane.host.logits.data(), static_cast<std::size_t>(h_.vocab) * sizeof(float));
  }

  /// One decode step with the GPU's work between MoE layers as captured graphs (GpuOptions::layer_graphs): graph j
  /// does everything from the end of MoE layer j-1's CPU experts to the start of layer j's -- the copy back and
  /// add, attention, router, the copy out (whose event the host waits on), shared experts; graph 0 also the inputs
  /// and dense blocks, the last one the head. Captured on first use per cache, replayed after (the kernels read
  /// positions and lengths from device memory).
  void run_layer_graphs(cpu::ThreadPool& pool, std::span<const std::int32_t> chunk, Cache& cache, float* dst) const
    requires(!MoeBlock::routed_on_gpu)
  {
    auto& lane = lanes_[0];
    stage_inputs(lane, chunk, 0, 1, cache.size());
    auto s = step_for(pool, lane, 1, cache.size());
    if (layer_graphs_.empty() || layer_graphs_cache_ != cache.id()) capture_layer_graphs(s, lane, cache);
    // A trace gets host-clock spans: from a graph's launch to its routing copy (the GPU's part, launch included),
    // and the CPU experts.
    auto* tr = trace_;
    auto now = [&] { return tr ? pipeline::Trace::now_us() : 0.0; };
    const auto dense = static_cast<int>(dense_.size());
    try {
      for (std::size_t j = 0; j < moe_.size(); ++j) {
        const double t0 = now();
        layer_graphs_[j].launch(stream_);
        while (!lane.copied.ready()) {
        }  // a few microseconds: the graph's routing copy
        const double t1 = now();
        const auto& held = layer_io_[j];
        moe_[j].ffn().run_gpu_experts(s, held.normed, held.handoff);
        moe_[j].ffn().run_cpu_experts(pool, lane.host, 1);
        if (tr) {
          const int l = dense + static_cast<int>(j);
          tr->host_span(pipeline::Track::Gpu, "graph: copy in, add, attention, router, copy out L" + std::to_string(l),
                        t0, t1, l, 0);
          tr->host_span(pipeline::Track::CpuExperts, "routed experts L" + std::to_string(l), t1, now(), l, 0);
        }
      }
      const double t0 = now();
      layer_graphs_.back().launch(stream_);
      stream_.synchronize();
      if (tr) tr->host_span(pipeline::Track::Gpu, "graph: copy in, add, output head", t0, now(), h_.layers, 0);
    } catch (...) {
      try { stream_.synchronize(); } catch (...) {}
      throw;
    }
    std::memcpy(dst, lane.host.logits.data(), static_cast<std::size_t>(h_.vocab) * sizeof(float));
  }

  void capture_layer_graphs(gpu::GpuStep& s, Lane& lane, Cache& cache) const
    requires(!MoeBlock::routed_on_gpu)
  {
    layer_graphs_.clear();
    layer_graphs_cache_ = 0;
    const auto hidden = h_.hidden;
    float* x = x_.as<float>();
    // Each MoE layer's normed input, output and hand-off live from its graph to the next one: a scratch per layer.
    if (layer_scratch_.size() != moe_.size()) {
      layer_scratch_ = std::vector<gpu::Scratch>(moe_.size());
      for (auto& sc : layer_scratch_)
        sc.reserve(static_cast<std::size_t>(MoeBlock::scratch_per_token(h_) + 2 * hidden) * sizeof(float) + 8192);
    }
    layer_io_.clear();
    for (std::size_t j = 0; j < moe_.size(); ++j) {
      auto& sc = layer_scratch_[j];
      gpu::Scratch::Frame frame(sc);  // the graphs keep the addresses; nothing else takes from this scratch
      float* normed = frame.take<float>(hidden);
      float* delta = frame.take<float>(hidden);
      layer_io_.push_back({normed, delta, moe_[j].ffn().handoff(frame, 1)});
    }
    s.graph = true;
    for (std::size_t k = 0; k <= moe_.size(); ++k) {
      cuda::Graph::begin_capture(stream_);
      try {
        if (k == 0) {
          cuda::copy_async(x, lane.host.x.data(), static_cast<std::size_t>(hidden) * sizeof(float), stream_);
          cuda::copy_async(lane.positions.data(), lane.host.positions.data(), 2 * sizeof(std::int32_t), stream_);
          for (const auto& block : dense_) {
            gpu::Scratch::Frame frame(lane.scratch);
            float* normed = frame.take<float>(hidden);
            float* delta = frame.take<float>(hidden);
            block.attend(s, x, cache, normed);
            block.ffn().forward(s, normed, delta);
            cuda::add_inplace(x, delta, hidden, stream_);
          }
        } else {
          const auto& prev = layer_io_[k - 1];
          moe_[k - 1].ffn().finish(s, prev.normed, prev.handoff, mode::overlap, prev.delta);
          cuda::add_inplace(x, prev.delta, hidden, stream_);
        }
        if (k < moe_.size()) {
          const auto& io = layer_io_[k];
          moe_[k].attend(s, x, cache, io.normed);
          moe_[k].ffn().begin(s, io.normed, io.handoff, mode::overlap);  // records lane.copied: an event node
        } else {
          enqueue_head(s, lane, x, 1);
        }
      } catch (...) {
        try { (void)cuda::Graph::end_capture(stream_); } catch (...) {}
        layer_graphs_.clear();
        throw;
      }
      layer_graphs_.push_back(cuda::Graph::end_capture(stream_));
    }
    layer_graphs_cache_ = cache.id();
  }

  std::vector<DenseBlock> dense_;
  std::vector<MoeBlock> moe_;
  std::size_t weight_bytes_ = 0;
  // Run-time state: one forward at a time.
  mutable cuda::Stream stream_;
  mutable cuda::MatmulWorkspace matmul_ws_;
  mutable cuda::HeadGemm head_gemm_;
  mutable std::vector<Lane> lanes_;   ///< lane 0 holds a whole chunk; the others half of one
  mutable cuda::Buffer x_;             ///< the residual stream of a chunk
  mutable pipeline::Trace* trace_ = nullptr;
  mutable std::optional<gpu::ExpertOffload> offload_;  ///< hybrid layout: experts of long prompts on the GPU
  mutable cuda::Graph graph_;          ///< the captured decode step, bound to one cache
  mutable std::uint64_t graph_cache_ = 0;
  /// What a MoE layer's graphs pass to each other in a layer-graph decode step (device addresses).
  struct LayerIo {
    float* normed;
    float* delta;
    typename std::remove_cvref_t<decltype(std::declval<const MoeBlock&>().ffn())>::Handoff handoff;
  };
  mutable std::vector<cuda::Graph> layer_graphs_;  ///< one per MoE layer, then the head; bound to one cache
  mutable std::uint64_t layer_graphs_cache_ = 0;
  mutable std::vector<gpu::Scratch> layer_scratch_;
  mutable std::vector<LayerIo> layer_io_;
};

}  // namespace hmoe
