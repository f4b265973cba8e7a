/// \file
/// \brief Weight-only quantized matrix-vector products for decode: y = x · Wᵀ with W stored as ggml Q4_K blocks
/// or as Int8 rows with one f32 scale per row (output channel). Memory-bound: the weights are read once per call.
#pragma once

#include <cstdint>

#include "hmoe/cuda/types.hpp"
#include "hmoe/quant/k_blocks.hpp"

namespace hmoe::cuda {

class Stream;

/// W: rows × k weights as ggml lays them out (row r is k / 256 consecutive BlockQ4_K; k % 256 == 0).
/// x: tokens × k activations (f32 or bf16), y: tokens × rows (f32). Accumulates in f32, per 32-value sub-block
/// as (d·sc)·Σq·x − (dmin·m)·Σx, which equals Σ dequantize(W)·x up to f32 rounding.
/// Meant for small token counts (decode); every 8 tokens read the weights once more.
/// Instantiated for T = float and Bf16. Throws std::invalid_argument for a bad shape.
template <activation T>
void gemv_q4_k(const quant::BlockQ4_K* w, const T* x, float* y, std::int64_t rows, std::int64_t k,
               std::int64_t tokens, const Stream& s);

/// W: rows × k int8 (row-major, k % 16 == 0, 16-byte aligned), scale: rows f32. y[t, r] = scale[r] · Σ W[r,i]·x[t,i].
template <activation T>
void gemv_int8(const std::int8_t* w, const float* scale, const T* x, float* y, std::int64_t rows, std::int64_t k,
               std::int64_t tokens, const Stream& s);

}  // namespace hmoe::cuda
