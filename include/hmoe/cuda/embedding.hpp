/// \file
/// \brief Token embedding on the GPU: out[t] = table[ids[t]], widened to f32.
#pragma once

#include <cstdint>

#include "hmoe/cuda/types.hpp"

namespace hmoe::cuda {

class Stream;

/// table (vocab × hidden, row-major, f32 or bf16), ids (tokens, device), out (tokens × hidden, f32).
/// An id outside [0, vocab) cannot throw from the device: its row is written as NaN, so it shows downstream.
/// Instantiated for Table = float and Bf16.
template <activation Table>
void embedding_gather(const Table* table, const std::int32_t* ids, float* out, std::int64_t tokens,
                      std::int64_t hidden, std::int64_t vocab, const Stream& s);

}  // namespace hmoe::cuda
