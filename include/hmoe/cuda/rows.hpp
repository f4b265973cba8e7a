/// \file
/// \brief Row-wise helpers the model layers need between the big kernels: residual add, a strided RMSNorm, and
/// the gather / weighted scatter-add that route tokens to experts placed on the GPU.
///
/// Host-only header: no CUDA headers. Pointers are device pointers; calls are queued on the Stream.
#pragma once

#include <cstdint>

namespace hmoe::cuda {

class Stream;

/// x[i] += y[i] for i < n.
void add_inplace(float* x, const float* y, std::int64_t n, const Stream& s);

/// y[r, :n] = x[r, :n] / sqrt(mean(x[r, :n]²) + eps) · w for r < rows; rows of x are ldx apart, of y ldy apart
/// (y may equal x). The mean of squares is summed in double, as layer/rms_norm.hpp does.
void rms_norm_strided(const float* x, std::int64_t ldx, const float* w, float* y, std::int64_t ldy,
                      std::int64_t rows, std::int64_t n, float eps, const Stream& s);

/// dst[i, :] = src[index[i], :] for i < n (cols f32 per row, rows dense).
void gather_rows(const float* src, const std::int32_t* index, float* dst, std::int64_t n, std::int64_t cols,
                 const Stream& s);

/// dst[index[i], :] += weight[i] · src[i, :] for i < n. Indices within one call must be distinct (a token meets
/// an expert at most once), so the adds need no atomics and the result does not depend on scheduling.
void scatter_add_rows(const float* src, const std::int32_t* index, const float* weight, float* dst, std::int64_t n,
                      std::int64_t cols, const Stream& s);

}  // namespace hmoe::cuda
