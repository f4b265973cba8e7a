// Loading broken deepseek2 files fails with a message naming the file, the key or tensor, and the reason; the
// valid tiny files load and run. The files and the expected messages come from tools/make_bad_models.py:
// tests/data/bad_models/expected.tsv holds one line per broken file, NAME<TAB>substring<TAB>substring...
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <hmoe/hmoe.hpp>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const fs::path dir = fs::path(HMOE_TEST_DATA) / "bad_models";
const std::vector<std::string> valid_files = {"valid", "valid-no-qlora", "valid-legacy-kvb"};

struct Expected {
  std::string name;
  std::vector<std::string> substrings;
};

std::vector<Expected> read_expected(const char* table = "expected.tsv") {
  std::ifstream in(dir / table);
  REQUIRE_MESSAGE(in, "cannot open " << (dir / table).string() << " (run tools/make_bad_models.py)");
  std::vector<Expected> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    for (std::size_t start = 0;;) {
      const auto tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    REQUIRE_MESSAGE(fields.size() >= 2, "expected.tsv line without substrings: " << line);
    out.push_back({fields[0], {fields.begin() + 1, fields.end()}});
  }
  return out;
}

hmoe::gguf::File open(const std::string& name) { return hmoe::gguf::File::open(dir / (name + ".gguf")); }

hmoe::ReferenceModel<> load(const std::string& name) { return hmoe::ReferenceModel<>::load(open(name)); }

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

void check_refused(const std::vector<Expected>& expected) {
  for (const auto& e : expected) {
    INFO("case " << e.name);
    std::string what;
    bool threw = false;
    try {
      auto model = load(e.name);
      (void)model;
    } catch (const std::exception& ex) {
      threw = true;
      what = ex.what();
    }
    CHECK_MESSAGE(threw, e.name << ".gguf loaded, but it should have been refused");
    if (!threw) continue;
    INFO("what(): " << what);
    // The first substring is the file name; the others must appear outside the path, so that a case named after
    // its key cannot pass on the file name alone.
    const auto path = (dir / (e.name + ".gguf")).string();
    std::string rest = what;
    for (auto at = rest.find(path); at != std::string::npos; at = rest.find(path, at)) rest.replace(at, path.size(), "<file>");
    CHECK_MESSAGE(what.find(e.substrings[0]) != std::string::npos, "missing \"" << e.substrings[0] << "\"");
    for (std::size_t i = 1; i < e.substrings.size(); ++i)
      CHECK_MESSAGE(rest.find(e.substrings[i]) != std::string::npos,
                    "missing \"" << e.substrings[i] << "\" (outside the file's path)");
  }
}

}  // namespace

TEST_CASE("every broken file fails to load, naming the file, the key or tensor and the reason") {
  const auto expected = read_expected();
  CHECK(expected.size() >= 20);
  check_refused(expected);
}

TEST_CASE("every file in bad_models is either valid or has an expected message") {
  std::set<std::string> known(valid_files.begin(), valid_files.end());
  for (const auto& e : read_expected("expected.tsv")) CHECK_MESSAGE(known.insert(e.name).second, "duplicate case " << e.name);
  for (const auto& f : fs::directory_iterator(dir))
    if (f.path().extension() == ".gguf") CHECK_MESSAGE(known.count(f.path().stem().string()), f.path().string());
  for (const auto& name : known) CHECK_MESSAGE(fs::exists(dir / (name + ".gguf")), name << ".gguf is missing");
}

TEST_CASE("the valid files load and produce finite logits") {
  for (const auto& name : valid_files) {
    INFO("file " << name << ".gguf");
    auto model = load(name);
    const auto& h = model.hparams();
    CHECK(h.hidden == 16);
    CHECK(h.vocab == 16);
    CHECK(h.layers == 2);
    hmoe::cpu::ThreadPool pool(2);
    auto cache = model.make_cache(8);
    const std::vector<std::int32_t> prompt = {1, 5, 15, 0, 7};
    const auto logits = model.forward(pool, prompt, cache);
    REQUIRE(logits.size() == prompt.size() * static_cast<std::size_t>(h.vocab));
    CHECK(all_finite(logits));
    const std::vector<std::int32_t> next = {3};
    const auto step = model.forward(pool, next, cache);
    CHECK(step.size() == static_cast<std::size_t>(h.vocab));
    CHECK(all_finite(step));
    CHECK(cache.size() == 6);
  }
}

