/// \file
/// \brief A model's logits for a token list, three ways: one prefill, decode steps, chunks of 19 tokens.
#pragma once

#include <hmoe/cpu/thread_pool.hpp>
#include <hmoe/model/causal_lm.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace hmoe::test {

enum class Mode { Prefill, Decode, Chunked };
inline std::string name_of(Mode m) {
  return m == Mode::Prefill ? "prefill" : m == Mode::Decode ? "decode" : "chunks of 19";
}

template <class Model>
std::vector<float> run(const Model& model, cpu::ThreadPool& pool, const std::vector<std::int32_t>& tokens, Mode mode) {
  auto cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
  if (mode == Mode::Prefill) return model.forward(pool, tokens, cache);
  std::vector<float> got;
  const std::size_t step = mode == Mode::Decode ? 1 : 19;  // 19: GEMM path, then a short remainder (GEMV)
  for (std::size_t i = 0; i < tokens.size(); i += step) {
    // One token with Logits::Last is the decode step a CUDA graph captures (where the layout allows one).
    const auto part = model.forward(pool, std::span(tokens).subspan(i, std::min(step, tokens.size() - i)), cache,
                                    step == 1 ? Logits::Last : Logits::All);
    got.insert(got.end(), part.begin(), part.end());
  }
  return got;
}

}  // namespace hmoe::test
