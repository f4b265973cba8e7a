/// \file
/// \brief Helpers for the tokenizer tests: data paths, JSON-lines files, a scratch directory and a minimal
///        metadata-only GGUF writer (for files with keys missing or wrong).
#pragma once

#include <doctest/doctest.h>

#include "../../support/temp_dir.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "hmoe/tokenizer/byte_level.hpp"
#include "hmoe/tokenizer/json_string.hpp"

namespace hmoe::tokenizer::test {

inline const std::filesystem::path data_dir = std::filesystem::path(HMOE_TEST_DATA) / "tokenizer";
inline const std::filesystem::path tiny_dir = data_dir / "tiny";
inline const std::filesystem::path v3_json =
    std::filesystem::path(HMOE_SHARED_DATA) / "deepseek-v3-tokenizer" / "tokenizer.json";

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<std::string> read_lines(const std::filesystem::path& p) {
  const std::string text = read_text(p);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto nl = text.find('\n', start);
    const auto end = nl == std::string::npos ? text.size() : nl;
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

/// corpus.jsonl: one JSON string per line.
inline std::vector<std::string> read_corpus() {
  std::vector<std::string> out;
  for (const auto& line : read_lines(data_dir / "corpus.jsonl")) out.push_back(json::parse_string_line(line));
  return out;
}

/// A file of JSON integer arrays, one per line.
inline std::vector<std::vector<std::int32_t>> read_ids(const std::filesystem::path& p) {
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& line : read_lines(p)) out.push_back(json::parse_int_array_line(line));
  return out;
}

inline std::string show_ids(const std::vector<std::int32_t>& ids) {
  std::string s;
  json::write_int_array(s, ids);
  return s;
}

using hmoe::test::TempDir;

/// Writes a GGUF v3 file holding only metadata.
class GgufWriter {
 public:
  void string(std::string_view key, std::string_view v) {
    begin(key, 8);
    put_string(v);
  }
  void u32(std::string_view key, std::uint32_t v) {
    begin(key, 4);
    put(v);
  }
  void boolean(std::string_view key, bool v) {
    begin(key, 7);
    put(static_cast<std::uint8_t>(v));
  }
  void strings(std::string_view key, const std::vector<std::string>& v) {
    begin(key, 9);
    put(std::uint32_t{8});
    put(static_cast<std::uint64_t>(v.size()));
    for (const auto& s : v) put_string(s);
  }
  void i32s(std::string_view key, const std::vector<std::int32_t>& v) {
    begin(key, 9);
    put(std::uint32_t{5});
    put(static_cast<std::uint64_t>(v.size()));
    for (auto x : v) put(x);
  }

  void write(const std::filesystem::path& p) const {
    std::string out = "GGUF";
    append(out, std::uint32_t{3});
    append(out, std::uint64_t{0});  // tensors
    append(out, count_);
    out += body_;
    while (out.size() % 32) out += '\0';
    std::ofstream f(p, std::ios::binary);
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    REQUIRE_MESSAGE(f, "cannot write " << p);
  }

 private:
  template <class T>
  static void append(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);  // little-endian hosts only, as the reader
  }
  template <class T>
  void put(T v) {
    append(body_, v);
  }
  void put_string(std::string_view s) {
    put(static_cast<std::uint64_t>(s.size()));
    body_.append(s);
  }
  void begin(std::string_view key, std::uint32_t type) {
    put_string(key);
    put(type);
    ++count_;
  }

  std::string body_;
  std::uint64_t count_ = 0;
};

/// A small byte-level vocabulary: the 256 byte tokens, then "Ġt", "he", "Ġthe"; merges "Ġ t", "h e", "Ġt he";
/// then <｜begin▁of▁sentence｜> (control), <think> (user-defined).
struct MiniVocab {
  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  std::vector<std::string> merges = {"Ġ t", "h e", "Ġt he"};

  MiniVocab() {
    for (unsigned b = 0; b < 256; ++b) tokens.push_back(byte_level::encode(std::string(1, static_cast<char>(b))));
    for (const char* t : {"Ġt", "he", "Ġthe"}) tokens.emplace_back(t);
    types.assign(tokens.size(), 1);
    tokens.emplace_back("<｜begin▁of▁sentence｜>");
    types.push_back(3);
    tokens.emplace_back("<think>");
    types.push_back(4);
  }
  std::int32_t id(std::string_view t) const {
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == t) return static_cast<std::int32_t>(i);
    FAIL("no token " << t);
    return -1;
  }
  std::int32_t byte(char c) const { return id(byte_level::encode(std::string(1, c))); }
};

/// The MiniVocab as a GGUF writer; `skip` leaves that key out.
inline GgufWriter mini_gguf(const MiniVocab& v, std::string_view skip = "", std::string_view pre = "deepseek-v3",
                            std::string_view model = "gpt2") {
  GgufWriter w;
  w.string("general.architecture", "deepseek2");
  if (skip != "tokenizer.ggml.model") w.string("tokenizer.ggml.model", model);
  if (skip != "tokenizer.ggml.pre") w.string("tokenizer.ggml.pre", pre);
  if (skip != "tokenizer.ggml.tokens") w.strings("tokenizer.ggml.tokens", v.tokens);
  if (skip != "tokenizer.ggml.token_type") w.i32s("tokenizer.ggml.token_type", v.types);
  if (skip != "tokenizer.ggml.merges") w.strings("tokenizer.ggml.merges", v.merges);
  w.u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(v.id("<｜begin▁of▁sentence｜>")));
  w.u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(v.id("<｜begin▁of▁sentence｜>")));
  w.boolean("tokenizer.ggml.add_bos_token", true);
  return w;
}

}  // namespace hmoe::tokenizer::test
