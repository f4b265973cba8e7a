/// \file
/// \brief What a GPU-resident model holds at run time: options, the stream and kernel handles, device scratch
/// for activations, pinned staging for the hidden states that cross PCIe, and the per-call `GpuStep` every
/// `Placement<GPU>` layer receives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hmoe/cpu/thread_pool.hpp"
#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/head_gemm.hpp"
#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/matrix.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/gpu/resident_experts.hpp"
#include "hmoe/model/hparams.hpp"

namespace hmoe::gpu {

/// The compressed KV cache on the GPU: F32 = a dense f32 cache, exact, any MLA shape; BF16 = the paged cache of
/// the tensor-core MLA kernels (FlashMLA's format), half the bytes, kv_lora_rank 512 + rope 64 only.
enum class KvFormat { F32, BF16 };

struct GpuOptions {
  int device = 0;
  /// Activations of the GEMMs above 8 tokens (prefill): F32 exact, or BF16 on the tensor cores.
  cuda::Precision precision = cuda::Precision::F32;
  KvFormat kv = KvFormat::F32;
  /// Tokens per forward pass on the GPU: a longer prompt runs in chunks of this many (bounds the scratch).
  std::int64_t max_batch_tokens = 512;
  /// Decode steps (one token, last logits) as one captured CUDA graph launch, the CPU experts inside it as a host
  /// function. Layouts whose routed experts are on the GPU group tokens on the host and run without a graph.
  /// Off by default: measured slower on the H100 machine (V2-Lite hybrid tg128 33.5 vs 40.7 tok/s; the host
  /// function hand-off per MoE layer costs more than the launches it saves; benchmarks/results/e2e.md).
  bool cuda_graph = false;
  /// Decode steps (one token, last logits) with the GPU's work between two MoE layers' CPU experts captured as one
  /// CUDA graph per layer (the copy back, attention, router, the copy out, shared experts): one launch a layer
  /// instead of about twenty kernel launches, and the CPU starts as soon as the routing is on the host.
  bool layer_graphs = true;
  /// Micro-batches of a prompt in a `Pipeline<CpuGpuOverlap<N>>` layout: 0 = N, else 1 to 8 (for measuring).
  int micro_batches = 0;
  /// Fewest tokens a micro-batch may have: below it a prompt runs in fewer micro-batches (each one makes the CPU
  /// experts stream their weights once more, which a small micro-batch does not pay back).
  std::int64_t min_micro_batch = 64;
  /// Hybrid layout: prompt chunks of at least this many tokens run the routed experts on the GPU, each layer's
  /// expert weights copied over PCIe while the layer before computes (gpu/expert_offload.hpp); 0 = never. Needs
  /// two layers' expert bytes of GPU memory (refused at load, with a message, when they do not fit).
  std::int64_t expert_offload_min_tokens = 256;
  /// Hybrid layout: per block (blk.N), the routed experts also kept in GPU memory (as the file stores them);
  /// the pairs routed to them run on the GPU while the CPU runs the rest. PlacementPlan::gpu_experts_by_layer()
  /// gives a plan's choice. Checked at load (ids, duplicates, dense blocks, free memory); refused with the
  /// all-GPU layout and with cuda_graph. Empty = every routed expert on the CPU.
  ResidentExperts resident_experts;
  /// Changes to the file's hyper-parameters (experts per token).
  ModelOverrides overrides;
};

/// A bump allocator over one device buffer. Layers take what they need and give it back when they return
/// (`Frame`), so a forward pass allocates nothing; the model sizes it for its largest batch at load.
class Scratch {
 public:
  void reserve(std::size_t bytes) {
    if (bytes > buf_.bytes()) buf_ = cuda::Buffer(bytes);
  }
  std::size_t bytes() const { return buf_.bytes(); }

