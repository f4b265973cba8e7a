/// \file
/// \brief YaRN rotary embedding on the GPU, the same rotation as layer/rope.hpp (llama.cpp's deepseek2 rope):
/// adjacent pairs (x[2i], x[2i+1]) of the rope part rotate by pos · inv_freq[i], an f32 product.
#pragma once

#include <cstdint>
#include <vector>

#include "hmoe/cuda/buffer.hpp"

namespace hmoe {
struct YarnRope;
}

namespace hmoe::cuda {

class Stream;

/// The per-pair frequencies of a YaRN rope, computed on the host in double exactly as YarnRotary does and kept
/// on the device.
class RopeTable {
 public:
  explicit RopeTable(const YarnRope& r);
  std::int64_t pairs() const noexcept { return pairs_; }  ///< rope dims / 2
  const float* device_inv_freq() const noexcept { return inv_freq_.as<const float>(); }
  const std::vector<float>& host_inv_freq() const noexcept { return host_; }

 private:
  std::int64_t pairs_;
  std::vector<float> host_;
  Buffer inv_freq_;
};

/// Where the rope part of each (token, head) lies in a f32 device array: element (t, h) starts at
/// base + t · token_stride + h · head_stride + offset and has 2 · pairs values.
/// For q (tokens × heads × (nope + rope)): token_stride = heads · (nope + rope), head_stride = nope + rope,
/// offset = nope. For the shared rope key: heads = 1, offset = 0.
struct RopeLayout {
  std::int64_t tokens = 0, heads = 1;
  std::int64_t token_stride = 0, head_stride = 0, offset = 0;
};

/// Rotates in place; positions (tokens, device int32) give each token's position.
void rope_apply(float* base, const RopeLayout& l, const std::int32_t* positions, const RopeTable& table,
                const Stream& s);

}  // namespace hmoe::cuda
