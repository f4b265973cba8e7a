// hmoe-eval: run a DeepSeek GGUF over a token sequence and write the logits of every position.
// Other tools script against these flags: keep them stable.

#include <hmoe/hmoe.hpp>

#include "../common/args.hpp"
#include "../common/model_choice.hpp"
#include <hmoe/model/memory_report.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr const char* usage = R"(hmoe-eval: logits of a DeepSeek (deepseek2) GGUF model over a token sequence.

usage: hmoe-eval --model M.gguf --tokens ID,ID,... [options]

  --model FILE        GGUF file (deepseek2 architecture); for split files give the -00001-of-0000N part
  --tokens LIST       comma-separated token ids, e.g. 0,17,5 (usually starting with BOS)
  --logits-out FILE   write float32 logits, row-major (tokens x vocab), little-endian
  --decode            feed the tokens one at a time through the KV cache (default: one batched prefill)
  --reference         same as --experts reference (and the exact GPU settings: --kv f32 --gpu-precision f32)
)" /* model_choice_help follows */;
constexpr const char* usage_rest = R"(  --threads N         worker threads (default: all hardware threads)
  --ctx N             KV cache size in tokens (default: the number of tokens; 512 for --perplexity)
  --generate N        after the tokens, generate N more greedily (argmax) through the KV cache; prints the
                      generated ids and their text
  --prompt TEXT       tokenize TEXT (with BOS) instead of giving --tokens
  --perplexity FILE   perplexity of a text file, computed as llama.cpp's llama-perplexity does: the text is
                      tokenized (with BOS), cut into chunks of --ctx tokens (default 512) each starting with
                      BOS, and only the second half of each chunk is scored
  --memory-report L   print what layout L (cpu, hybrid: routed experts in host RAM and the rest on the GPU,
                      or gpu) needs on the GPU and in host RAM per tensor group, with the KV cache for --ctx
                      (default 4096) tokens, and exit. Nothing is allocated.
  -h, --help          this text

Prints the model's shape, the time taken and the top-5 tokens of the last position.
)";

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "hmoe-eval: " << msg << "\n(run hmoe-eval --help for usage)\n";
  std::exit(2);
}

/// Perplexity of `text` in llama-perplexity's way, so the two tools' numbers can be compared directly.
template <class Model>
int perplexity(const Model& model, const hmoe::tokenizer::Tokenizer& tok, const std::string& text,
               std::int64_t ctx, hmoe::cpu::ThreadPool& pool) {
  std::vector<std::int32_t> tokens;
  if (tok.add_bos()) tokens.push_back(tok.bos());
  const auto body = tok.encode(text, /*parse_special=*/false);
  tokens.insert(tokens.end(), body.begin(), body.end());
  const auto chunks = static_cast<std::int64_t>(tokens.size()) / ctx;
  if (chunks < 1 || ctx < 2) fail("--perplexity: the text has " + std::to_string(tokens.size()) +
                                  " tokens, fewer than one --ctx chunk of " + std::to_string(ctx));
  const std::int64_t first = ctx / 2, vocab = model.hparams().vocab;
  double nll = 0;
  std::int64_t count = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t c = 0; c < chunks; ++c) {
    std::vector<std::int32_t> chunk(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
    if (tok.add_bos()) chunk[0] = tok.bos();
    auto cache = model.make_cache(ctx);
    const auto logits = model.forward(pool, chunk, cache);
    for (std::int64_t i = first; i + 1 < ctx; ++i) {
      const float* row = logits.data() + i * vocab;
      const float mx = *std::max_element(row, row + vocab);
      double sum = 0;
      for (std::int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
      nll += std::log(sum) + mx - row[tokens[static_cast<std::size_t>(c * ctx + i + 1)]];
      ++count;
    }
    std::fprintf(stderr, "[%lld/%lld] ppl %.4f\n", static_cast<long long>(c + 1), static_cast<long long>(chunks),
                 std::exp(nll / static_cast<double>(count)));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("perplexity %.4f over %lld scored tokens (%lld chunks of %lld; %.1f tok/s)\n",
              std::exp(nll / static_cast<double>(count)), static_cast<long long>(count), static_cast<long long>(chunks),
              static_cast<long long>(ctx), static_cast<double>(chunks * ctx) / secs);
  return 0;
}

std::vector<std::int32_t> parse_tokens(const std::string& s) {
  std::vector<std::int32_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      fail("--tokens: '" + item + "' is not a token id");
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) fail("--tokens: '" + item + "' is not a token id");
    out.push_back(static_cast<std::int32_t>(v));
  }
  if (out.empty()) fail("--tokens is empty");
  return out;
}

