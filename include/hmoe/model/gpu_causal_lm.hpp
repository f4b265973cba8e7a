/// \file
/// \brief `CausalLM` whose blocks run on the GPU: the residual stream lives in device memory from the embedding
/// (gathered on the host, where the table stays) to the logits; routed experts placed on the CPU get the hidden
/// states over PCIe inside their MoE layer.
///
/// Same interface as the CPU model (load, make_cache, forward), so the examples take either. Not thread-safe:
/// one forward at a time per model (it owns the stream and the scratch).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
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

  std::vector<float> forward(cpu::ThreadPool& pool, std::span<const std::int32_t> tokens, Cache& cache,
                             Logits which = Logits::All) const {
    const auto total = static_cast<std::int64_t>(tokens.size()), hidden = h_.hidden, vocab = h_.vocab;
    if (total == 0) throw std::invalid_argument("forward needs at least one token");
    cache.reserve(total);
    for (std::int64_t t = 0; t < total; ++t) {
      const auto id = tokens[static_cast<std::size_t>(t)];
      if (id < 0 || id >= vocab)
        throw std::out_of_range("token id " + std::to_string(id) + " at index " + std::to_string(t) +
                                " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    device_.make_current();
    host_.pool = &pool;
    const bool graph = opts_.cuda_graph && !MoeBlock::routed_on_gpu && total == 1 && which == Logits::Last;
    std::vector<float> logits(static_cast<std::size_t>((which == Logits::All ? total : 1) * vocab));
    for (std::int64_t c0 = 0; c0 < total; c0 += opts_.max_batch_tokens) {
      const auto n = std::min(opts_.max_batch_tokens, total - c0);
      const bool want_logits = which == Logits::All || c0 + n == total;
      const std::int64_t first = which == Logits::Last ? n - 1 : 0;
      // Embedding rows and positions, staged in pinned memory (a captured graph copies from here too).
      auto* hx = host_.x.as<float>();
      auto* hpos = host_.positions.as<std::int32_t>();
      const auto pos0 = cache.size();
      for (std::int64_t t = 0; t < n; ++t) {
        embedding_.dequantize_row(tokens[static_cast<std::size_t>(c0 + t)], hx + t * hidden);
        hpos[t] = static_cast<std::int32_t>(pos0 + t);
      }
      hpos[n] = static_cast<std::int32_t>(pos0 + n);

      gpu::GpuStep step{.stream = stream_, .matmul_ws = matmul_ws_, .head_gemm = head_gemm_,
                        .precision = opts_.precision, .scratch = scratch_, .host = host_, .pool = pool,
                        .tokens = n, .pos0 = pos0, .positions = positions_.as<const std::int32_t>(),
                        .seq_len = positions_.as<const std::int32_t>() + n, .copied = copied_};
      if (graph) {
        if (graph_.empty() || graph_cache_ != cache.id()) {
          step.graph = true;
          cuda::Graph::begin_capture(stream_);
          try {
            enqueue(step, cache, want_logits, first);
          } catch (...) {
            try { (void)cuda::Graph::end_capture(stream_); } catch (...) {}
            throw;
          }
          graph_ = cuda::Graph::end_capture(stream_);
          graph_cache_ = cache.id();
        }
        graph_.launch(stream_);
      } else {
        enqueue(step, cache, want_logits, first);
      }
      cache.commit(n);
      if (want_logits) {
        stream_.synchronize();
        std::memcpy(logits.data() + (which == Logits::All ? c0 * vocab : 0), host_.logits.data(),
                    static_cast<std::size_t>((n - first) * vocab) * sizeof(float));
      }
    }
    stream_.synchronize();
    return logits;
  }

 private:
  CausalLM(gguf::File file, const gpu::GpuOptions& o, Progress progress)
      : file_(std::move(file)), h_(read_hparams(file_)), opts_(o), device_(activate(o.device)) {
    check_dims<D>(h_, file_.path().string());
    gguf::require_types(file_, quant::dequantizable_types());
    if (opts_.max_batch_tokens < 1) throw std::invalid_argument("max_batch_tokens must be ≥ 1");
    if (opts_.kv == gpu::KvFormat::BF16 && (h_.kv_lora_rank != 512 || h_.qk_rope != 64))
      throw ModelError(file_.path().string() + ": the bf16 paged KV cache needs kv_lora_rank 512 and rope 64, this "
                       "file has " + std::to_string(h_.kv_lora_rank) + " + " + std::to_string(h_.qk_rope) +
                       "; use the f32 cache");
    device_.make_current();

    // What goes where, checked against the device before anything is uploaded.
    auto plan = LayoutPlan::hybrid();
    if constexpr (MoeBlock::routed_on_gpu) plan = LayoutPlan::all_gpu();
    plan.on_gpu[static_cast<std::size_t>(TensorGroup::Embedding)] = false;  // rows are gathered on the host
    plan.kv_bytes_per_value = opts_.kv == gpu::KvFormat::BF16 ? 2 : 4;
    const auto report = memory_report(file_, h_, plan, 0);
    if (progress) progress(format(report, plan));
    require_fits(report, device_.free_memory(), ~std::uint64_t{0}, "this layout of " + file_.path().filename().string());

    embedding_ = matrix(file_, "token_embd.weight", h_.vocab, h_.hidden);
    output_norm_ = gpu::to_device(vector_f32(file_, "output_norm.weight", h_.hidden));
    output_ = gpu::to_device<Stored>(file_.find_tensor("output.weight")
                                         ? matrix(file_, "output.weight", h_.vocab, h_.hidden)
                                         : embedding_);
    weight_bytes_ = output_norm_.bytes() + output_.bytes();
    for (int l = 0; l < h_.layers; ++l) {
      if (l < h_.dense_layers) weight_bytes_ += dense_.emplace_back(file_, h_, l).bytes();
      else weight_bytes_ += moe_.emplace_back(file_, h_, l).bytes();
      if (progress) progress("uploaded block " + std::to_string(l + 1) + " of " + std::to_string(h_.layers));
    }

    const auto n = opts_.max_batch_tokens;
    const auto per_token = std::max(DenseBlock::scratch_per_token(h_), MoeBlock::scratch_per_token(h_));
    const auto head = h_.hidden + h_.vocab;
    scratch_.reserve(static_cast<std::size_t>(n * std::max(per_token, head)) * sizeof(float) + (std::size_t{1} << 20));
    x_ = cuda::Buffer(static_cast<std::size_t>(n * h_.hidden) * sizeof(float));
    positions_ = cuda::Buffer(static_cast<std::size_t>(n + 1) * sizeof(std::int32_t));
    host_.reserve(n, h_.hidden, h_.experts_used, h_.vocab);
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
  /// Queues one chunk: inputs from the staging, every block, and (when asked) the head for rows first .. on,
  /// with the logits copied to the staging.
  void enqueue(gpu::GpuStep& step, Cache& cache, bool logits, std::int64_t first) const {
    const auto n = step.tokens, hidden = h_.hidden, vocab = h_.vocab;
    cuda::copy_async(x_.data(), host_.x.data(), static_cast<std::size_t>(n * hidden) * sizeof(float), stream_);
    cuda::copy_async(positions_.data(), host_.positions.data(), static_cast<std::size_t>(n + 1) * sizeof(std::int32_t),
                     stream_);
    float* x = x_.as<float>();
    for (const auto& l : dense_) l.forward(step, x, cache);
    for (const auto& l : moe_) l.forward(step, x, cache);
    if (!logits) return;
    const auto rows = n - first;
    gpu::Scratch::Frame frame(scratch_);
    float* normed = frame.take<float>(rows * hidden);
    float* out = frame.take<float>(rows * vocab);
    cuda::rms_norm_residual<float>(x + first * hidden, nullptr, output_norm_.as<float>(), normed, rows, hidden,
                                   static_cast<float>(h_.rms_eps), stream_);
    step.matmul(output_, normed, out, rows);
    cuda::copy_async(host_.logits.data(), out, static_cast<std::size_t>(rows * vocab) * sizeof(float), stream_);
  }

  std::vector<DenseBlock> dense_;
  std::vector<MoeBlock> moe_;
  std::size_t weight_bytes_ = 0;
  // Run-time state: one forward at a time.
  mutable cuda::Stream stream_;
  mutable cuda::MatmulWorkspace matmul_ws_;
  mutable cuda::HeadGemm head_gemm_;
  mutable cuda::Event copied_;
  mutable gpu::Scratch scratch_;
  mutable gpu::HostStaging host_;
  mutable cuda::Buffer x_, positions_;
  mutable cuda::Graph graph_;          ///< the captured decode step, bound to one cache
  mutable std::uint64_t graph_cache_ = 0;
};

}  // namespace hmoe
