// Selective experts (`--experts-per-token K`, ModelOverrides::experts_per_token): fewer routed experts per token
// than the model was trained with.
//
// External reference: HF transformers' modelling code with `num_experts_per_tok = K` in the config, in float64
// (tests/data/selective-experts/, tools/make_selective_experts_fixtures.py). The reference model with K must match
// it within the tolerance of test_model.cpp (rel-L2 <= 1e-4 at every position, same argmax), prefill and decode.
// The drift that K costs against the trained count is printed (mean KL, top-1 agreement); the tests fail when the
// override is ignored (logits unchanged) or when an out-of-range K is not refused with its message.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <hmoe/hmoe.hpp>
#include <hmoe/tokenizer/json.hpp>

#include "../../support/closeness.hpp"
#include "logits_compare.hpp"

namespace fs = std::filesystem;
using hmoe::ModelOverrides;
using hmoe::test::compare_logits;

namespace {

constexpr double tolerance = 1e-4;  // as test_model.cpp: f32 against float64 with identical weights

const fs::path data = HMOE_TEST_DATA;
const fs::path fixtures = data / "selective-experts";

struct Case {
  std::string name;
  fs::path dir, gguf;
  std::int64_t trained = 0;
  std::vector<std::int64_t> ks;  ///< the trained count first, then fewer
  std::vector<std::int32_t> tokens;
};

hmoe::tokenizer::json::Value read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in.good(), "cannot read " << p.string());
  std::stringstream text;
  text << in.rdbuf();
  return hmoe::tokenizer::json::parse(text.str());
}

std::vector<Case> cases() {
  std::vector<Case> out;
  if (!fs::exists(fixtures)) return out;
  for (const auto& d : fs::directory_iterator(fixtures)) {
    if (!d.is_directory() || !fs::exists(d.path() / "meta.json")) continue;
    const auto meta = read_json(d.path() / "meta.json");
    Case c{d.path().filename().string(), d.path(), data / meta.find("gguf")->as_string(),
           meta.find("trained_experts_per_token")->as_int(), {}, {}};
    for (const auto& k : meta.find("experts_per_token")->items()) c.ks.push_back(k.as_int());
    for (const auto& t : meta.find("tokens")->items()) c.tokens.push_back(static_cast<std::int32_t>(t.as_int()));
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.name < b.name; });
  return out;
}

template <class Model>
std::vector<float> logits_of(const Model& model, const std::vector<std::int32_t>& tokens, bool decode) {
  hmoe::cpu::ThreadPool pool(2);
  auto cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
  if (!decode) return model.forward(pool, tokens, cache);
  std::vector<float> got;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto step = model.forward(pool, std::span(tokens).subspan(i, 1), cache);
    got.insert(got.end(), step.begin(), step.end());
  }
  return got;
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const hmoe::ModelError& e) {
    return e.what();
  }
  return "(no ModelError)";
}

/// Mean KL(trained || K), top-1 agreement and mean rel-L2 of K's logits against the trained count's, one line.
std::string drift_line(const std::string& what, std::int64_t k, std::int64_t trained, const std::vector<float>& with_k,
                       const std::vector<float>& as_trained, std::int64_t vocab, std::int64_t tokens) {
  const auto c = hmoe::test::closeness(with_k, as_trained, vocab);
  const auto a = compare_logits(with_k, as_trained, vocab);
  char line[256];
  std::snprintf(line, sizeof line, "%s: %lld of %lld experts/token: mean KL %.3e, top-1 agreement %.1f %% (%lld tokens), mean rel-L2 %.3f",
                what.c_str(), static_cast<long long>(k), static_cast<long long>(trained), c.kl, 100 * c.top1,
                static_cast<long long>(tokens), a.mean_rel_l2);
  return line;
}

}  // namespace

