/// \file
/// \brief The DeepSeek chat templates (V2, V3, R1) written out in C++: recognising a GGUF's Jinja
///        `tokenizer.chat_template`, and rendering a conversation into prompt text.
///
/// render() produces the same bytes as Hugging Face `apply_chat_template(messages, tokenize=False,
/// add_generation_prompt=...)` does with the official template: tests/unit/chat compares it byte for byte with 19
/// conversations x 3 option sets per template rendered by the official templates through transformers' renderer
/// (tools/make_chat_template_fixtures.py writes them to tests/data/chat/cases.jsonl). Special tokens
/// appear as text ("<｜begin▁of▁sentence｜>"); the tokenizer matches them as special tokens. Only plain text
/// turns are supported (roles system / user / assistant). Tool calls and tool outputs are not.
///
/// What each template does with a conversation (the official Jinja templates, restricted to those roles):
///
///   DeepSeek-V2 (DeepSeek-V2-Chat, V2-Lite-Chat):
///     BOS, then each message in order: system "S\n\n", user "User: U\n\n", assistant "Assistant: A" + EOS;
///     generation prompt "Assistant:" (no trailing space: the model writes it).
///   DeepSeek-V3:
///     BOS, all system messages joined by "\n\n" (hoisted to the front, wherever they are), then user
///     "<｜User｜>U" and assistant "<｜Assistant｜>A" + EOS in order; generation prompt "<｜Assistant｜>".
///   DeepSeek-R1:
///     as V3, but an assistant message keeps only the text after its last "</think>" (the reasoning of earlier
///     turns is not fed back), and the generation prompt is "<｜Assistant｜><think>\n" (the February 2025
///     revision of the template, which makes the model start with its reasoning).
///
/// Note that V3 and R1 put nothing between the system prompt and the first "<｜User｜>" (llama.cpp's built-in
/// fallback adds "\n\n"; the Jinja templates, which this follows, do not).
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "hmoe/io/gguf.hpp"

namespace hmoe::chat {

/// The special tokens the templates write, as UTF-8 text ("｜" is U+FF5C, "▁" is U+2581).
namespace token {
inline constexpr std::string_view bos = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view eos = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view user = "<｜User｜>";
inline constexpr std::string_view assistant = "<｜Assistant｜>";
inline constexpr std::string_view think_open = "<think>\n";
inline constexpr std::string_view think_close = "</think>";
}  // namespace token
// The literals above must be UTF-8 (g++'s default execution character set): 1 + 3 + 4 + 3 + 1 bytes.
static_assert(token::user.size() == 12, "hmoe/tokenizer/chat_template.hpp needs a UTF-8 execution character set");

enum class Template { DeepSeekV2, DeepSeekV3, DeepSeekR1 };

struct Message {
  std::string role;  ///< "system" | "user" | "assistant"
  std::string content;
};

struct RenderOptions {
  /// End with the assistant prompt, so the model writes the next assistant turn.
  bool add_generation_prompt = true;
  /// Start with the BOS token text (as the templates do). Off when the caller adds BOS as a token id itself.
  bool add_bos = true;
  /// Append "<think>\n" after the assistant prompt, so the model starts by reasoning. For DeepSeek-V3 (a
  /// V3-architecture R1 checkpoint served with the V3 template, say); a no-op for R1, whose template already
  /// does it. DeepSeek-V2 has no thinking mode: invalid_argument. Needs add_generation_prompt.
  bool force_think = false;
};

inline std::string_view name(Template t) {
  switch (t) {
    case Template::DeepSeekV2: return "deepseek-v2";
    case Template::DeepSeekV3: return "deepseek-v3";
    case Template::DeepSeekR1: return "deepseek-r1";
  }
  return "unknown";
}

namespace detail {

/// The template source without whitespace and with double quotes made single, so that a marker matches however
/// the template is laid out (one line, as in tokenizer_config.json, or indented, as in llama.cpp's copies).
inline std::string squeeze(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') continue;
    out.push_back(c == '"' ? '\'' : c);
  }
  return out;
}

/// The start of the template, printable, for error messages.
inline std::string excerpt(std::string_view s, std::size_t max_chars = 80) {
  if (s.empty()) return "(empty template)";
  std::string out = "\"";
  std::size_t i = 0;
  for (; i < s.size() && out.size() < max_chars; ++i) {
    const char c = s[i];
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (static_cast<unsigned char>(c) < 0x20) out += '?';
    else out.push_back(c);
  }
  // Do not end in the middle of a UTF-8 sequence.
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) out.push_back(s[i++]);
  out += i < s.size() ? "\"..." : "\"";
  return out;
}

[[noreturn]] inline void unsupported(std::string_view source, std::string_view why) {
  throw std::runtime_error("chat template not supported: " + excerpt(source) + " (" + std::string(why) + ")");
}

}  // namespace detail

