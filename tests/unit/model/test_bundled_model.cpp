// The bundled default model (models/hmoe-tiny-dsv3-Q4_K_M.gguf, trained by tools/train): greedy steps give exactly
// the recorded tokens. The recorded continuations are also what llama.cpp's greedy llama-simple produces on this
// file (docs/results/greedy-vs-llamacpp.md), so they are not merely hmoe's own output frozen; any later change that
// alters the numbers of the reference path fails here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <hmoe/hmoe.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>

namespace {

std::vector<std::int32_t> greedy(const hmoe::ReferenceModel<>& model, const hmoe::tokenizer::Tokenizer& tok,
                                 const std::string& prompt, int steps) {
  std::vector<std::int32_t> ids{tok.bos()};
  const auto body = tok.encode(prompt);
  ids.insert(ids.end(), body.begin(), body.end());
  hmoe::cpu::ThreadPool pool(2);
  auto cache = model.make_cache(static_cast<std::int64_t>(ids.size()) + steps);
  auto logits = model.forward(pool, ids, cache, hmoe::Logits::Last);
  std::vector<std::int32_t> out;
  for (int i = 0; i < steps; ++i) {
    const auto id = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(id);
    logits = model.forward(pool, std::span(&id, 1), cache, hmoe::Logits::Last);
  }
  return out;
}

}  // namespace

TEST_CASE("bundled model: greedy continuations are the recorded ones") {
  const auto path = std::string(HMOE_TEST_DATA) + "/../../models/hmoe-tiny-dsv3-Q4_K_M.gguf";
  auto model = hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(path));
  const auto tok = hmoe::tokenizer::Tokenizer::from_gguf(model.file());

  const auto computer = greedy(model, tok, "A computer is a machine that", 24);
  CHECK(computer == std::vector<std::int32_t>{469, 334, 1632, 381, 274, 2864, 319, 213, 213, 447, 454, 29,
                                               421, 29,  493,  580, 27,  335,  483, 411, 504, 298, 555, 1769});
  CHECK(tok.decode(computer) == " will be built with a computer.\n\t\t-- C. J. Gould, \"The Book of Hero");

  const auto python = greedy(model, tok, "The Python interpreter", 24);
  CHECK(python == std::vector<std::int32_t>{323, 274, 4646, 1811, 2347, 310, 461,  29,  1044, 323, 402, 1599,
                                             364, 8098, 3351, 492, 92,   1425, 28, 426, 5240, 291, 304, 492});
}