TEST_CASE("--experts-per-token K matches HF transformers run with num_experts_per_tok = K") {
  const auto all = cases();
  REQUIRE_MESSAGE(all.size() >= 4, "tests/data/selective-experts must hold the fixtures "
                                   "(tools/make_selective_experts_fixtures.py)");
  bool v2 = false, v3 = false;
  for (const auto& c : all) {
    for (const auto k : c.ks) {
      const auto want = hmoe::test::read_f32(c.dir / ("hf-k" + std::to_string(k) + ".f32"));
      const auto model = hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(c.gguf), ModelOverrides{k});
      const auto& h = model.hparams();
      (h.gating == hmoe::Gating::Sigmoid ? v3 : v2) = true;
      REQUIRE(h.trained_experts_used == c.trained);
      REQUIRE(h.experts_used == k);
      REQUIRE(want.size() == c.tokens.size() * static_cast<std::size_t>(h.vocab));
      for (const bool decode : {false, true}) {
        const std::string mode = decode ? "decode" : "prefill";
        INFO(c.name << " K=" << k << " " << mode);
        const auto got = logits_of(model, c.tokens, decode);
        REQUIRE(got.size() == want.size());
        const auto a = compare_logits(got, want, h.vocab);
        MESSAGE(c.name << " --experts-per-token " << k << " (trained " << c.trained << ") " << mode
                << " vs HF num_experts_per_tok=" << k << ": worst rel-L2 "
                << a.worst_rel_l2 << " at position " << a.worst_position << ", argmax mismatches "
                << a.argmax_mismatches << " of " << c.tokens.size());
        CHECK(a.worst_rel_l2 <= tolerance);
        CHECK(a.argmax_mismatches == 0);
      }
    }
  }
  CHECK_MESSAGE(v2, "no V2-shaped (softmax) case");
  CHECK_MESSAGE(v3, "no V3-shaped (sigmoid, grouped) case");
}

TEST_CASE("fewer experts per token change the logits; the drift against the trained count") {
  const auto all = cases();
  REQUIRE(all.size() >= 4);
  for (const auto& c : all) {
    const auto open = [&] { return hmoe::gguf::File::open(c.gguf); };  // a model owns its (move-only) file
    const auto trained = hmoe::ReferenceModel<>::load(open());
    const auto vocab = trained.hparams().vocab;
    const auto n = static_cast<std::int64_t>(c.tokens.size());
    const auto base = logits_of(trained, c.tokens, false);
    // K = the trained count is the trained model, bit for bit.
    CHECK(logits_of(hmoe::ReferenceModel<>::load(open(), ModelOverrides{c.trained}), c.tokens, false) == base);
    for (const auto k : c.ks) {
      if (k == c.trained) continue;
      const auto got = logits_of(hmoe::ReferenceModel<>::load(open(), ModelOverrides{k}), c.tokens, false);
      MESSAGE(drift_line(c.name, k, c.trained, got, base, vocab, n));
      // Not silently ignored: fewer experts move every position noticeably on these models.
      CHECK(compare_logits(got, base, vocab).mean_rel_l2 > 1e-3);
    }
  }
}

