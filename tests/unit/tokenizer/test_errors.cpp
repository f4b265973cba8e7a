// Loading errors: each names the file and the key (GGUF) or JSON path (tokenizer.json) and says what is wrong.

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <string>

#include "hmoe/io/gguf.hpp"
#include "hmoe/tokenizer/tokenizer.hpp"
#include "tokenizer_test_support.hpp"

namespace tk = hmoe::tokenizer;
using namespace hmoe::tokenizer::test;

namespace {

/// The message of the std::runtime_error that `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::string gguf_error(const GgufWriter& w, const std::filesystem::path& p) {
  w.write(p);
  return error_of([&] {
    const auto file = hmoe::gguf::File::open(p);
    (void)tk::Tokenizer::from_gguf(file);
  });
}

void write(const std::filesystem::path& p, std::string_view text) {
  std::ofstream(p, std::ios::binary) << text;
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("GGUF: an unknown pre-tokenizer is named, with the known ones") {
  TempDir dir;
  const auto path = dir / "pre.gguf";
  const std::string msg = gguf_error(mini_gguf(MiniVocab{}, "", "qwen2"), path);
  CHECK(msg == path.string() + ": tokenizer.ggml.pre: unknown pre-tokenizer 'qwen2' (known: deepseek-v3, " +
                   "deepseek-llm, deepseek-coder)");
}

TEST_CASE("GGUF: missing keys") {
  TempDir dir;
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
    CAPTURE(key);
    const auto path = dir / "missing.gguf";
    const std::string msg = gguf_error(mini_gguf(MiniVocab{}, key), path);
    CHECK(msg == path.string() + ": missing metadata key '" + key + "'");
  }
  // token_type is optional (every token is then ordinary), as in llama.cpp.
  const auto path = dir / "no_types.gguf";
  mini_gguf(MiniVocab{}, "tokenizer.ggml.token_type").write(path);
  const auto file = hmoe::gguf::File::open(path);
  const auto tok = tk::Tokenizer::from_gguf(file);
  CHECK(tok.token_type(0) == tk::TokenType::Normal);
}

TEST_CASE("GGUF: wrong values") {
  TempDir dir;
  const auto path = dir / "bad.gguf";
  CHECK(gguf_error(mini_gguf(MiniVocab{}, "", "deepseek-v3", "llama"), path) ==
        path.string() + ": tokenizer.ggml.model: is 'llama', but only byte-level BPE tokenizers ('gpt2', as "
                        "DeepSeek models use) are supported");

  MiniVocab short_types;
  short_types.types.pop_back();
  CHECK(gguf_error(mini_gguf(short_types), path) ==
        path.string() + ": tokenizer.ggml.token_type: has 260 entries but tokenizer.ggml.tokens has 261");

  MiniVocab bad_type;
  bad_type.types[5] = 9;
  CHECK(gguf_error(mini_gguf(bad_type), path) ==
        path.string() + ": tokenizer.ggml.token_type: token 5 has unknown type 9");

  MiniVocab unknown_merge;
  unknown_merge.merges.push_back("Ġthe xyz");
  CHECK(gguf_error(mini_gguf(unknown_merge), path) ==
        path.string() + ": tokenizer.ggml.merges: merge 3 \"Ġthe xyz\": token \"xyz\" is not in the vocabulary");

  MiniVocab unmerged;
  unmerged.merges.push_back("t h");  // "th" is no token
  CHECK(gguf_error(mini_gguf(unmerged), path) ==
        path.string() + ": tokenizer.ggml.merges: merge 3 \"t h\": token \"th\" is not in the vocabulary");

  MiniVocab no_space;
  no_space.merges.push_back("Ġthe");
  CHECK(gguf_error(mini_gguf(no_space), path) ==
        path.string() + ": tokenizer.ggml.merges: merge 3 \"Ġthe\" is not two tokens separated by a space");

  GgufWriter w = mini_gguf(MiniVocab{});
  w.u32("tokenizer.ggml.bos_token_id", 5000);  // repeated key: the reader refuses it, naming it
  CHECK(contains(gguf_error(w, path), "tokenizer.ggml.bos_token_id"));

  MiniVocab v;
  GgufWriter far;
  far.string("tokenizer.ggml.model", "gpt2");
  far.string("tokenizer.ggml.pre", "deepseek-llm");
  far.strings("tokenizer.ggml.tokens", v.tokens);
  far.strings("tokenizer.ggml.merges", v.merges);
  far.u32("tokenizer.ggml.eos_token_id", 261);
  CHECK(gguf_error(far, path) ==
        path.string() + ": tokenizer.ggml.eos_token_id: is 261, outside the vocabulary of 261 tokens");
}

