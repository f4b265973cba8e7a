// The tokenizer's parts: the JSON string codec, UTF-8 helpers, the byte-level alphabet, pre-tokenizer
// behaviours, the streaming decoder, the tokenizer.json features DeepSeek does not use, and odd inputs.

#include <doctest/doctest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "hmoe/io/gguf.hpp"
#include "hmoe/tokenizer/byte_level.hpp"
#include "hmoe/tokenizer/json.hpp"
#include "hmoe/tokenizer/json_string.hpp"
#include "hmoe/tokenizer/pre_tokenizer.hpp"
#include "hmoe/tokenizer/tokenizer.hpp"
#include "hmoe/tokenizer/utf8.hpp"
#include "tokenizer_test_support.hpp"

namespace tk = hmoe::tokenizer;
namespace json = hmoe::tokenizer::json;
using namespace hmoe::tokenizer::test;

namespace {
std::string parse_error(std::string_view line) {
  try {
    (void)json::parse_string_line(line);
  } catch (const json::ParseError& e) {
    return e.what();
  }
  return "(no error)";
}
const tk::Tokenizer& tiny() {
  static const tk::Tokenizer t = tk::Tokenizer::from_json(tiny_dir / "tokenizer.json");
  return t;
}
}  // namespace

TEST_CASE("JSON strings: escapes, surrogate pairs, errors") {
  CHECK(json::parse_string_line(R"("plain")") == "plain");
  CHECK(json::parse_string_line(R"(  "a\"b\\c\/d\b\f\n\r\t"  )") == "a\"b\\c/d\b\f\n\r\t");
  CHECK(json::parse_string_line(R"("\u0041\u00e9\u4E2D")") == "Aé中");
  CHECK(json::parse_string_line(R"("\ud83d\ude00 \uD83D\uDC68\u200d")") == "😀 👨\u200d");
  CHECK(json::parse_string_line(R"("\u0000")") == std::string(1, '\0'));
  CHECK(json::parse_string_line(R"("raw UTF-8: 中文 😀")") == "raw UTF-8: 中文 😀");

  CHECK(parse_error(R"("\ud83d")").find("high surrogate") != std::string::npos);
  CHECK(parse_error(R"("\ud83dx")").find("high surrogate") != std::string::npos);
  CHECK(parse_error(R"("\ud83d\u0041")").find("non-low-surrogate") != std::string::npos);
  CHECK(parse_error(R"("\ude00")").find("lone low surrogate") != std::string::npos);
  CHECK(parse_error(R"("\u12")").find("\\u escape") != std::string::npos);
  CHECK(parse_error(R"("\uZZZZ")").find("hex digit") != std::string::npos);
  CHECK(parse_error(R"("\x41")").find("unknown escape") != std::string::npos);
  CHECK(parse_error("\"tab\there\"").find("control character") != std::string::npos);
  CHECK(parse_error("\"bad \xff byte\"").find("byte 5: invalid UTF-8") != std::string::npos);
  CHECK(parse_error(R"("open)").find("unterminated") != std::string::npos);
  CHECK(parse_error(R"("a" "b")").find("after the string") != std::string::npos);
  CHECK(parse_error(R"(abc)").find("expected a string") != std::string::npos);

  // The writer is Python's json.dumps(s, ensure_ascii=False) / ensure_ascii=True.
  CHECK(json::quote("a\"b\\c\n\r\t\b\f") == R"("a\"b\\c\n\r\t\b\f")");
  CHECK(json::quote(std::string("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\x7f\"");
  CHECK(json::quote("é😀\u2028") == "\"é😀\u2028\"");
  CHECK(json::quote("é😀/", true) == R"("\u00e9\ud83d\ude00/")");
  CHECK(json::quote("bad \xff\xe4\xb8 end") == "\"bad \uFFFD\uFFFD end\"");
  // Every corpus line was written by Python: writing the parsed string gives the line back.
  std::size_t differ = 0;
  for (const auto& line : read_lines(data_dir / "corpus.jsonl")) differ += json::quote(json::parse_string_line(line)) != line;
  CHECK(differ == 0);
  for (const auto& line : read_lines(data_dir / "cli_input.jsonl"))
    CHECK(json::quote(json::parse_string_line(line), true) == line);
}

TEST_CASE("JSON integer arrays") {
  CHECK(json::parse_int_array_line("[]").empty());
  CHECK(json::parse_int_array_line(" [ 1 , -2,3 ] ") == std::vector<std::int32_t>{1, -2, 3});
  CHECK(json::parse_int_array_line("[2147483647]") == std::vector<std::int32_t>{2147483647});
  CHECK_THROWS_AS(json::parse_int_array_line("[2147483648]"), json::ParseError);
  CHECK_THROWS_AS(json::parse_int_array_line("[1,]"), json::ParseError);
  CHECK_THROWS_AS(json::parse_int_array_line("[1.5]"), json::ParseError);
  CHECK_THROWS_AS(json::parse_int_array_line("[1e3]"), json::ParseError);
  CHECK_THROWS_AS(json::parse_int_array_line("[1] x"), json::ParseError);
  CHECK_THROWS_AS(json::parse_int_array_line("\"s\""), json::ParseError);
  std::string out;
  json::write_int_array(out, std::vector<std::int32_t>{0, 17, -5});
  CHECK(out == "[0,17,-5]");
}

TEST_CASE("JSON documents") {
  const auto v = json::parse(R"({"a": [1, 2.5, -3e2, true, false, null], "b": {"c": "d"}, "a": 0})");
  REQUIRE(v.is_object());
  CHECK(v.find("a")->items().size() == 6);  // the first of repeated keys
  CHECK(v.find("a")->items()[0].as_int() == 1);
  CHECK(v.find("a")->items()[1].as_double() == 2.5);
  CHECK_FALSE(v.find("a")->items()[1].is_integer());
  CHECK(v.find("a")->items()[2].as_double() == -300);
  CHECK(v.find("a")->items()[3].as_bool());
  CHECK(v.find("a")->items()[5].is_null());
  CHECK(v.find("b")->find("c")->as_string() == "d");
  CHECK(v.find("zz") == nullptr);
  CHECK_THROWS_AS(json::parse("{\"a\": 1,}"), json::ParseError);
  CHECK_THROWS_AS(json::parse("[01]"), json::ParseError);
  CHECK_THROWS_AS(json::parse("[1] [2]"), json::ParseError);
  CHECK_THROWS_AS(json::parse(std::string(1000, '[')), json::ParseError);  // too deep, not a stack overflow
}

TEST_CASE("UTF-8 helpers") {
  using tk::utf8::Step;
  CHECK(tk::utf8::is_valid("plain ASCII text, long enough for the fast path"));
  CHECK(tk::utf8::is_valid("é中😀\U0010FFFF"));
  for (const char* bad : {"\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5", "\x80", "\xe4\xb8"})
    CHECK_FALSE(tk::utf8::is_valid(bad));
  CHECK(tk::utf8::step("\xe4\xb8", 0).kind == Step::Incomplete);
  CHECK(tk::utf8::step("\xe4\xb8" "a", 0).kind == Step::Invalid);
  CHECK(tk::utf8::step("\xe4\xb8" "a", 0).length == 2);  // maximal subpart
  CHECK(tk::utf8::step("\xf0\x9f\x98\x80", 0).code_point == 0x1F600);
  std::size_t tail = 0;
  CHECK(tk::utf8::sanitize("ok\xff\xe4\xb8", &tail) == "ok\uFFFD");
  CHECK(tail == 2);
  CHECK(tk::utf8::sanitize("ok\xff\xe4\xb8") == "ok\uFFFD\uFFFD");
  CHECK(tk::utf8::sanitize("\xed\xa0\x80") == "\uFFFD\uFFFD\uFFFD");  // a surrogate: three maximal subparts
}

TEST_CASE("byte-level alphabet") {
  namespace bl = tk::byte_level;
  CHECK(bl::char_of(' ') == 0x120);
  CHECK(bl::char_of('\n') == 0x10A);
  CHECK(bl::char_of('a') == 'a');
  CHECK(bl::char_of(0xAD) == 0x143);
  std::set<char32_t> seen;
  for (unsigned b = 0; b < 256; ++b) {
    seen.insert(bl::char_of(static_cast<unsigned char>(b)));
    CHECK(bl::byte_of(bl::char_of(static_cast<unsigned char>(b))) == static_cast<int>(b));
  }
  CHECK(seen.size() == 256);
  CHECK(bl::encode(" the\n") == "ĠtheĊ");
  CHECK(bl::decode("Ġthe") == std::optional<std::string>(" the"));
  CHECK_FALSE(bl::decode("<｜User｜>").has_value());
}

TEST_CASE("pre-tokenizer: presets and split behaviours") {
  const auto v3 = tk::PreTokenizer::preset("deepseek-v3");
  // Reference pieces from HF tokenizers' pre_tokenize_str (then mapped back from the byte-level alphabet).
  CHECK(v3.pieces("Hello, world! 1234567 中文字カタカナ\n\n  x\u00a0\u180ey") ==
        std::vector<std::string>{"Hello", ",", " world", "!", " ", "123", "456", "7", " ", "中文字カタカナ", "\n\n",
                                 " ", " x", "\u00a0", "\u180ey"});
  CHECK(v3.pieces("don't .NET\t\tint x=1;") ==
        std::vector<std::string>{"don", "'t", " .", "NET", "\t", "\tint", " x", "=", "1", ";"});
  CHECK(v3.jit());

  const auto pieces = [](tk::SplitBehavior b, std::string_view re, bool invert, std::string_view text) {
    tk::PreTokenizer p;
    p.add_split(tk::Regex(re), b, invert);
    return p.pieces(text);
  };
  using B = tk::SplitBehavior;
  using V = std::vector<std::string>;
  // Expected values: HF tokenizers' Split(..., behavior).pre_tokenize_str.
  CHECK(pieces(B::Isolated, "\\d+", false, "a1b22c") == V{"a", "1", "b", "22", "c"});
  CHECK(pieces(B::Removed, "\\d+", false, "a1b22c") == V{"a", "b", "c"});
  CHECK(pieces(B::Removed, "\\d+", true, "a1b22c") == V{"1", "22"});
  CHECK(pieces(B::MergedWithPrevious, "\\d+", false, "a1b22c") == V{"a1", "b22", "c"});
  CHECK(pieces(B::MergedWithPrevious, "\\d", false, "a12b3") == V{"a1", "2", "b3"});
  CHECK(pieces(B::MergedWithPrevious, "\\d+", true, "a1b22c") == V{"a", "1b", "22c"});
  CHECK(pieces(B::MergedWithNext, "\\d+", false, "a1b22c") == V{"a", "1b", "22c"});
  CHECK(pieces(B::MergedWithNext, "\\d", false, "a12b3") == V{"a", "1", "2b", "3"});
  CHECK(pieces(B::MergedWithNext, "\\d+", true, "a1b22c") == V{"a1", "b22", "c"});
  CHECK(pieces(B::Contiguous, "\\d", false, "a12b3") == V{"a", "12", "b", "3"});

  tk::PreTokenizer spaced;
  spaced.add_split(tk::Regex("\\n"), B::Isolated, false);
  spaced.add_prefix_space();
  CHECK(spaced.pieces("a\nb") == V{" a", " \n", " b"});

  // PCRE2 and Oniguruma read these differently unless rewritten (regex.hpp).
  CHECK(pieces(B::Isolated, "\\s+", false, "a\u180e b\u3000c") == V{"a\u180e", " ", "b", "\u3000", "c"});
  CHECK(pieces(B::Contiguous, "\\p{Han}", false, "《怎完") == V{"《", "怎完"});

  // Characters newer than PCRE2 10.42's Unicode 14 (unicode_delta.hpp) split as in HF's Oniguruma (Unicode 16):
  // U+1FA77 and U+1FABF are symbols, U+11F50 a digit, U+0897 a mark.
  CHECK(v3.pieces("I \U0001FA77 it!! \U0001FABFx") == V{"I", " \U0001FA77", " it", "!!", " \U0001FABF", "x"});
  CHECK(v3.pieces("a\U00011F50\U00011F51b \u0897x") == V{"a", "\U00011F50\U00011F51", "b", " \u0897x"});
  CHECK_FALSE(tk::detail::has_newer_unicode("plain ASCII, long enough for eight bytes at a time; 中文 ✓ é"));
  CHECK(tk::detail::has_newer_unicode("plain ASCII, long enough for eight bytes at a time \U0001FA77"));
  CHECK(tk::detail::has_newer_unicode("\u0897"));
  CHECK_FALSE(tk::detail::has_newer_unicode("\u0896\xe0\xa2"));  // unassigned in both; a cut-off sequence

  // Invalid UTF-8 never matches, but is kept.
  CHECK(v3.pieces("ab\xff\xfe cd") == V{"ab", "\xff\xfe", " cd"});

  std::string message;
  try {
    (void)tk::PreTokenizer::preset("llama3");
  } catch (const tk::Error& e) {
    message = e.what();
  }
  CHECK(message == "unknown pre-tokenizer 'llama3' (known: deepseek-v3, deepseek-llm, deepseek-coder)");
  CHECK_THROWS_AS(tk::Regex("[unclosed"), tk::Error);
}

TEST_CASE("stream decoder: split multibyte characters come out whole") {
  const auto& tok = tiny();
  const auto byte_token = [&](unsigned char b) {
    return *tok.token_id(tk::byte_level::encode(std::string(1, static_cast<char>(b))));
  };
  tk::StreamDecoder s(tok);
  // 😀 = F0 9F 98 80, one byte token at a time.
  CHECK(s.push(byte_token(0xF0)).empty());
  CHECK(s.push(byte_token(0x9F)).empty());
  CHECK(s.push(byte_token(0x98)).empty());
  CHECK(s.pending() == 3);
  CHECK(s.push(byte_token(0x80)) == "😀");
  CHECK(s.pending() == 0);
  // 中 = E4 B8 AD after ASCII: the ASCII comes out at once.
  CHECK(s.push(byte_token('a')) == "a");
  CHECK(s.push(byte_token(0xE4)).empty());
  CHECK(s.push(byte_token(0xB8)).empty());
  CHECK(s.push(byte_token(0xAD)) == "中");
  // Bytes that cannot become a character: U+FFFD, and what follows is not held up.
  CHECK(s.push(byte_token(0xFF)) == "\uFFFD");
  CHECK(s.push(byte_token(0xE4)).empty());
  CHECK(s.push(byte_token('b')) == "\uFFFDb");
  // flush() gives up on an unfinished character.
  CHECK(s.push(byte_token(0xE4)).empty());
  CHECK(s.flush() == "\uFFFD");
  CHECK(s.flush().empty());
  // Control tokens give their text, or nothing when asked.
  CHECK(s.push(tok.bos()) == "<｜begin▁of▁sentence｜>");
  tk::StreamDecoder quiet(tok, /*special=*/false);
  CHECK(quiet.push(tok.bos()).empty());
  CHECK(quiet.push(*tok.token_id("<think>")) == "<think>");

  // Over the corpus: the concatenated stream is the text itself.
  std::size_t differ = 0;
  for (const auto& text : read_corpus()) {
    tk::StreamDecoder d(tok);
    std::string out;
    for (const auto id : tok.encode(text)) {
      const std::string piece = d.push(id);
      CHECK(tk::utf8::is_valid(piece));
      out += piece;
    }
    out += d.flush();
    differ += out != text;
  }
  CHECK(differ == 0);
}

TEST_CASE("tokenizer API on a small GGUF vocabulary") {
  TempDir dir;
  const MiniVocab v;
  mini_gguf(v).write(dir / "mini.gguf");
  const auto file = hmoe::gguf::File::open(dir / "mini.gguf");
  const auto tok = tk::Tokenizer::from_gguf(file);
  const std::int32_t bos = v.id("<｜begin▁of▁sentence｜>"), think = v.id("<think>");
  CHECK(tok.vocab_size() == static_cast<std::int32_t>(v.tokens.size()));
  CHECK(tok.pre() == "deepseek-v3");
  CHECK(tok.bos() == bos);
  CHECK(tok.eos() == bos);
  CHECK(tok.add_bos());
  CHECK(tok.token_text(v.id("Ġthe")) == "Ġthe");
  CHECK(tok.token_type(bos) == tk::TokenType::Control);
  CHECK(tok.token_type(think) == tk::TokenType::UserDefined);
  CHECK(tok.token_id("<think>") == think);
  CHECK_FALSE(tok.token_id("Ġnothing").has_value());

  using V = std::vector<std::int32_t>;
  CHECK(tok.encode(" the") == V{v.id("Ġthe")});
  CHECK(tok.encode("the") == V{v.byte('t'), v.id("he")});
  CHECK(tok.encode(" the<｜begin▁of▁sentence｜><think>") == V{v.id("Ġthe"), bos, think});
  // Without parse_special the control token is text; the user-defined one is still recognised.
  const auto plain = tok.encode("<｜begin▁of▁sentence｜><think>", false);
  CHECK(plain.size() > 2);
  CHECK(plain.back() == think);
  CHECK(tok.decode(plain) == "<｜begin▁of▁sentence｜><think>");
  CHECK(tok.decode(V{bos, v.id("Ġthe")}) == "<｜begin▁of▁sentence｜> the");
  CHECK(tok.decode(V{bos, v.id("Ġthe")}, /*special=*/false) == " the");
  CHECK(tok.encode("").empty());
  CHECK_THROWS_AS((void)tok.decode(V{tok.vocab_size()}), tk::Error);
  CHECK_THROWS_AS((void)tok.token_text(-1), tk::Error);
}

TEST_CASE("tokenizer.json features DeepSeek does not use (checked against HF)") {
  // Split behaviours, a literal Split, Digits, ByteLevel's GPT-2 regex and add_prefix_space, lstrip / rstrip /
  // single_word added tokens, "a b" merges: see make_features() in tools/make_tokenizer_corpus.py.
  const auto tok = tk::Tokenizer::from_json(data_dir / "features" / "tokenizer.json");
  CHECK(tok.pre() == "custom");
  std::size_t n = 0, mismatches = 0;
  for (const auto& line : read_lines(data_dir / "features" / "cases.jsonl")) {
    const auto row = json::parse(line);
    const std::string& text = row.find("text")->as_string();
    std::vector<std::int32_t> expected;
    for (const auto& x : row.find("ids")->items()) expected.push_back(static_cast<std::int32_t>(x.as_int()));
    const auto ids = tok.encode(text);
    ++n;
    if (ids != expected && ++mismatches <= 5)
      MESSAGE(json::quote(text) << "\n  expected " << show_ids(expected) << "\n  got      " << show_ids(ids));
  }
  MESSAGE("features: " << n << " strings, " << mismatches << " mismatches");
  CHECK(n > 500);
  CHECK(mismatches == 0);
}

TEST_CASE("odd inputs: invalid UTF-8, very long words, long whitespace runs") {
  const auto& tok = tiny();
  for (const std::string& text :
       {std::string("\xff\xfe abc \xc3"), std::string("a\xed\xa0\x80z"), std::string("\xe4\xb8 \xe4"),
        std::string(1 << 20, ' '), std::string(1 << 20, 'a'), std::string(300000, '7'),
        std::string(200000, '\n') + "x", [] {
          std::string s;
          for (int i = 0; i < 100000; ++i) s += "中";
          return s;
        }(),
        [] {
          std::string s;
          for (int i = 0; i < 50000; ++i) s += " \t\r\n";
          return s + "end";
        }()}) {
    CAPTURE(text.size());
    const auto ids = tok.encode(text);
    CHECK(!ids.empty());
    CHECK(tok.decode(ids) == text);
  }
}