TEST_CASE("--experts-per-token outside 1..trained is refused, naming the file, the value and the limit") {
  const auto path = data / "models" / "dsv3-tiny" / "BF16.gguf";  // trained top-2 of 6, 3 groups, 2 kept
  const auto file = hmoe::gguf::File::open(path);
  const auto as_file = hmoe::read_hparams(file);
  CHECK(as_file.experts_used == 2);
  CHECK(as_file.trained_experts_used == 2);
  CHECK(hmoe::read_hparams(file, ModelOverrides{0}).experts_used == 2);
  const auto one = hmoe::read_hparams(file, ModelOverrides{1});
  CHECK(one.experts_used == 1);
  CHECK(one.trained_experts_used == 2);

  const auto more = error_of([&] { (void)hmoe::read_hparams(file, ModelOverrides{3}); });
  MESSAGE(more);
  CHECK(more.find(path.string()) != std::string::npos);
  CHECK(more.find("--experts-per-token 3") != std::string::npos);
  CHECK(more.find("more than the 2 routed experts per token the model was trained with (expert_used_count)") !=
        std::string::npos);
  CHECK(more.find("untested model") != std::string::npos);  // says why
  CHECK(error_of([&] { (void)hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(path), ModelOverrides{7}); })
            .find("--experts-per-token 7 is more than the 2") != std::string::npos);
  const auto negative = error_of([&] { (void)hmoe::read_hparams(file, ModelOverrides{-1}); });
  CHECK(negative.find(path.string() + ": --experts-per-token -1 is negative: give 1 to 2") != std::string::npos);

  // Group-limited routing keeps expert_group_used_count x experts per group; a file cannot have fewer than its
  // trained count there (read_hparams refuses it), so the check is seen with hyper-parameters built by hand.
  auto h = as_file;
  h.experts = 8, h.expert_groups = 4, h.expert_groups_used = 1, h.experts_used = h.trained_experts_used = 4;
  const auto grouped = error_of([&] { (void)hmoe::apply_overrides(h, ModelOverrides{3}, "hand-made"); });
  MESSAGE(grouped);
  CHECK(grouped == "hand-made: --experts-per-token 3 is more than the 2 experts that group-limited routing keeps "
                   "(expert_group_used_count 1 x 2 experts per group)");
  CHECK(hmoe::apply_overrides(h, ModelOverrides{2}, "hand-made").experts_used == 2);
}

namespace {
/// dsv3-tiny's shapes with a static experts_used, as dims::DeepSeekV3 has for the real model.
template <std::int64_t Used>
struct TinyV3Dims : hmoe::dims::Dynamic {
  static constexpr std::string_view name = "TinyV3Dims";
  static constexpr std::int64_t experts = 6, experts_used = Used;
};
}  // namespace

TEST_CASE("a static dims type names the trained count: it loads with fewer experts per token") {
  const auto path = data / "models" / "dsv3-tiny" / "BF16.gguf";
  const auto model = hmoe::ReferenceModel<TinyV3Dims<2>>::load(hmoe::gguf::File::open(path), ModelOverrides{1});
  CHECK(model.hparams().experts_used == 1);
  const auto wrong = error_of([&] {
    (void)hmoe::ReferenceModel<TinyV3Dims<1>>::load(hmoe::gguf::File::open(path), ModelOverrides{1});
  });
  CHECK(wrong.find("says experts_used = 1 but the file has 2") != std::string::npos);
}

TEST_CASE("drift of fewer experts per token on the shared fixtures (../shared/data/fixtures)") {
  const fs::path dir = fs::path(HMOE_SHARED_DATA) / "fixtures";
  bool any = false;
  for (const char* model : {"dsv3-mini", "dsv2lite-mini"}) {
    for (const char* type : {"BF16", "Q4_K_M"}) {
      const auto gguf = dir / model / (std::string(type) + ".gguf");
      if (!fs::exists(gguf) || !fs::exists(dir / model / "meta.json")) continue;
      any = true;
      const auto tokens = hmoe::test::read_meta_tokens(dir / model / "meta.json");
      const auto trained = hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(gguf));
      const auto t = trained.hparams().experts_used, vocab = trained.hparams().vocab;
      const auto base = logits_of(trained, tokens, false);
      // K = trained - 2 where the model allows it (dsv2lite-mini: 1 of 3), and trained - 1 (dsv3-mini: 1 of 2).
      for (std::int64_t k = std::max<std::int64_t>(1, t - 2); k < t; ++k) {
        const auto got = logits_of(hmoe::ReferenceModel<>::load(hmoe::gguf::File::open(gguf), ModelOverrides{k}), tokens, false);
        MESSAGE(drift_line(std::string(model) + "/" + type, k, t, got, base, vocab, static_cast<std::int64_t>(tokens.size())));
        CHECK(compare_logits(got, base, vocab).mean_rel_l2 > 1e-3);
      }
    }
  }
  if (!any) MESSAGE("skipped: no fixtures at " << dir.string() << " (they live beside the repo, not in it)");
}
