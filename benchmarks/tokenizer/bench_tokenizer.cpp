// bench_tokenizer: encoding speed of hmoe's tokenizer on a corpus repeated to a given size.
// benchmarks/tokenizer/bench_hf.py encodes the same strings with HF tokenizers and runs this for the ratio.

#include <hmoe/io/gguf.hpp>
#include <hmoe/tokenizer/json_string.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* usage = R"(usage: bench_tokenizer (--tokenizer tokenizer.json | --model M.gguf) --corpus corpus.jsonl
                       [--mb 5] [--repeat 3] [--threads N]

Repeats the corpus (one JSON string per line) until it holds --mb megabytes (10^6 bytes), then times
  loop:    encode() of each string in turn, one thread (best of --repeat; the first pass is also shown: it starts
           with an empty piece cache)
  nocache: the same with the piece cache off
  threads: the strings shared among N threads (default: all hardware threads), as HF's encode_batch does
Prints "RESULT <name> <MB/s> <tokens>" lines for scripts.
)";

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "bench_tokenizer: " << msg << "\n" << usage;
  std::exit(2);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> model, tokenizer_json, corpus_path;
  double mb = 5;
  int repeat = 3;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tokenizer") tokenizer_json = value();
    else if (a == "--model") model = value();
    else if (a == "--corpus") corpus_path = value();
    else if (a == "--mb") mb = std::stod(value());
    else if (a == "--repeat") repeat = std::max(1, std::stoi(value()));
    else if (a == "--threads") threads = static_cast<unsigned>(std::max(1, std::stoi(value())));
    else if (a == "-h" || a == "--help") { std::cout << usage; return 0; }
    else fail("unknown argument " + a);
  }
  if (model.has_value() == tokenizer_json.has_value() || !corpus_path) fail("missing arguments");

  const auto t_load = std::chrono::steady_clock::now();
  std::optional<hmoe::tokenizer::Tokenizer> tok;
  if (model) {
    const auto file = hmoe::gguf::File::open(*model);
    tok = hmoe::tokenizer::Tokenizer::from_gguf(file);
  } else {
    tok = hmoe::tokenizer::Tokenizer::from_json(*tokenizer_json);
  }
  const double load_s = seconds_since(t_load);

  std::vector<std::string> corpus;
  {
    std::ifstream in(*corpus_path);
    if (!in) fail("cannot read " + *corpus_path);
    for (std::string line; std::getline(in, line);) corpus.push_back(hmoe::tokenizer::json::parse_string_line(line));
  }
  std::vector<std::string> texts;
  std::size_t bytes = 0;
  while (bytes < mb * 1e6)
    for (const auto& s : corpus) {
      texts.push_back(s);
      bytes += s.size();
    }
  std::printf("tokenizer %s (pre %s, %d tokens, loaded in %.2f s, PCRE2 JIT %s)\n", tok->source().c_str(),
              std::string(tok->pre()).c_str(), tok->vocab_size(), load_s, tok->pre_tokenizer().jit() ? "on" : "off");
  std::printf("text: %zu strings, %.2f MB (%zu corpus lines repeated)\n", texts.size(), bytes / 1e6, corpus.size());

  const auto loop = [&] {
    std::size_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& s : texts) n += tok->encode(s).size();
    return std::pair{seconds_since(t0), n};
  };
  const auto report = [&](const char* name, double s, std::size_t tokens) {
    std::printf("%-8s %8.2f MB/s  %7.3f s  %zu tokens\n", name, bytes / 1e6 / s, s, tokens);
    std::printf("RESULT %s %.3f %zu\n", name, bytes / 1e6 / s, tokens);
  };

  double best = 1e30;
  std::size_t tokens = 0;
  for (int r = 0; r < repeat; ++r) {
    const auto [s, n] = loop();
    if (r == 0) report("first", s, n);
    best = std::min(best, s);
    tokens = n;
  }
  report("loop", best, tokens);

  tok->set_cache_capacity(0);
  best = 1e30;
  for (int r = 0; r < std::min(repeat, 2); ++r) best = std::min(best, loop().first);
  report("nocache", best, tokens);
  tok->set_cache_capacity(hmoe::tokenizer::Tokenizer::default_cache_capacity);

  best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    std::vector<std::size_t> counts(threads, 0);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    std::atomic<std::size_t> next{0};
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        // Chunks of 64 strings handed out in turn, so that the long ones do not all land on one thread.
        for (std::size_t b; (b = next.fetch_add(64)) < texts.size();)
          for (std::size_t i = b; i < std::min(b + 64, texts.size()); ++i) counts[t] += tok->encode(texts[i]).size();
      });
    for (auto& th : pool) th.join();
    best = std::min(best, seconds_since(t0));
    std::size_t n = 0;
    for (auto c : counts) n += c;
    if (n != tokens) fail("threads produced a different token count");
  }
  const std::string name = "threads" + std::to_string(threads);
  report(name.c_str(), best, tokens);
  return 0;
}
