/// \file
/// \brief Greedy decoding on the GPU: the argmax of each row of logits, ties to the lowest token id
/// (model/sampling.hpp's greedy rule), so only one int per row comes back to the host.
#pragma once

#include <cstdint>

namespace hmoe::cuda {

class Stream;

/// logits (rows × vocab, f32, device) -> ids (rows, device). A row holding a NaN or infinite logit gets -1:
/// the CPU sampler refuses such a row, and the caller must too.
void argmax(const float* logits, std::int32_t* ids, std::int64_t rows, std::int64_t vocab, const Stream& s);

}  // namespace hmoe::cuda
