/// \file
/// \brief argmax against model/sampling.hpp's greedy Sampler: exact ids, ties to the lowest id, -1 for a row
/// holding a non-finite logit (which the CPU sampler refuses).
#include <doctest/doctest.h>

#include <limits>

#include "gpu_support.hpp"
#include "hmoe/cuda/sampling.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/model/sampling.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

TEST_CASE("argmax matches greedy sampling") {
  std::mt19937_64 g(fresh_seed("argmax"));
  const std::int64_t rows = 6, vocab = 129280;
  auto logits = normal_floats(g, rows * vocab, 3.0f);
  // Row 1: the maximum twice; the lower id wins.
  logits[1 * vocab + 5000] = 100.0f, logits[1 * vocab + 90000] = 100.0f;
  // Row 2: the maximum at the last id. Row 3: at id 0, with an equal value later.
  logits[2 * vocab + vocab - 1] = 50.0f;
  logits[3 * vocab + 0] = 50.0f, logits[3 * vocab + 77] = 50.0f;
  // Rows 4 and 5: a NaN, an infinity.
  logits[4 * vocab + 123] = std::numeric_limits<float>::quiet_NaN();
  logits[5 * vocab + 4567] = std::numeric_limits<float>::infinity();

  cuda::Stream s;
  cuda::Buffer d_l = upload(logits);
  cuda::Buffer d_ids = poisoned<std::int32_t>(rows);
  cuda::argmax(d_l.as<const float>(), d_ids.as<std::int32_t>(), rows, vocab, s);
  s.synchronize();
  const auto ids = download<std::int32_t>(d_ids, rows);

  SamplingParams p;
  p.temperature = 0.0f;
  Sampler greedy(p, static_cast<std::int32_t>(vocab));
  for (std::int64_t r = 0; r < 4; ++r) {
    CAPTURE(r);
    const std::span<const float> row(logits.data() + r * vocab, vocab);
    CHECK(ids[r] == greedy.sample(row, {}));
  }
  CHECK(ids[1] == 5000);
  CHECK(ids[3] == 0);
  CHECK(ids[4] == -1);
  CHECK(ids[5] == -1);
}
