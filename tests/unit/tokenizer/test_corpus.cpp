// Exactness against HF `tokenizers`: every corpus line must encode to the reference ids and decode back to
// itself, for the DeepSeek-V3 tokenizer (from ../shared, when present) and for the small trained tokenizer in
// tests/data/tokenizer/tiny (from its tokenizer.json and from its GGUF). See tools/make_tokenizer_corpus.py.

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "hmoe/io/gguf.hpp"
#include "hmoe/tokenizer/json.hpp"
#include "hmoe/tokenizer/tokenizer.hpp"
#include "tokenizer_test_support.hpp"

namespace tk = hmoe::tokenizer;
using namespace hmoe::tokenizer::test;

namespace {

/// Encodes every corpus line and compares with `expected`; checks decode(encode(s)) == s.
void check_corpus(const tk::Tokenizer& tok, const std::vector<std::string>& corpus,
                  const std::vector<std::vector<std::int32_t>>& expected, const std::string& what) {
  REQUIRE(corpus.size() == expected.size());
  std::size_t mismatches = 0, roundtrip = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    const auto ids = tok.encode(corpus[i]);
    if (ids != expected[i]) {
      if (++mismatches <= 5)
        MESSAGE(what << ": line " << i + 1 << " " << tk::json::quote(corpus[i].substr(0, 120)) << "\n  expected "
                     << show_ids(expected[i]) << "\n  got      " << show_ids(ids));
    }
    if (tok.decode(ids) != corpus[i]) {
      if (++roundtrip <= 5) MESSAGE(what << ": decode(encode(s)) != s for line " << i + 1);
    }
  }
  MESSAGE(what << ": " << corpus.size() << " strings, " << mismatches << " mismatches, " << roundtrip
               << " round-trip failures");
  CHECK(mismatches == 0);
  CHECK(roundtrip == 0);
}

/// The lines of nospecial.jsonl: ids without parsing special tokens, for lines where that changes them.
struct NoSpecial {
  std::size_t line;
  std::vector<std::int32_t> ids;
};
std::vector<NoSpecial> read_nospecial(const char* key) {
  std::vector<NoSpecial> out;
  for (const auto& line : read_lines(data_dir / "nospecial.jsonl")) {
    const auto v = tk::json::parse(line);
    const auto* ids = v.find(key);
    if (!ids) continue;
    NoSpecial n{static_cast<std::size_t>(v.find("line")->as_int()), {}};
    for (const auto& x : ids->items()) n.ids.push_back(static_cast<std::int32_t>(x.as_int()));
    out.push_back(std::move(n));
  }
  return out;
}

void check_nospecial(const tk::Tokenizer& tok, const std::vector<std::string>& corpus, const char* key,
                     const std::string& what) {
  const auto rows = read_nospecial(key);
  REQUIRE(!rows.empty());
  std::size_t mismatches = 0;
  for (const auto& r : rows) {
    REQUIRE(r.line >= 1);
    REQUIRE(r.line <= corpus.size());
    const auto ids = tok.encode(corpus[r.line - 1], /*parse_special=*/false);
    if (ids != r.ids && ++mismatches <= 5)
      MESSAGE(what << " (parse_special off): line " << r.line << "\n  expected " << show_ids(r.ids) << "\n  got      "
                   << show_ids(ids));
    CHECK(tok.decode(ids) == corpus[r.line - 1]);
  }
  MESSAGE(what << " (parse_special off): " << rows.size() << " strings, " << mismatches << " mismatches");
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("corpus: the small trained tokenizer, from tokenizer.json and from GGUF, matches HF tokenizers") {
  const auto corpus = read_corpus();
  REQUIRE(corpus.size() >= 2000);
  const auto expected = read_ids(tiny_dir / "expected.jsonl");

  SUBCASE("tokenizer.json") {
    const auto tok = tk::Tokenizer::from_json(tiny_dir / "tokenizer.json");
    CHECK(tok.pre() == "deepseek-v3");
    check_corpus(tok, corpus, expected, "tiny tokenizer.json");
    check_nospecial(tok, corpus, "tiny", "tiny tokenizer.json");
  }
  SUBCASE("GGUF") {
    const auto file = hmoe::gguf::File::open(tiny_dir / "tokenizer.gguf");
    const auto tok = tk::Tokenizer::from_gguf(file);
    CHECK(tok.pre() == "deepseek-v3");
    check_corpus(tok, corpus, expected, "tiny GGUF");
    check_nospecial(tok, corpus, "tiny", "tiny GGUF");
  }
  SUBCASE("both loaders agree on everything else") {
    const auto a = tk::Tokenizer::from_json(tiny_dir / "tokenizer.json");
    const auto file = hmoe::gguf::File::open(tiny_dir / "tokenizer.gguf");
    const auto b = tk::Tokenizer::from_gguf(file);
    CHECK(a.vocab_size() == b.vocab_size());
    CHECK(a.bos() == b.bos());
    CHECK(a.eos() == b.eos());
    CHECK(a.bos() == 0);
    CHECK(a.eos() == 1);
    CHECK(a.add_bos());
    CHECK(b.add_bos());
    for (std::int32_t id = 0; id < a.vocab_size(); ++id) {
      CHECK(a.token_text(id) == b.token_text(id));
      CHECK(a.piece(id) == b.piece(id));
      CHECK(a.token_id(a.token_text(id)) == id);
    }
  }
}

TEST_CASE("corpus: DeepSeek-V3 tokenizer.json matches HF tokenizers") {
  if (!std::filesystem::exists(v3_json)) {
    MESSAGE("skipped: " << v3_json << " not found (the ../shared reference data)");
    return;
  }
  const auto corpus = read_corpus();
  const auto tok = tk::Tokenizer::from_json(v3_json);
  CHECK(tok.pre() == "deepseek-v3");
  CHECK(tok.vocab_size() == 128815);
  CHECK(tok.bos() == 0);
  CHECK(tok.eos() == 1);
  CHECK(tok.add_bos());
  CHECK(tok.token_id("<｜User｜>") == 128803);
  CHECK(tok.token_id("<｜Assistant｜>") == 128804);
  CHECK(tok.token_id("Ġthe").has_value());
  CHECK(tok.token_text(0) == "<｜begin▁of▁sentence｜>");
  check_corpus(tok, corpus, read_ids(data_dir / "expected.jsonl"), "DeepSeek-V3");
  check_nospecial(tok, corpus, "v3", "DeepSeek-V3");

  SUBCASE("the same ids from several threads at once, and without the cache") {
    const auto expected = read_ids(data_dir / "expected.jsonl");
    std::vector<std::size_t> bad(3, 0);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < bad.size(); ++t)
      threads.emplace_back([&, t] {
        for (std::size_t i = t; i < corpus.size(); i += bad.size())
          if (tok.encode(corpus[i]) != expected[i]) ++bad[t];
      });
    for (auto& th : threads) th.join();
    for (auto b : bad) CHECK(b == 0);
    const tk::Tokenizer copy = tok;
    copy.set_cache_capacity(0);
    std::size_t uncached = 0;
    for (std::size_t i = 0; i < corpus.size(); ++i) uncached += tok.encode(corpus[i]) != expected[i];
    CHECK(uncached == 0);
    copy.set_cache_capacity(tk::Tokenizer::default_cache_capacity);
  }
}

