/// \file
/// \brief `ExpertOffload`: the routed experts of a hybrid layout, run on the GPU for long prompts.
///
/// In host RAM the experts are read once per token by the CPU; a prompt of hundreds of tokens reads each expert
/// for many tokens, and the GPU computes those products far faster than the CPU once the weights are there. So for
/// a prompt chunk of at least GpuOptions::expert_offload_min_tokens the layer's expert tensors (as the file stores
/// them) are copied to the GPU — host mapping → pinned bounce buffer (the CPU pool, in parallel) → device, on a
/// copy stream — while the GPU computes the layer before; two slots alternate. Decode steps keep the experts on
/// the CPU. (llama.cpp's hybrid mode does the same for prompt batches.)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>

#include "hmoe/cpu/thread_pool.hpp"
#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/matrix.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/io/gguf.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/tensors.hpp"
#include "hmoe/quant/dequantize.hpp"

namespace hmoe::gpu {

/// One MoE layer's routed-expert tensors in the mapped file: gate, up (ffn × hidden per expert), down
/// (hidden × ffn per expert), each experts × rows × cols, experts contiguous.
struct ExpertTensors {
  struct Part {
    std::string name;
    GgmlType type = GgmlType::F32;
    const std::byte* host = nullptr;
    std::int64_t rows = 0, cols = 0;  ///< of one expert
    std::size_t expert_bytes = 0, offset = 0;  ///< one expert's bytes; where the part starts in a staged layer
  };
  std::array<Part, 3> parts;
  std::int64_t experts = 0;
  std::size_t bytes = 0;  ///< the whole layer's expert bytes

  ExpertTensors() = default;
  ExpertTensors(const gguf::File& f, const DeepSeekHParams& h, int layer) : experts(h.experts) {
    const std::array<std::tuple<const char*, std::int64_t, std::int64_t>, 3> shapes{
        {{"ffn_gate_exps.weight", h.expert_ffn, h.hidden},
         {"ffn_up_exps.weight", h.expert_ffn, h.hidden},
         {"ffn_down_exps.weight", h.hidden, h.expert_ffn}}};
    for (std::size_t i = 0; i < 3; ++i) {
      const auto& [what, rows, cols] = shapes[i];
      const auto first = slice(f, block_tensor(layer, what), 0, h.experts, rows, cols);  // checks the shape
      auto& p = parts[i];
      p.name = block_tensor(layer, what);
      p.type = first.type;
      p.host = first.data;
      p.rows = rows;
      p.cols = cols;
      p.expert_bytes = static_cast<std::size_t>(rows) * quant::row_bytes(first.type, cols);
      p.offset = bytes;
      bytes += p.expert_bytes * static_cast<std::size_t>(h.experts);
    }
  }
};

class ExpertOffload {
 public:
  /// Two slots of `layer_bytes` each, on the device and pinned on the host.
  explicit ExpertOffload(std::size_t layer_bytes) : bytes_(layer_bytes) {
    for (auto& d : device_) d = cuda::Buffer(layer_bytes);
    for (auto& p : pinned_) p = cuda::PinnedBuffer(layer_bytes);
  }

  std::size_t slot_bytes() const { return bytes_; }

  /// Starts copying layer `t` into `slot`: waits (host) until the slot's last upload has left the pinned buffer,
  /// copies the mapped bytes there with the pool, and queues the upload on the copy stream behind the GPU work that
  /// last read the slot (`release`).
  void stage(int slot, const ExpertTensors& t, cpu::ThreadPool& pool) {
    const auto i = static_cast<std::size_t>(slot);
    uploaded_[i].synchronize();
    auto* dst = pinned_[i].as<std::byte>();
    constexpr std::size_t piece = std::size_t{4} << 20;
    for (const auto& p : t.parts) {
      const std::size_t total = p.expert_bytes * static_cast<std::size_t>(t.experts);
      const auto pieces = static_cast<std::int64_t>((total + piece - 1) / piece);
      pool.parallel_for(pieces, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t k = b; k < e; ++k) {
          const auto off = static_cast<std::size_t>(k) * piece;
          std::memcpy(dst + p.offset + off, p.host + off, std::min(piece, total - off));
        }
      });
    }
    released_[i].wait_in(copy_stream_);
    cuda::copy_async(device_[i].data(), dst, t.bytes, copy_stream_);
    uploaded_[i].record(copy_stream_);
  }

  /// Work queued on s from now on waits for the slot's upload.
  void wait_in(int slot, const cuda::Stream& s) const { uploaded_[static_cast<std::size_t>(slot)].wait_in(s); }
  /// Marks the slot free once the work queued on s so far is done.
  void release(int slot, const cuda::Stream& s) { released_[static_cast<std::size_t>(slot)].record(s); }

  /// Expert e's {gate, up, down} over the slot's device copy of layer t.
  std::tuple<cuda::DeviceMatrix, cuda::DeviceMatrix, cuda::DeviceMatrix> matrices(int slot, const ExpertTensors& t,
                                                                                  std::int64_t e) const {
    const auto* base = static_cast<const std::byte*>(device_[static_cast<std::size_t>(slot)].data());
    auto view = [&](const ExpertTensors::Part& p) {
      return cuda::DeviceMatrix::view(p.name, p.type, p.rows, p.cols,
                                      base + p.offset + static_cast<std::size_t>(e) * p.expert_bytes);
    };
    return {view(t.parts[0]), view(t.parts[1]), view(t.parts[2])};
  }

 private:
  std::size_t bytes_;
  std::array<cuda::Buffer, 2> device_;
  std::array<cuda::PinnedBuffer, 2> pinned_;
  std::array<cuda::Event, 2> uploaded_, released_;
  cuda::Stream copy_stream_;
};

}  // namespace hmoe::gpu
