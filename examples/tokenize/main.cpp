// hmoe-tokenize: token ids of JSON strings (one per line), or the text of JSON id arrays with --decode.

#include <hmoe/io/gguf.hpp>
#include <hmoe/tokenizer/json_string.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr const char* usage = R"(hmoe-tokenize: byte-level BPE tokenization with a DeepSeek model's tokenizer.

usage: hmoe-tokenize (--model M.gguf | --tokenizer tokenizer.json) [--decode] [--no-special]

  --model FILE        read the tokenizer from a GGUF file's metadata (tokenizer.ggml.*)
  --tokenizer FILE    read a Hugging Face tokenizer.json (BOS/EOS from tokenizer_config.json beside it)
  --decode            read JSON arrays of ids, write JSON strings (default: the other way round)
  --no-special        encoding: special/control tokens written in the text are plain text, not their ids
                      decoding: control tokens give no text
  -h, --help          this text

Reads standard input one line at a time and writes one line per input line:
  encode:  "Hello, world!"   ->  [19923,14,2058,3]
  decode:  [19923,14,2058,3] ->  "Hello, world!"
Input strings use JSON escapes (\n, \", \uXXXX, surrogate pairs for characters above U+FFFF); output
strings are written as Python's json.dumps(s, ensure_ascii=False) writes them. No BOS is added. Bytes that
do not form valid UTF-8 (ids that split a character) come out as U+FFFD.
Exit status: 0, 1 for an input line that is not valid JSON of the expected kind (its number is printed),
2 for bad arguments or a tokenizer that cannot be loaded.
)";

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "hmoe-tokenize: " << msg << "\n(run hmoe-tokenize --help for usage)\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> model, tokenizer_json;
  bool decode = false, special = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "--model") {
      model = value();
    } else if (a == "--tokenizer") {
      tokenizer_json = value();
    } else if (a == "--decode") {
      decode = true;
    } else if (a == "--no-special") {
      special = false;
    } else {
      fail("unknown argument '" + std::string(a) + "'");
    }
  }
  if (model.has_value() == tokenizer_json.has_value()) fail("give exactly one of --model and --tokenizer");

  std::optional<hmoe::tokenizer::Tokenizer> tok;
  try {
    if (model) {
      const auto file = hmoe::gguf::File::open(*model);
      tok = hmoe::tokenizer::Tokenizer::from_gguf(file);
    } else {
      tok = hmoe::tokenizer::Tokenizer::from_json(*tokenizer_json);
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }

  namespace json = hmoe::tokenizer::json;
  std::ios::sync_with_stdio(false);
  std::string line, out;
  for (long n = 1; std::getline(std::cin, line); ++n) {
    out.clear();
    try {
      if (decode)
        json::write_string(out, tok->decode(json::parse_int_array_line(line), special));
      else
        json::write_int_array(out, tok->encode(json::parse_string_line(line), special));
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::cerr << "hmoe-tokenize: line " << n << ": " << e.what() << "\n";
      return 1;
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);  // one answer per line, also when driven interactively through a pipe
  }
  return 0;
}