// llama.cpp ships vocabulary-only GGUFs with reference tokenizations made by HF (models/ggml-vocab-*.gguf with
// .inp/.out). tools/make_test_models.py unpacks llama.cpp into .deps/; when it is there, check the DeepSeek ones
// (deepseek-llm is the V2 / V2-Lite pre-tokenizer).
TEST_CASE("llama.cpp's vocabulary test files for deepseek-llm and deepseek-coder (when .deps/ has them)") {
  namespace fs = std::filesystem;
  const fs::path deps = fs::path(HMOE_TEST_DATA) / ".." / ".." / ".deps";
  fs::path models;
  std::error_code ec;
  if (fs::is_directory(deps, ec))
    for (const auto& e : fs::directory_iterator(deps, ec))
      if (e.path().filename().string().starts_with("llama_cpp_python") &&
          fs::exists(e.path() / "vendor/llama.cpp/models/ggml-vocab-deepseek-llm.gguf", ec))
        models = e.path() / "vendor/llama.cpp/models";
  if (models.empty()) {
    MESSAGE("skipped: no llama.cpp checkout under " << deps << " (tools/make_test_models.py fetches it)");
    return;
  }
  for (const std::string name : {"deepseek-llm", "deepseek-coder"}) {
    CAPTURE(name);
    const auto file = hmoe::gguf::File::open(models / ("ggml-vocab-" + name + ".gguf"));
    const auto tok = tk::Tokenizer::from_gguf(file);
    CHECK(tok.pre() == name);
    const std::string inp = read_text(models / ("ggml-vocab-" + name + ".gguf.inp"));
    const auto out = read_lines(models / ("ggml-vocab-" + name + ".gguf.out"));
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::size_t pos = 0, n = 0, mismatches = 0;
    for (; n < out.size(); ++n) {
      const auto next = inp.find(sep, pos);
      if (next == std::string::npos) break;
      const std::string text = inp.substr(pos, next - pos);
      pos = next + sep.size();
      std::vector<std::int32_t> expected;
      std::istringstream ss(out[n]);
      for (std::int32_t id; ss >> id;) expected.push_back(id);
      const auto ids = tok.encode(text);
      if (ids != expected && ++mismatches <= 5)
        MESSAGE(name << ": " << tk::json::quote(text) << "\n  expected " << show_ids(expected) << "\n  got      "
                     << show_ids(ids));
      CHECK(tok.decode(ids) == text);
    }
    MESSAGE(name << ": " << n << " llama.cpp reference strings, " << mismatches << " mismatches");
    CHECK(n >= 40);
    CHECK(mismatches == 0);
  }
}