TEST_CASE("tokenizer.json: errors") {
  TempDir dir;
  const auto path = dir / "tokenizer.json";
  const auto json_error = [&](std::string_view text) {
    write(path, text);
    return error_of([&] { (void)tk::Tokenizer::from_json(path); });
  };
  CHECK(error_of([&] { (void)tk::Tokenizer::from_json(dir / "absent.json"); }) ==
        (dir / "absent.json").string() + ": cannot open");
  CHECK(json_error("{\"model\": ") == path.string() + ": invalid JSON: byte 10: unexpected end of input");
  CHECK(json_error("[]") == path.string() + ": not a JSON object");
  CHECK(json_error("{}") == path.string() + ": model: missing");
  CHECK(json_error(R"({"model": {"type": "WordPiece", "vocab": {}}})") ==
        path.string() + ": model.type: is \"WordPiece\", but only \"BPE\" is supported");
  CHECK(json_error(R"({"model": {"type": "BPE", "merges": []}})") ==
        path.string() + ": model.vocab: missing or not an object");
  CHECK(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})") ==
        path.string() + ": model.vocab: \"b\" and \"a\" both have id 0");
  CHECK(json_error(R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})") ==
        path.string() + ": model.vocab: \"a\" has id -1, not a non-negative integer");
  CHECK(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})") ==
        path.string() + ": model.merges[0]: token \"ab\" is not in the vocabulary");
  CHECK(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}})") ==
        path.string() + ": model.merges[0]: \"a b c\" is not two tokens separated by one space");
  CHECK(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": true}})") ==
        path.string() + ": model.byte_fallback: byte fallback is not supported (the tokenizer must be byte-level)");
  const std::string ok_model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]})";
  CHECK(json_error("{" + ok_model + R"(, "normalizer": {"type": "NFC"}})") ==
        path.string() + ": normalizer: type \"NFC\" is not supported (only none or an empty Sequence)");
  CHECK(json_error("{" + ok_model + R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Metaspace"}]}})") ==
        path.string() + ": pre_tokenizer.pretokenizers[0]: pre-tokenizer type \"Metaspace\" is not supported "
                        "(supported: Sequence, Split, ByteLevel, Digits)");
  CHECK(json_error("{" + ok_model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}})")
            .starts_with(path.string() + ": pre_tokenizer.pattern: cannot compile the regular expression \"(a\": "));
  CHECK(json_error("{" + ok_model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}})") ==
        path.string() + ": pre_tokenizer.behavior: \"Sideways\" is unknown");
  CHECK(json_error("{" + ok_model + R"(, "decoder": {"type": "WordPiece"}})") ==
        path.string() + ": decoder: type \"WordPiece\" is not supported (only ByteLevel)");

  // A minimal valid one: no pre-tokenizer, merges as pairs.
  write(path, "{" + ok_model + "}");
  const auto tok = tk::Tokenizer::from_json(path);
  CHECK(tok.encode("abab") == std::vector<std::int32_t>{2, 2});
  CHECK(tok.pre() == "custom");
  CHECK(tok.bos() == -1);
  CHECK_FALSE(tok.add_bos());

  // tokenizer_config.json naming a token that does not exist.
  write(dir / "tokenizer_config.json", R"({"bos_token": {"content": "<s>"}, "add_bos_token": true})");
  CHECK(error_of([&] { (void)tk::Tokenizer::from_json(path); }) ==
        (dir / "tokenizer_config.json").string() + ": bos_token \"<s>\" is not a token of " + path.string());
}
