// The f32 reference forward pass against exact logits (HF transformers in float64 on the same weights).
//
// Tolerance: relative L2 <= 1e-4 at every position and the same argmax everywhere. Activations are f32 and the
// reference is float64 with identical weights (dequantized exactly by the gguf package for quantized files), so
// the only differences are f32 rounding (~1e-6 relative) -- 1e-4 leaves room for a few hundred positions of
// accumulated rounding yet catches any real mistake (a wrong rope pair or scale gives errors near 1).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <hmoe/hmoe.hpp>

#include "logits_compare.hpp"

namespace fs = std::filesystem;
using hmoe::test::compare_logits;

namespace {

constexpr double tolerance = 1e-4;

struct Case {
  fs::path gguf, logits, meta;
};

void check_file(const Case& c, bool decode) {
  INFO("file: " << c.gguf.string() << (decode ? " (token-by-token decode)" : " (batched prefill)"));
  const auto tokens = hmoe::test::read_meta_tokens(c.meta);
  const auto want = hmoe::test::read_f32(c.logits);
  auto model = hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(c.gguf));
  const auto vocab = model.hparams().vocab;
  REQUIRE(want.size() == tokens.size() * static_cast<std::size_t>(vocab));
  hmoe::cpu::ThreadPool pool(2);
  auto cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
  std::vector<float> got;
  if (decode) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      auto step = model.forward(pool, std::span(tokens).subspan(i, 1), cache);
      got.insert(got.end(), step.begin(), step.end());
    }
  } else {
    got = model.forward(pool, tokens, cache);
  }
  REQUIRE(got.size() == want.size());
  const auto a = compare_logits(got, want, vocab);
  MESSAGE(c.gguf.parent_path().filename().string() << "/" << c.gguf.filename().string() << std::string(decode ? " decode" : " prefill")
          << ": worst rel-L2 " << a.worst_rel_l2 << " at position " << a.worst_position << ", mean " << a.mean_rel_l2
          << ", argmax mismatches " << a.argmax_mismatches << " of " << tokens.size());
  CHECK(a.worst_rel_l2 <= tolerance);
  CHECK(a.argmax_mismatches == 0);
}

std::vector<Case> cases_in(const fs::path& dir) {
  std::vector<Case> out;
  if (!fs::exists(dir)) return out;
  for (const auto& model : fs::directory_iterator(dir)) {
    if (!model.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(model.path())) {
      if (f.path().extension() != ".gguf") continue;
      auto stem = f.path().stem().string();                 // BF16, Q8_0, Q4_K_M, BF16-legacy-kvb, ...
      const auto base = stem.substr(0, stem.find("-legacy"));
      Case c{f.path(), model.path() / ("hf-" + base + ".f32"), model.path() / "meta.json"};
      if (fs::exists(c.logits) && fs::exists(c.meta)) out.push_back(c);
    }
  }
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.gguf < b.gguf; });
  return out;
}

}  // namespace

TEST_CASE("reference path matches HF float64 logits on the repo's own test models") {
  const auto cases = cases_in(fs::path(HMOE_TEST_DATA) / "models");
  REQUIRE_MESSAGE(cases.size() >= 6, "tests/data/models must hold the generated test models (tools/make_test_models.py)");
  for (const auto& c : cases) {
    check_file(c, false);
    check_file(c, true);
  }
}

TEST_CASE("reference path matches HF float64 logits on the shared fixtures (../shared/data/fixtures)") {
  const auto cases = cases_in(fs::path(HMOE_SHARED_DATA) / "fixtures");
  if (cases.empty()) {
    MESSAGE("skipped: no fixtures at " << HMOE_SHARED_DATA << "/fixtures (they live beside the repo, not in it)");
    return;
  }
  CHECK(cases.size() == 6);
  for (const auto& c : cases) {
    check_file(c, false);
    check_file(c, true);
  }
}
