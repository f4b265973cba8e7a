// hmoe-chat: talk to a DeepSeek GGUF model. Interactive with line editing and history on a terminal; one user
// turn per line when stdin is a pipe; or a single --prompt / --prompt-file.

#include <editline/readline.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <hmoe/hmoe.hpp>
#include <utility>

#include "../common/model_choice.hpp"
#include <hmoe/model/sampling.hpp>
#include <hmoe/tokenizer/chat_template.hpp>
#include <hmoe/tokenizer/tokenizer.hpp>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr const char* usage = R"(hmoe-chat: chat with a DeepSeek (deepseek2) GGUF model on the CPU, or on a GPU plus the CPU.

usage: hmoe-chat --model M.gguf [options]

model and context
  -m, --model FILE          GGUF file; for split files give the -00001-of-0000N part
  -c, --ctx N               context (KV cache) size in tokens (default 4096, at most the model's)
  -t, --threads N           worker threads (default: all hardware threads)
  --overflow MODE           when a turn does not fit the context: 'error' (default: say so, keep the
                            conversation) or 'drop-oldest' (forget the oldest turns until it fits)

layout (which compile-time model type runs)
)" /* model_choice_help follows */;
constexpr const char* usage_rest = R"(
conversation
  -p, --prompt TEXT         answer this one user message and exit
  -f, --prompt-file FILE    the same, with the message read from a file
  -s, --system TEXT         system prompt
  -n, --max-new-tokens N    stop an answer after N tokens (default 512)
  --think                   start every answer with the <think> prefix (DeepSeek-R1)
  --template NAME           deepseek-v2 | deepseek-v3 | deepseek-r1 (default: from the GGUF's chat template)

sampling
  --temp T                  temperature (default 0.6; 0 = greedy)
  --top-k K                 keep the K most likely tokens (default 0 = off)
  --top-p P                 keep the smallest set with probability >= P (default 0.95)
  --min-p P                 drop tokens below P x the best one's probability (default 0 = off)
  --repeat-penalty R        penalise tokens seen in the last 64 (default 1.0 = off)
  --seed N                  random seed (default: from the clock; printed so a run can be repeated)

  -h, --help                this text

In the chat: /reset forgets the conversation, /exit (or Ctrl-D) quits. Ctrl-C stops the current answer.
After each answer it prints prompt and generation speed in tokens/s.
Without a terminal (piped stdin), each input line is one user message, and only answers are printed.
)";

std::atomic<bool> interrupted{false};
void on_sigint(int) { interrupted = true; }

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "hmoe-chat: " << msg << "\n(run hmoe-chat --help for usage)\n";
  std::exit(2);
}

template <class T>
T parse_number(const std::string& flag, const std::string& s) {
  std::istringstream in(s);
  T v{};
  if (!(in >> v) || !in.eof()) fail(flag + ": '" + s + "' is not a number");
  return v;
}

struct Options {
  std::string model, prompt, system, template_name, overflow = "error";
  hmoe::examples::ModelChoice layout;
  std::optional<std::string> prompt_file;
  long long ctx = 4096, max_new = 512;
  unsigned threads = 0;
  bool think = false, have_prompt = false, seed_given = false;
  hmoe::SamplingParams sampling{};
};

Options parse(int argc, char** argv) {
  Options o;
  o.sampling.top_p = 0.95f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << usage << hmoe::examples::model_choice_help << usage_rest;
      std::exit(0);
    } else if (a == "-m" || a == "--model") o.model = value();
    else if (a == "-c" || a == "--ctx") o.ctx = parse_number<long long>(a, value());
    else if (a == "-t" || a == "--threads") o.threads = parse_number<unsigned>(a, value());
    else if (hmoe::examples::parse_model_choice_or(o.layout, argc, argv, i, fail)) continue;
    else if (a == "--overflow") o.overflow = value();
    else if (a == "-p" || a == "--prompt") o.prompt = value(), o.have_prompt = true;
    else if (a == "-f" || a == "--prompt-file") o.prompt_file = value();
    else if (a == "-s" || a == "--system") o.system = value();
    else if (a == "-n" || a == "--max-new-tokens") o.max_new = parse_number<long long>(a, value());
    else if (a == "--think") o.think = true;
    else if (a == "--template") o.template_name = value();
    else if (a == "--temp") o.sampling.temperature = parse_number<float>(a, value());
    else if (a == "--top-k") o.sampling.top_k = parse_number<int>(a, value());
    else if (a == "--top-p") o.sampling.top_p = parse_number<float>(a, value());
    else if (a == "--min-p") o.sampling.min_p = parse_number<float>(a, value());
    else if (a == "--repeat-penalty") o.sampling.repeat_penalty = parse_number<float>(a, value());
    else if (a == "--seed") o.sampling.seed = parse_number<std::uint64_t>(a, value()), o.seed_given = true;
    else fail("unknown option '" + a + "'");
  }
  if (o.model.empty()) fail("--model is required");
  if (o.ctx <= 0) fail("--ctx must be > 0");
  if (o.max_new <= 0) fail("--max-new-tokens must be > 0");
  if (o.overflow != "error" && o.overflow != "drop-oldest") fail("--overflow is 'error' or 'drop-oldest', not '" + o.overflow + "'");
  if (o.prompt_file) {
    std::ifstream in(*o.prompt_file);
    if (!in) fail("cannot read --prompt-file " + *o.prompt_file);
    o.prompt.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    o.have_prompt = true;
  }
  if (!o.seed_given) o.sampling.seed = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return o;
}