  template <class T>
  T* take(std::int64_t count) {
    const std::size_t b = (static_cast<std::size_t>(count) * sizeof(T) + 255) & ~std::size_t{255};
    if (used_ + b > buf_.bytes())
      throw std::logic_error("hmoe: GPU scratch overflow (" + std::to_string(used_ + b) + " > " +
                             std::to_string(buf_.bytes()) + " bytes): the model's scratch estimate is wrong");
    T* p = reinterpret_cast<T*>(static_cast<std::byte*>(buf_.data()) + used_);
    used_ += b;
    return p;
  }

  /// Takes from the scratch for its lifetime.
  class Frame {
   public:
    explicit Frame(Scratch& s) : s_(s), mark_(s.used_) {}
    ~Frame() { s_.used_ = mark_; }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;
    template <class T>
    T* take(std::int64_t count) { return s_.take<T>(count); }

   private:
    Scratch& s_;
    std::size_t mark_;
  };

 private:
  cuda::Buffer buf_;
  std::size_t used_ = 0;
};

/// Pinned host buffers for what crosses PCIe in a hybrid layout: the normalized hidden states and routing going
/// to the CPU experts, and their output coming back. One set, reused by every layer in turn.
struct HostStaging {
  cuda::PinnedBuffer x, out, ids, weights, positions, logits;
  cpu::ThreadPool* pool = nullptr;  ///< the pool of the forward call in flight (host functions of a graph read it)
  void reserve(std::int64_t tokens, std::int64_t hidden, std::int64_t per_token, std::int64_t vocab) {
    auto grow = [](cuda::PinnedBuffer& b, std::size_t bytes) {
      if (b.bytes() < bytes) b = cuda::PinnedBuffer(bytes);
    };
    const auto n = static_cast<std::size_t>(tokens);
    grow(x, n * static_cast<std::size_t>(hidden) * sizeof(float));
    grow(out, n * static_cast<std::size_t>(hidden) * sizeof(float));
    grow(ids, n * static_cast<std::size_t>(per_token) * sizeof(std::int32_t));
    grow(weights, n * static_cast<std::size_t>(per_token) * sizeof(float));
    grow(positions, n * sizeof(std::int32_t) + sizeof(std::int32_t));
    grow(logits, n * static_cast<std::size_t>(vocab) * sizeof(float));
  }
};

/// What one micro-batch of a pipelined forward pass owns while its coroutine runs: device scratch, pinned
/// staging, its positions on the device, and the event its routing copy records.
struct Lane {
  Scratch scratch;
  HostStaging host;
  cuda::Buffer positions;  ///< device, [tokens + 1]: the positions, then the sequence length after them
  cuda::Event copied;
};

/// Everything one forward call gives each GPU layer: the stream and kernel handles, scratch, the CPU thread pool
/// (for experts placed on the CPU), and where the new tokens sit: positions pos0 .. pos0 + tokens - 1.
struct GpuStep {
  cuda::Stream& stream;
  cuda::MatmulWorkspace& matmul_ws;
  cuda::HeadGemm& head_gemm;
  cuda::Precision precision;
  Scratch& scratch;
  HostStaging& host;
  cpu::ThreadPool& pool;
  std::int64_t tokens = 0, pos0 = 0;
  const std::int32_t* positions = nullptr;  ///< device, [tokens]
  const std::int32_t* seq_len = nullptr;    ///< device, [1] = pos0 + tokens
  cuda::Event& copied;                      ///< marks "device-to-host copies done" for a layer to wait on
  bool graph = false;  ///< being captured into a CUDA graph: no host waits, host work goes in host functions

  /// y (tokens × w.rows(), ld ldy) = x (tokens × w.cols(), ld ldx) · Wᵀ.
  void matmul(const cuda::DeviceMatrix& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy,
              std::int64_t n) const {
    cuda::matmul(w, x, ldx, y, ldy, n, precision, matmul_ws, stream);
  }
  void matmul(const cuda::DeviceMatrix& w, const float* x, float* y, std::int64_t n) const {
    matmul(w, x, w.cols(), y, w.rows(), n);
  }
};

}  // namespace hmoe::gpu
