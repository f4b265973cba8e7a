/// \file
/// \brief The compressed MLA KV cache in GPU memory, one sequence: per layer, the normalized latent and the roped
/// key of every position, as a dense f32 cache or as the bf16 pages of the tensor-core kernels.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/mla.hpp"
#include "hmoe/cuda/mla_dense.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/model/kv_cache.hpp"

namespace hmoe::gpu {

class GpuKvCache : public CachePositions {
 public:
  static constexpr int page_size = 64;

  GpuKvCache(std::int64_t layers, std::int64_t capacity, std::int64_t rank, std::int64_t rope_dims, std::int64_t heads,
             KvFormat format)
      : CachePositions(capacity), rank_(rank), rope_(rope_dims), format_(format), id_(next_id()) {
    if (format == KvFormat::BF16 && (rank != cuda::mla_latent_dim || rope_dims != cuda::mla_rope_dim))
      throw std::invalid_argument("the bf16 paged KV cache takes kv_lora_rank 512 + rope 64 (DeepSeek V2/V3); this "
                                  "model has " + std::to_string(rank) + " + " + std::to_string(rope_dims) +
                                  ": use the f32 cache");
    const auto row = static_cast<std::size_t>(rank + rope_dims);
    if (format == KvFormat::F32) {
      for (std::int64_t l = 0; l < layers; ++l) layers_.emplace_back(static_cast<std::size_t>(capacity) * row * 4);
    } else {
      pages_ = (capacity + page_size - 1) / page_size;
      for (std::int64_t l = 0; l < layers; ++l)
        layers_.emplace_back(static_cast<std::size_t>(pages_ * page_size) * row * 2);
      std::vector<std::int32_t> table(static_cast<std::size_t>(pages_));
      for (std::int64_t p = 0; p < pages_; ++p) table[static_cast<std::size_t>(p)] = static_cast<std::int32_t>(p);
      block_table_ = cuda::Buffer::from(table.data(), table.size());
      plan_ = cuda::mla_decode_plan(1, static_cast<int>(heads), static_cast<int>(capacity));
      if (plan_.workspace_bytes) decode_workspace_ = cuda::Buffer(plan_.workspace_bytes);
    }
  }

  /// Unique per cache object (kept when moved): what a captured decode graph is bound to.
  std::uint64_t id() const { return id_; }
  KvFormat format() const { return format_; }
  std::size_t bytes() const {
    std::size_t b = block_table_.bytes() + decode_workspace_.bytes();
    for (const auto& l : layers_) b += l.bytes();
    return b;
  }

  cuda::DenseMlaCache dense(std::int64_t layer) const {
    return {layers_[static_cast<std::size_t>(layer)].as<float>(), static_cast<int>(rank_), static_cast<int>(rope_),
            capacity()};
  }
  cuda::MlaPagedCache paged(std::int64_t layer) const {
    return {layers_[static_cast<std::size_t>(layer)].data(), block_table_.as<const std::int32_t>(), page_size,
            static_cast<int>(pages_)};
  }
  const cuda::MlaDecodePlan& decode_plan() const { return plan_; }
  void* decode_workspace() const { return decode_workspace_.data(); }

 private:
  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
  }

  std::int64_t rank_, rope_, pages_ = 0;
  KvFormat format_;
  std::uint64_t id_;
  std::vector<cuda::Buffer> layers_;
  cuda::Buffer block_table_, decode_workspace_;
  cuda::MlaDecodePlan plan_{};
};

}  // namespace hmoe::gpu
