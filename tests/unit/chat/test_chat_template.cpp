// hmoe::chat: render() against the official DeepSeek templates (tests/data/chat/cases.jsonl, made by
// tools/make_chat_template_fixtures.py with jinja2 / transformers), detect(), template_of().
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "../../support/error_of.hpp"

#include <boost/json/src.hpp>  // Boost.JSON, header-only: compiled into this test alone

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "hmoe/tokenizer/chat_template.hpp"

using namespace hmoe;
using chat::Message;
using chat::Template;

namespace {

const std::filesystem::path data_dir = std::filesystem::path(HMOE_TEST_DATA) / "chat";
const std::filesystem::path shared_dir = std::filesystem::path(HMOE_SHARED_DATA);

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Template template_named(std::string_view n) {
  if (n == "DeepSeekV2") return Template::DeepSeekV2;
  if (n == "DeepSeekV3") return Template::DeepSeekV3;
  if (n == "DeepSeekR1") return Template::DeepSeekR1;
  FAIL("unknown template name in cases.jsonl: " << n);
  return Template::DeepSeekV3;
}

using hmoe::test::error_of;

// Excerpts that identify each official template (from the texts named in tools/make_chat_template_fixtures.py;
// the full V3 text is checked below when ../shared is present).
const std::string v2_excerpt =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}";
const std::string v3_excerpt =
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}"
    "{%- endif %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}";
const std::string r1_excerpt =
    "{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";
// ChatML (Qwen-style): not a DeepSeek template.
const std::string chatml =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A minimal GGUF v3 file: no tensors, the given string metadata.
void write_gguf(const std::filesystem::path& p, const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string b = "GGUF";
  const auto u32 = [&b](std::uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(char(v >> (8 * i))); };
  const auto u64 = [&b](std::uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(char(v >> (8 * i))); };
  const auto str = [&](const std::string& s) {
    u64(s.size());
    b += s;
  };
  u32(3);
  u64(0);
  u64(kv.size());
  for (const auto& [k, v] : kv) {
    str(k);
    u32(8);  // GGUF_TYPE_STRING
    str(v);
  }
  while (b.size() % 32) b.push_back('\0');
  std::ofstream out(p, std::ios::binary);
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  REQUIRE(out);
}

}  // namespace

TEST_CASE("render() matches the official templates byte for byte (cases.jsonl)") {
  const auto path = data_dir / "cases.jsonl";
  std::istringstream lines(read_text(path));
  std::string line;
  std::map<std::string, int> per_template;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const boost::json::object c = boost::json::parse(line).as_object();
    const std::string tname(c.at("template").as_string());
    const std::string name(c.at("name").as_string());
    chat::RenderOptions o;
    o.add_generation_prompt = c.at("add_generation_prompt").as_bool();
    o.add_bos = c.at("add_bos").as_bool();
    std::vector<Message> messages;
    for (const auto& m : c.at("messages").as_array())
      messages.push_back({std::string(m.at("role").as_string()), std::string(m.at("content").as_string())});
    const std::string expected(c.at("expected").as_string());
    CAPTURE(tname);
    CAPTURE(name);
    CAPTURE(o.add_generation_prompt);
    CAPTURE(o.add_bos);
    CHECK(chat::render(template_named(tname), messages, o) == expected);
    ++per_template[tname];
    ++n;
  }
  MESSAGE(n << " cases from " << path);
  CHECK(n == 171);
  CHECK(per_template.size() == 3);
  for (const auto& [t, k] : per_template) CHECK(k == 57);
}

TEST_CASE("hand-written layouts of each template") {
  const std::vector<Message> conv{{"system", "S"}, {"user", "U1"}, {"assistant", "<think>r</think>A1"}, {"user", "U2"}};
  CHECK(chat::render(Template::DeepSeekV2, conv) ==
        "<｜begin▁of▁sentence｜>S\n\nUser: U1\n\nAssistant: <think>r</think>A1<｜end▁of▁sentence｜>User: U2\n\n"
        "Assistant:");
  CHECK(chat::render(Template::DeepSeekV3, conv) ==
        "<｜begin▁of▁sentence｜>S<｜User｜>U1<｜Assistant｜><think>r</think>A1<｜end▁of▁sentence｜><｜User｜>U2"
        "<｜Assistant｜>");
  CHECK(chat::render(Template::DeepSeekR1, conv) ==
        "<｜begin▁of▁sentence｜>S<｜User｜>U1<｜Assistant｜>A1<｜end▁of▁sentence｜><｜User｜>U2<｜Assistant｜><think>\n");
  CHECK(chat::name(Template::DeepSeekV2) == "deepseek-v2");
  CHECK(chat::name(Template::DeepSeekV3) == "deepseek-v3");
  CHECK(chat::name(Template::DeepSeekR1) == "deepseek-r1");
}