TEST_CASE("the layouts are decided by the tensors") {
  SUBCASE("valid.gguf: q LoRA, split attn_k_b / attn_v_b, sigmoid routing") {
    auto model = load("valid");
    const auto& h = model.hparams();
    CHECK(h.q_lora_rank == 8);
    CHECK(h.layout == hmoe::AttentionLayout::SplitKvB);
    CHECK(h.gating == hmoe::Gating::Sigmoid);
    CHECK(h.qk_nope == 4);
    CHECK(h.qk_rope == 4);
    CHECK(h.v_head == 4);
    CHECK(h.kv_lora_rank == 8);
    CHECK(h.rope.yarn);
  }
  SUBCASE("valid-no-qlora.gguf: attn_q and no q_lora_rank key read as q_lora_rank 0") {
    auto model = load("valid-no-qlora");
    const auto& h = model.hparams();
    CHECK(h.q_lora_rank == 0);
    CHECK(h.gating == hmoe::Gating::Softmax);
    CHECK(h.shared_experts == 2);
    CHECK(h.expert_groups == 1);
  }
  SUBCASE("valid-legacy-kvb.gguf: attn_kv_b, no *_mla keys") {
    auto model = load("valid-legacy-kvb");
    const auto& h = model.hparams();
    CHECK(h.layout == hmoe::AttentionLayout::LegacyKvB);
    CHECK(h.qk_nope == 4);
    CHECK(h.v_head == 4);
    CHECK(h.q_lora_rank == 8);
  }
}

TEST_CASE("the legacy attn_kv_b file computes what the split file computes") {
  // valid-legacy-kvb.gguf holds valid.gguf's weights with attn_kv_b reassembled from attn_k_b / attn_v_b.
  auto split = load("valid");
  auto legacy = load("valid-legacy-kvb");
  hmoe::cpu::ThreadPool pool(2);
  auto c1 = split.make_cache(8);
  auto c2 = legacy.make_cache(8);
  const std::vector<std::int32_t> tokens = {2, 9, 4, 11, 0, 13};
  const auto a = split.forward(pool, tokens, c1);
  const auto b = legacy.forward(pool, tokens, c2);
  REQUIRE(a.size() == b.size());
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(a[i]) * a[i];
  }
  CHECK(norm > 0);
  CHECK(std::sqrt(diff / norm) < 1e-5);
}

TEST_CASE("a static dims type that does not match the file is refused, naming the type and the dimension") {
  std::string what;
  try {
    auto model = hmoe::ReferenceModel<hmoe::dims::DeepSeekV3>::load(open("valid"));
    (void)model;
  } catch (const std::exception& e) {
    what = e.what();
  }
  INFO("what(): " << what);
  CHECK(what.find("valid.gguf") != std::string::npos);
  CHECK(what.find("dims::DeepSeekV3") != std::string::npos);
  CHECK(what.find("hidden") != std::string::npos);
  CHECK(what.find("7168") != std::string::npos);
}

TEST_CASE("forward refuses token ids outside the vocabulary") {
  auto model = load("valid");
  hmoe::cpu::ThreadPool pool(2);
  auto cache = model.make_cache(8);
  for (std::int32_t bad : {16, 1000, -1}) {
    INFO("token id " << bad);
    const std::vector<std::int32_t> tokens = {1, bad};
    std::string what;
    try {
      (void)model.forward(pool, tokens, cache);
    } catch (const std::exception& e) {
      what = e.what();
    }
    INFO("what(): " << what);
    CHECK(what.find("token id " + std::to_string(bad)) != std::string::npos);
    CHECK(what.find("vocabulary") != std::string::npos);
    CHECK(cache.size() == 0);  // nothing was committed
  }
  // The cache is still usable afterwards.
  const std::vector<std::int32_t> ok = {1, 2};
  CHECK(all_finite(model.forward(pool, ok, cache)));
  CHECK(cache.size() == 2);
}

TEST_CASE("forward refuses more tokens than the cache holds") {
  auto model = load("valid");
  hmoe::cpu::ThreadPool pool(2);
  SUBCASE("one batch too long") {
    auto cache = model.make_cache(8);
    const std::vector<std::int32_t> tokens(9, 1);
    CHECK_THROWS_WITH(model.forward(pool, tokens, cache), doctest::Contains("--ctx"));
    CHECK(cache.size() == 0);
  }
  SUBCASE("the cache fills up over several calls") {
    auto cache = model.make_cache(8);
    const std::vector<std::int32_t> five(5, 3), four(4, 3), three(3, 3);
    CHECK_NOTHROW((void)model.forward(pool, five, cache));
    CHECK_THROWS_WITH(model.forward(pool, four, cache), doctest::Contains("--ctx"));
    CHECK(cache.size() == 5);
    CHECK_NOTHROW((void)model.forward(pool, three, cache));
    CHECK(cache.size() == 8);
  }
  SUBCASE("a cache of no positions is refused") {
    CHECK_THROWS_AS((void)model.make_cache(0), std::invalid_argument);
  }
}