hmoe::chat::Template choose_template(const Options& o, const hmoe::gguf::File& f) {
  using hmoe::chat::Template;
  if (!o.template_name.empty()) {
    for (auto t : {Template::DeepSeekV2, Template::DeepSeekV3, Template::DeepSeekR1})
      if (hmoe::chat::name(t) == o.template_name) return t;
    fail("--template '" + o.template_name + "' is not one of deepseek-v2, deepseek-v3, deepseek-r1");
  }
  if (const auto t = hmoe::chat::template_of(f)) return *t;
  std::cerr << "hmoe-chat: the file has no tokenizer.chat_template; using deepseek-v3 (override with --template)\n";
  return Template::DeepSeekV3;
}


/// One conversation: its messages, and the tokens the KV cache holds for it.
template <class Model>
class Chat {
 public:
  Chat(const Model& model, const hmoe::tokenizer::Tokenizer& tok, hmoe::chat::Template tmpl, const Options& o,
       hmoe::cpu::ThreadPool& pool)
      : model_(model), tok_(tok), tmpl_(tmpl), o_(o), pool_(pool), cache_(model.make_cache(o.ctx)),
        sampler_(o.sampling, static_cast<std::int32_t>(model.hparams().vocab)) {
    reset();
  }

  void reset() {
    messages_.clear();
    if (!o_.system.empty()) messages_.push_back({"system", o_.system});
    cached_.clear();
    cache_.clear();
  }

  /// Answers `user`, streaming the text to `out`. Returns false if the turn could not be run.
  bool answer(const std::string& user, std::ostream& out, bool show_stats) {
    messages_.push_back({"user", user});
    auto prompt = render_tokens();
    while (static_cast<long long>(prompt.size()) + 1 > o_.ctx) {
      if (o_.overflow != "drop-oldest" || !drop_oldest_turn()) {
        std::cerr << "\nhmoe-chat: this turn needs " << prompt.size() << " tokens but the context holds " << o_.ctx
                  << "; /reset, raise --ctx, or run with --overflow drop-oldest\n";
        messages_.pop_back();
        return false;
      }
      prompt = render_tokens();
    }
    // Reuse what the cache already holds of this prompt; re-run from the first difference.
    std::size_t same = 0;
    while (same < cached_.size() && same < prompt.size() && cached_[same] == prompt[same]) ++same;
    if (same == prompt.size()) --same;  // at least one token must run to get logits
    cache_.truncate(static_cast<std::int64_t>(same));
    cached_.resize(same);

    interrupted = false;
    const auto t0 = std::chrono::steady_clock::now();
    auto logits = model_.forward(pool_, std::span(prompt).subspan(same), cache_, hmoe::Logits::Last);
    cached_.insert(cached_.end(), prompt.begin() + static_cast<std::ptrdiff_t>(same), prompt.end());
    const auto t1 = std::chrono::steady_clock::now();

    hmoe::tokenizer::StreamDecoder stream(tok_);
    std::string reply;
    std::vector<std::int32_t> history = cached_;
    long long generated = 0;
    bool stopped_by_limit = false;
    if (o_.think) out << "<think>\n";  // the template put it in the prompt; show it as the answer's start
    while (!interrupted) {
      const auto id = sampler_.sample(logits, history);
      if (id == tok_.eos()) break;
      ++generated;
      const auto text = stream.push(id);
      reply += text;
      out << text << std::flush;
      history.push_back(id);
      if (generated >= o_.max_new) {
        stopped_by_limit = true;
        break;
      }
      if (static_cast<long long>(cached_.size()) + 1 >= o_.ctx) {
        std::cerr << "\n[context full at " << o_.ctx << " tokens: answer cut]";
        break;
      }
      logits = model_.forward(pool_, std::span(&id, 1), cache_, hmoe::Logits::Last);
      cached_.push_back(id);
    }
    const auto tail = stream.flush();
    reply += tail;
    out << tail << std::endl;
    const auto t2 = std::chrono::steady_clock::now();
    if (interrupted) std::cerr << "[stopped]\n";
    if (stopped_by_limit) std::cerr << "[--max-new-tokens " << o_.max_new << " reached]\n";
    messages_.push_back({"assistant", reply});
    if (show_stats) {
      const double p = std::chrono::duration<double>(t1 - t0).count(), g = std::chrono::duration<double>(t2 - t1).count();
      std::fprintf(stderr, "[prompt %zu tokens (%zu new) %.1f tok/s | generation %lld tokens %.1f tok/s]\n",
                   prompt.size(), prompt.size() - same, static_cast<double>(prompt.size() - same) / p, generated,
                   generated > 0 ? static_cast<double>(generated) / g : 0.0);
    }
    return true;
  }

