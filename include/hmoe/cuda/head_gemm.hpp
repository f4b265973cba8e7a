/// \file
/// \brief One small f32 matrix product per attention head, in one batched cuBLAS call: MLA's absorption of
/// q_nope into latent space (W_UK) and of the attended latent back out (W_UV).
///
/// y[t, h, :rows] = W_h (rows × cols) · x[t, h, :cols] for every token t and head h, where x and y are strided
/// views (token stride, head stride, in elements) and the W_h are dense f32 matrices `w_head_stride` apart.
/// f32 products and accumulation (no TF32). Host-only header; pointers are device pointers.
#pragma once

#include <cstdint>

#include "hmoe/cuda/buffer.hpp"

namespace hmoe::cuda {

class Stream;

struct HeadView {
  float* data = nullptr;
  std::int64_t token_stride = 0, head_stride = 0;
};

class HeadGemm {
 public:
  HeadGemm();
  ~HeadGemm();
  HeadGemm(const HeadGemm&) = delete;
  HeadGemm& operator=(const HeadGemm&) = delete;

  void run(const float* w, std::int64_t w_head_stride, std::int64_t rows, std::int64_t cols, const float* x,
           std::int64_t x_token_stride, std::int64_t x_head_stride, HeadView y, std::int64_t tokens,
           std::int64_t heads, const Stream& s);

 private:
  void* handle_ = nullptr;
  Buffer workspace_;  ///< given to cuBLAS so it never allocates (which graph capture forbids)
};

/// x[0 .. n) = 0.
void fill_zero(float* x, std::int64_t n, const Stream& s);

}  // namespace hmoe::cuda
