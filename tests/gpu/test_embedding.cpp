/// \file
/// \brief embedding_gather against a host gather: exact for f32 and bf16 tables; an out-of-range id gives NaN.
#include <doctest/doctest.h>

#include "gpu_support.hpp"
#include "hmoe/cuda/embedding.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/quant/half.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

TEST_CASE("embedding_gather: f32 and bf16 tables, exact; bad ids give NaN rows") {
  std::mt19937_64 g(fresh_seed("embedding_gather"));
  const std::int64_t vocab = 1000, hidden = 333, tokens = 19;
  const auto table = normal_floats(g, vocab * hidden);
  std::vector<cuda::Bf16> table_bf(table.size());
  for (std::size_t i = 0; i < table.size(); ++i) table_bf[i] = cuda::Bf16::from_float(table[i]);
  std::vector<std::int32_t> ids(tokens);
  std::uniform_int_distribution<std::int32_t> pick(0, vocab - 1);
  for (auto& id : ids) id = pick(g);
  ids[3] = -1;                                   // outside the vocabulary: NaN row
  ids[7] = static_cast<std::int32_t>(vocab);     // likewise
  ids[0] = 0, ids[1] = static_cast<std::int32_t>(vocab - 1);  // both edges

  cuda::Stream s;
  cuda::Buffer d_ids = upload(ids);
  cuda::Buffer d_f32 = upload(table);
  cuda::Buffer d_bf = upload(table_bf);
  for (int bf = 0; bf < 2; ++bf) {
    CAPTURE(bf);
    auto out = poisoned<float>(tokens * hidden);
    if (bf) cuda::embedding_gather(d_bf.as<const cuda::Bf16>(), d_ids.as<const std::int32_t>(), out.as<float>(), tokens, hidden, vocab, s);
    else cuda::embedding_gather(d_f32.as<const float>(), d_ids.as<const std::int32_t>(), out.as<float>(), tokens, hidden, vocab, s);
    s.synchronize();
    const auto got = download<float>(out, tokens * hidden);
    int wrong = 0;
    for (std::int64_t t = 0; t < tokens; ++t) {
      const bool ok = ids[t] >= 0 && ids[t] < vocab;
      for (std::int64_t i = 0; i < hidden; ++i) {
        const float v = got[t * hidden + i];
        if (!ok) {
          wrong += !std::isnan(v);
          continue;
        }
        const float want = bf ? table_bf[ids[t] * hidden + i].to_float() : table[ids[t] * hidden + i];
        wrong += !(v == want);
      }
    }
    CHECK(wrong == 0);
  }
}