 private:
  std::vector<std::int32_t> render_tokens() const {
    hmoe::chat::RenderOptions r;
    r.add_bos = true;
    r.force_think = o_.think;
    return tok_.encode(hmoe::chat::render(tmpl_, messages_, r), /*parse_special=*/true);
  }

  /// Drops the oldest user+assistant pair (keeping the system prompt and the current turn).
  bool drop_oldest_turn() {
    const std::size_t first = !messages_.empty() && messages_[0].role == "system" ? 1 : 0;
    if (messages_.size() < first + 3) return false;  // only the current user turn is left
    messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(first),
                    messages_.begin() + static_cast<std::ptrdiff_t>(first + 2));
    std::cerr << "[dropped the oldest turn to fit the context]\n";
    return true;
  }

  const Model& model_;
  const hmoe::tokenizer::Tokenizer& tok_;
  hmoe::chat::Template tmpl_;
  const Options& o_;
  hmoe::cpu::ThreadPool& pool_;
  decltype(std::declval<const Model&>().make_cache(1)) cache_;
  hmoe::Sampler sampler_;
  std::vector<hmoe::chat::Message> messages_;
  std::vector<std::int32_t> cached_;
};

}  // namespace

template <class Model>
int serve(const Options& o, const Model& model, const hmoe::tokenizer::Tokenizer& tok, hmoe::chat::Template tmpl,
          std::chrono::steady_clock::time_point t0, const std::string& layout) {
  const bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  const auto& h = model.hparams();
  if (o.ctx > h.context) fail("--ctx " + std::to_string(o.ctx) + " exceeds the model's context " + std::to_string(h.context));
  auto pool = hmoe::examples::make_pool(o.layout, o.threads);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << " done in " << load_s << " s: " << h.layers << " layers, " << h.experts << " experts (top-"
            << h.experts_used << "), vocab " << h.vocab << ", template " << hmoe::chat::name(tmpl) << ", "
            << pool.size() << " threads, " << layout << ", seed " << o.sampling.seed << "\n";

  Chat chat(model, tok, tmpl, o, pool);
  std::signal(SIGINT, on_sigint);
  if (o.have_prompt) return chat.answer(o.prompt, std::cout, true) ? 0 : 1;

  if (!tty) {  // scripts: one user message per line, answers only on stdout
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line == "/exit") break;
      if (line == "/reset") {
        chat.reset();
        continue;
      }
      if (!line.empty()) chat.answer(line, std::cout, false);
    }
    return 0;
  }
  std::cerr << "type a message; /reset forgets the conversation, /exit quits, Ctrl-C stops an answer\n";
  using_history();
  for (;;) {
    interrupted = false;
    char* raw = readline("> ");
    if (!raw) break;  // Ctrl-D
    std::string line(raw);
    std::free(raw);
    if (line.empty()) continue;
    add_history(line.c_str());
    if (line == "/exit") break;
    if (line == "/reset") {
      chat.reset();
      std::cerr << "[conversation reset]\n";
      continue;
    }
    chat.answer(line, std::cout, true);
  }
  return 0;
}

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  try {
    std::cerr << "loading " << o.model << " ..." << std::flush;
    const auto t0 = std::chrono::steady_clock::now();
    auto file = hmoe::gguf::File::open(o.model);
    const auto tok = hmoe::tokenizer::Tokenizer::from_gguf(file);
    const auto tmpl = choose_template(o, file);
    if (o.think && tmpl == hmoe::chat::Template::DeepSeekV2) fail("--think: the deepseek-v2 template has no thinking mode");
    return hmoe::examples::with_model(o.layout, std::move(file), [&](const auto& model, const std::string& layout) {
      return serve(o, model, tok, tmpl, t0, layout);
    });
  } catch (const std::exception& e) {
    std::cerr << "\nhmoe-chat: " << e.what() << "\n";
    return 1;
  }
}
