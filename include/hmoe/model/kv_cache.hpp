/// \file
/// \brief The compressed MLA KV cache: per layer and position, the normalized kv latent and the roped key part.
///
/// Absorbed MLA caches kv_lora_rank + rope values per token and layer (576 for DeepSeek-V3), shared by all
/// heads, instead of full per-head keys and values. Positions are appended in order; a full cache refuses
/// more tokens with a message rather than overwriting.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace hmoe {

/// How many positions a cache holds and may hold: the bookkeeping every KV cache shares (CPU and GPU).
class CachePositions {
 public:
  explicit CachePositions(std::int64_t capacity) : capacity_(capacity) {}
  std::int64_t capacity() const { return capacity_; }
  std::int64_t size() const { return size_; }

  /// Checks that `tokens` more fit; the layers then write positions size() .. size()+tokens-1, and commit() advances.
  void reserve(std::int64_t tokens) const {
    if (size_ + tokens > capacity_)
      throw std::length_error("KV cache full: " + std::to_string(size_) + " positions used + " + std::to_string(tokens) +
                              " new > context " + std::to_string(capacity_) + " (raise --ctx)");
  }
  void commit(std::int64_t tokens) { size_ += tokens; }
  void clear() { size_ = 0; }
  /// Forgets every position from `n` on (a conversation that diverged from what the cache holds).
  void truncate(std::int64_t n) {
    if (n < 0 || n > size_) throw std::out_of_range("KV cache truncate to " + std::to_string(n) + " of " + std::to_string(size_));
    size_ = n;
  }

 private:
  std::int64_t capacity_, size_ = 0;
};

class KvCache : public CachePositions {
 public:
  KvCache(std::int64_t layers, std::int64_t capacity, std::int64_t kv_lora_rank, std::int64_t rope_dims)
      : CachePositions(capacity), kv_lora_(kv_lora_rank), rope_(rope_dims),
        latent_(static_cast<std::size_t>(layers)), rope_keys_(static_cast<std::size_t>(layers)) {
    for (auto& l : latent_) l.resize(static_cast<std::size_t>(capacity * kv_lora_rank));
    for (auto& r : rope_keys_) r.resize(static_cast<std::size_t>(capacity * rope_dims));
  }

  std::int64_t kv_lora_rank() const { return kv_lora_; }
  std::int64_t rope_dims() const { return rope_; }

  /// Rows for position p of layer l: (kv_lora_rank) latent and (rope_dims) key.
  float* latent(std::int64_t l, std::int64_t p) { return latent_[static_cast<std::size_t>(l)].data() + p * kv_lora_; }
  float* rope_key(std::int64_t l, std::int64_t p) { return rope_keys_[static_cast<std::size_t>(l)].data() + p * rope_; }
  const float* latent(std::int64_t l) const { return latent_[static_cast<std::size_t>(l)].data(); }
  const float* rope_key(std::int64_t l) const { return rope_keys_[static_cast<std::size_t>(l)].data(); }

 private:
  std::int64_t kv_lora_, rope_;
  std::vector<std::vector<float>> latent_, rope_keys_;
};

}  // namespace hmoe