long long parse_count(const std::string& flag, const std::string& s) {
  return hmoe::examples::parse_count(flag, s, fail);
}

}  // namespace

struct Options {
  std::string model_path, logits_out, perplexity, prompt, memory_layout;
  hmoe::examples::ModelChoice layout;
  long long generate = 0, ctx = 0;
  std::vector<std::int32_t> tokens;
  bool decode = false;
  unsigned threads = 0;
};

template <class Model>
int run(const Model& model, Options o, std::chrono::steady_clock::time_point t0, const std::string& path_name) {
  auto& [model_path, logits_out, perplexity, prompt, memory_layout, layout, generate, ctx, tokens, decode, threads] = o;
  const auto& h = model.hparams();
  std::cerr << "model: " << model_path << ": " << h.layers << " layers (" << h.dense_layers << " dense), hidden "
            << h.hidden << ", " << h.heads << " heads, kv_lora " << h.kv_lora_rank << ", q_lora " << h.q_lora_rank
            << ", experts " << h.experts << " (top-" << h.experts_used
            << (h.experts_used != h.trained_experts_used ? " of the trained " + std::to_string(h.trained_experts_used) : "")
            << ", " << h.shared_experts << " shared, "
            << (h.gating == hmoe::Gating::Sigmoid ? "sigmoid" : "softmax") << "), vocab " << h.vocab << ", "
            << (h.layout == hmoe::AttentionLayout::SplitKvB ? "attn_k_b/attn_v_b" : "legacy attn_kv_b") << "\n";
  auto pool = hmoe::examples::make_pool(layout, threads);
  if (!perplexity.empty()) {
    std::ifstream in(perplexity, std::ios::binary);
    if (!in) fail("cannot read " + perplexity);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return ::perplexity(model, hmoe::tokenizer::Tokenizer::from_gguf(model.file()), text, ctx > 0 ? ctx : 512, pool);
  }
  std::optional<hmoe::tokenizer::Tokenizer> tok;
  if (!prompt.empty() || generate > 0) tok = hmoe::tokenizer::Tokenizer::from_gguf(model.file());
  if (!prompt.empty()) {
    if (tok->add_bos()) tokens.push_back(tok->bos());
    const auto ids = tok->encode(prompt);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  auto cache = model.make_cache(ctx > 0 ? ctx : static_cast<long long>(tokens.size() + generate));
  const auto t1 = std::chrono::steady_clock::now();

  std::vector<float> logits;
  if (decode) {
    logits.reserve(tokens.size() * static_cast<std::size_t>(h.vocab));
    for (const auto tok : tokens) {
      const auto step = model.forward(pool, std::span(&tok, 1), cache);
      logits.insert(logits.end(), step.begin(), step.end());
    }
  } else {
    logits = model.forward(pool, tokens, cache);
  }
  const auto t2 = std::chrono::steady_clock::now();
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double run_s = std::chrono::duration<double>(t2 - t1).count();
  std::cerr << "load " << load_s << " s; " << tokens.size() << " tokens " << (decode ? "decoded" : "prefilled")
            << " in " << run_s << " s (" << static_cast<double>(tokens.size()) / run_s << " tok/s, " << pool.size()
            << " threads, " << path_name << ")\n";

  if (!logits_out.empty()) {
    std::ofstream out(logits_out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    if (!out) fail("cannot write " + logits_out);
  }
  const float* last = logits.data() + (tokens.size() - 1) * static_cast<std::size_t>(h.vocab);
  if (generate > 0) {  // greedy continuation: ties go to the lowest id
    std::vector<std::int32_t> out;
    std::vector<float> step(last, last + h.vocab);
    for (long long i = 0; i < generate; ++i) {
      const auto id = static_cast<std::int32_t>(std::max_element(step.begin(), step.end()) - step.begin());
      out.push_back(id);
      if (i + 1 < generate) step = model.forward(pool, std::span(&id, 1), cache, hmoe::Logits::Last);
    }
    std::cout << "generated ids:";
    for (auto id : out) std::cout << " " << id;
    std::cout << "\ngenerated text: " << tok->decode(out) << "\n";
  }
  std::vector<std::int32_t> ids(static_cast<std::size_t>(h.vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + std::min<std::int64_t>(5, h.vocab), ids.end(),
                    [&](auto a, auto b) { return last[a] > last[b]; });
  std::cout << "top-5 at position " << tokens.size() - 1 << ":";
  for (int i = 0; i < std::min<std::int64_t>(5, h.vocab); ++i) std::cout << " " << ids[i] << " (" << last[ids[i]] << ")";
  std::cout << "\n";
  return 0;
}

int main(int argc, char** argv) {
  Options o;
  auto& [model_path, logits_out, perplexity, prompt, memory_layout, layout, generate, ctx, tokens, decode, threads] = o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << usage << hmoe::examples::model_choice_help << usage_rest;
      return 0;
    } else if (a == "--model" || a == "-m") model_path = value();
    else if (a == "--tokens") tokens = parse_tokens(value());
    else if (a == "--logits-out") logits_out = value();
    else if (a == "--decode") decode = true;
    else if (a == "--reference") layout.experts = "reference", layout.kv = "f32", layout.precision = "f32";
    else if (hmoe::examples::parse_model_choice_or(layout, argc, argv, i, fail)) continue;
    else if (a == "--memory-report") memory_layout = value();
    else if (a == "--threads" || a == "-t") threads = static_cast<unsigned>(parse_count(a, value()));
    else if (a == "--ctx") ctx = parse_count(a, value());
    else if (a == "--perplexity") perplexity = value();
    else if (a == "--prompt") prompt = value();
    else if (a == "--generate") generate = parse_count(a, value());
    else fail("unknown option '" + a + "'");
  }
  if (model_path.empty()) fail("--model is required");
  if (!memory_layout.empty()) {
    const auto plan = memory_layout == "cpu"      ? hmoe::LayoutPlan::all_cpu()
                      : memory_layout == "hybrid" ? hmoe::LayoutPlan::hybrid()
                      : memory_layout == "gpu"    ? hmoe::LayoutPlan::all_gpu()
                                                  : (fail("--memory-report takes cpu, hybrid or gpu"), hmoe::LayoutPlan{});
    try {
      const auto file = hmoe::gguf::File::open(model_path);
      const auto h = hmoe::read_hparams(file, hmoe::examples::overrides_of(layout));
      std::cout << model_path << ", layout " << memory_layout << ":\n"
                << hmoe::format(hmoe::memory_report(file, h, plan, ctx > 0 ? ctx : 4096), plan);
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "hmoe-eval: " << e.what() << "\n";
      return 1;
    }
  }
  if (int{!tokens.empty()} + int{!perplexity.empty()} + int{!prompt.empty()} != 1)
    fail("give exactly one of --tokens, --prompt and --perplexity");

  try {
    const auto t0 = std::chrono::steady_clock::now();
    return hmoe::examples::with_model(layout, hmoe::gguf::File::open(model_path),
                                      [&](const auto& model, const std::string& desc) { return run(model, o, t0, desc); });
  } catch (const std::exception& e) {
    std::cerr << "hmoe-eval: " << e.what() << "\n";
    return 1;
  }
}