/// Recognises the official DeepSeek-V2, V3 and R1 templates by markers that only they combine:
///   V2: 'User: ' + message['content'] and 'Assistant: ' + message['content'] + eos_token, no <｜User｜>;
///   V3: <｜User｜>, <｜Assistant｜>, <｜end▁of▁sentence｜>, and system prompts gathered in ns.system_prompt;
///   R1: as V3, plus the history stripping content.split('</think>').
/// Refused, with the runtime_error "chat template not supported: <the template's start> (<why>)": everything
/// else, including DeepSeek templates that these three renderers would get wrong: those with a thinking switch or
/// an "is_last_user" state (DeepSeek-V3.1 and later, R1-0528), and V2.5-style templates that keep system
/// messages in place.
/// Both revisions of the R1 template (generation prompt "<｜Assistant｜>" in January 2025, then
/// "<｜Assistant｜><think>\n") are recognised as DeepSeekR1, which renders the later one.
inline Template detect(std::string_view jinja_source) {
  const std::string s = detail::squeeze(jinja_source);
  const auto has = [&s](std::string_view marker) { return s.find(detail::squeeze(marker)) != std::string::npos; };

  if (has("is_last_user") || has("enable_thinking") || has("thinking is defined") || has("thinking_mode"))
    detail::unsupported(jinja_source,
                        "a DeepSeek template with a thinking switch (V3.1 or later, R1-0528); hmoe renders the "
                        "DeepSeek-V2, V3 and R1 templates");

  const bool user_tag = has(token::user);
  if (!user_tag && has("'User: ' + message['content']") &&
      has("'Assistant: ' + message['content'] + eos_token"))
    return Template::DeepSeekV2;

  if (user_tag && has(token::assistant) && has(token::eos)) {
    if (!has("ns.system_prompt"))
      detail::unsupported(jinja_source,
                          "a DeepSeek <｜User｜>/<｜Assistant｜> template that does not gather system messages into "
                          "ns.system_prompt as V3 and R1 do (V2.5?)");
    return has("split('</think>')") ? Template::DeepSeekR1 : Template::DeepSeekV3;
  }
  detail::unsupported(jinja_source, "hmoe renders the DeepSeek-V2, V3 and R1 templates only");
}

/// The template named by a GGUF's tokenizer.chat_template; nothing when the file has no such key. A template
/// that detect() does not recognise throws its runtime_error; a value that is not a string, gguf::Error.
inline std::optional<Template> template_of(const gguf::File& f) {
  const auto source = f.get_optional<std::string_view>("tokenizer.chat_template");
  if (!source) return std::nullopt;
  return detect(*source);
}

namespace detail {

/// R1's history rule: the text after the last "</think>" (all of it when there is none).
inline std::string_view strip_reasoning(std::string_view content) {
  const auto at = content.rfind(token::think_close);
  return at == std::string_view::npos ? content : content.substr(at + token::think_close.size());
}

}  // namespace detail

/// The prompt text for `messages` (see the file comment for each template's layout).
/// invalid_argument: no messages (apply_chat_template refuses those too), a role other than system / user /
/// assistant, force_think with DeepSeek-V2 or without add_generation_prompt.
inline std::string render(Template t, std::span<const Message> messages, const RenderOptions& o = {}) {
  if (messages.empty()) throw std::invalid_argument("chat::render: no messages (an empty conversation)");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      throw std::invalid_argument("chat::render: message " + std::to_string(i) + " has role \"" + r +
                                  "\"; expected system, user or assistant");
  }
  if (o.force_think && t == Template::DeepSeekV2)
    throw std::invalid_argument("chat::render: force_think: the DeepSeek-V2 template has no thinking mode");
  if (o.force_think && !o.add_generation_prompt)
    throw std::invalid_argument("chat::render: force_think needs add_generation_prompt");

  std::size_t total = token::bos.size() + token::assistant.size() + token::think_open.size();
  for (const Message& m : messages) total += m.content.size() + token::assistant.size() + token::eos.size() + 2;
  std::string out;
  out.reserve(total);
  if (o.add_bos) out += token::bos;

  if (t == Template::DeepSeekV2) {
    for (const Message& m : messages) {
      if (m.role == "system") {
        out += m.content;
        out += "\n\n";
      } else if (m.role == "user") {
        out += "User: ";
        out += m.content;
        out += "\n\n";
      } else {
        out += "Assistant: ";
        out += m.content;
        out += token::eos;
      }
    }
    if (o.add_generation_prompt) out += "Assistant:";
    return out;
  }

  // V3 and R1: the system prompts first, joined by a blank line, then the turns.
  bool first_system = true;
  for (const Message& m : messages) {
    if (m.role != "system") continue;
    if (!first_system) out += "\n\n";
    out += m.content;
    first_system = false;
  }
  const bool r1 = t == Template::DeepSeekR1;
  for (const Message& m : messages) {
    if (m.role == "user") {
      out += token::user;
      out += m.content;
    } else if (m.role == "assistant") {
      out += token::assistant;
      out += r1 ? detail::strip_reasoning(m.content) : std::string_view(m.content);
      out += token::eos;
    }
  }
  if (o.add_generation_prompt) {
    out += token::assistant;
    if (r1 || o.force_think) out += token::think_open;
  }
  return out;
}

}  // namespace hmoe::chat