TEST_CASE("force_think") {
  const std::vector<Message> conv{{"user", "Why is the sky blue?"}};
  const chat::RenderOptions think{.add_generation_prompt = true, .add_bos = true, .force_think = true};
  CHECK(chat::render(Template::DeepSeekV3, conv, think) == chat::render(Template::DeepSeekV3, conv) + "<think>\n");
  CHECK(chat::render(Template::DeepSeekR1, conv, think) == chat::render(Template::DeepSeekR1, conv));
  CHECK(chat::render(Template::DeepSeekR1, conv).ends_with("<｜Assistant｜><think>\n"));
  CHECK(error_of([&] { chat::render(Template::DeepSeekV2, conv, think); }) ==
        "chat::render: force_think: the DeepSeek-V2 template has no thinking mode");
  const chat::RenderOptions no_prompt{.add_generation_prompt = false, .add_bos = true, .force_think = true};
  CHECK_THROWS_AS(chat::render(Template::DeepSeekV3, conv, no_prompt), std::invalid_argument);
}

TEST_CASE("render() refuses what the templates cannot express") {
  CHECK(error_of([] { chat::render(Template::DeepSeekV3, std::vector<Message>{}); }) ==
        "chat::render: no messages (an empty conversation)");
  const std::vector<Message> tool{{"user", "x"}, {"tool", "42"}};
  CHECK(error_of([&] { chat::render(Template::DeepSeekR1, tool); }) ==
        "chat::render: message 1 has role \"tool\"; expected system, user or assistant");
}

TEST_CASE("detect() recognises the official templates by their markers") {
  CHECK(chat::detect(v2_excerpt) == Template::DeepSeekV2);
  CHECK(chat::detect(v3_excerpt) == Template::DeepSeekV3);
  CHECK(chat::detect(r1_excerpt) == Template::DeepSeekR1);
  // Layout does not matter: llama.cpp's copies are indented over many lines, some tools use double quotes.
  std::string spread;
  for (char ch : r1_excerpt) {
    spread.push_back(ch == '\'' ? '"' : ch);
    if (ch == '}') spread += "\n  ";
  }
  CHECK(chat::detect(spread) == Template::DeepSeekR1);
}

TEST_CASE("detect() refuses other templates with a clear error") {
  const std::string m = error_of([] { chat::detect(chatml); });
  CHECK(m.starts_with("chat template not supported: \"{% for message in messages %}{{'<|im_start|>'"));
  CHECK(m.find("\"...") != std::string::npos);  // an excerpt, not the whole template
  CHECK(m.size() < 300);
  CHECK_THROWS_AS(chat::detect(chatml), std::runtime_error);
  CHECK(error_of([] { chat::detect(""); }).starts_with("chat template not supported: (empty template)"));
  // DeepSeek templates the three renderers would get wrong.
  const std::string v31 = "{%- if not thinking is defined -%}{%- set ns = namespace(is_last_user=false) -%}" + v3_excerpt;
  CHECK(error_of([&] { chat::detect(v31); }).find("thinking switch") != std::string::npos);
  const std::string v25 =
      "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '<｜User｜>' + "
      "message['content'] }}{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + "
      "eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
      "{{ '<｜end▁of▁sentence｜>' }}";
  CHECK(error_of([&] { chat::detect(v25); }).find("ns.system_prompt") != std::string::npos);
  // The excerpt stops on a UTF-8 boundary.
  const std::string wide(200, 'x');
  const std::string m2 = error_of([&] { chat::detect(std::string(78, 'a') + "｜｜｜" + wide); });
  CHECK(m2.find("aa｜\"...") != std::string::npos);
}

TEST_CASE("detect() on the full DeepSeek-V3 template from ../shared") {
  const auto cfg = shared_dir / "deepseek-v3-tokenizer" / "tokenizer_config.json";
  if (!std::filesystem::exists(cfg)) {
    MESSAGE("skipped: " << cfg << " is absent, so detect() was not run on the full V3 template");
    return;
  }
  const auto j = boost::json::parse(read_text(cfg)).as_object();
  const std::string source(j.at("chat_template").as_string());
  CHECK(chat::detect(source) == Template::DeepSeekV3);
}

TEST_CASE("template_of() reads tokenizer.chat_template from a GGUF") {
  char dir_template[] = "/tmp/hmoe-chat-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::filesystem::path dir(dir_template);
  write_gguf(dir / "none.gguf", {{"general.architecture", "deepseek2"}});
  write_gguf(dir / "v2.gguf", {{"general.architecture", "deepseek2"}, {"tokenizer.chat_template", v2_excerpt}});
  write_gguf(dir / "r1.gguf", {{"tokenizer.chat_template", r1_excerpt}});
  write_gguf(dir / "chatml.gguf", {{"tokenizer.chat_template", chatml}});
  CHECK_FALSE(chat::template_of(gguf::File::open(dir / "none.gguf")).has_value());
  CHECK(chat::template_of(gguf::File::open(dir / "v2.gguf")) == Template::DeepSeekV2);
  CHECK(chat::template_of(gguf::File::open(dir / "r1.gguf")) == Template::DeepSeekR1);
  CHECK(error_of([&] { chat::template_of(gguf::File::open(dir / "chatml.gguf")); })
            .starts_with("chat template not supported: "));
  std::filesystem::remove_all(dir);
}
