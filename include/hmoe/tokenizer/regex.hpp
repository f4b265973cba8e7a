/// \file
/// \brief A compiled PCRE2 pattern for pre-tokenization: UTF + Unicode properties (UCP), JIT-compiled.
///
/// Patterns are compiled with PCRE2_UTF | PCRE2_UCP (so \p{..}, \w, \d and POSIX classes are Unicode-aware, as
/// in Oniguruma, the engine HF tokenizers uses; see detail::oniguruma_compat for the two places where the
/// engines read the same pattern differently) and PCRE2_MATCH_INVALID_UTF: a subject that is not valid UTF-8 is
/// still searched, its invalid bytes simply never match. The JIT is used when PCRE2 has one; otherwise the
/// interpreter runs the pattern and a note says so once on stderr. A match that would exhaust the JIT stack is
/// retried with the interpreter.
///
/// Matching is thread-safe: each thread keeps its own match data and JIT stack.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#if PCRE2_CODE_UNIT_WIDTH != 8
#error "hmoe's tokenizer needs the 8-bit PCRE2 library (PCRE2_CODE_UNIT_WIDTH 8)"
#endif
#include <pcre2.h>

#include <cstddef>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "hmoe/tokenizer/error.hpp"
#include "hmoe/tokenizer/utf8.hpp"

namespace hmoe::tokenizer {

namespace detail {

inline std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<const char*>(buf));
}

/// Per-thread match data (one ovector pair: only the whole match is used) and JIT stack.
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;

  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    // Starts at 32 KiB and may grow to 16 MiB (reserved address space, committed as used).
    stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    if (!data || !context) throw std::bad_alloc();
    if (stack) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

inline MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

/// Whether PCRE2 knows `name` as a script (\p{sc:name}).
inline bool is_script_name(std::string_view name) {
  const std::string probe = "\\p{sc:" + std::string(name) + "}";
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(probe.data()), probe.size(), PCRE2_UTF | PCRE2_UCP,
                                   &err, &offset, nullptr);
  pcre2_code_free(code);
  return code != nullptr;
}

/// `pattern` rewritten where PCRE2 10.4x and Oniguruma (the engine of HF tokenizers) read the same syntax
/// differently:
///  - \s and \S become \p{White_Space} and \P{White_Space}: under PCRE2_UCP, \s also matches U+180E (MONGOLIAN
///    VOWEL SEPARATOR, not a space since Unicode 6.3), while Oniguruma's \s is exactly White_Space;
///  - a script property \p{Han} becomes \p{sc:Han}: PCRE2 matches a bare script name against Script_Extensions
///    (so \p{Han} takes in U+300A '《'), Oniguruma against Script.
/// \Q...\E text is left alone.
inline std::string oniguruma_compat(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool quoted = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c != '\\' || i + 1 == pattern.size()) {
      out += c;
      continue;
    }
    const char e = pattern[++i];
    if (quoted) {
      quoted = e != 'E';
      out += c;
      out += e;
    } else if (e == 's') {
      out += "\\p{White_Space}";
    } else if (e == 'S') {
      out += "\\P{White_Space}";
    } else if ((e == 'p' || e == 'P') && i + 1 < pattern.size() && pattern[i + 1] == '{') {
      const std::size_t close = pattern.find('}', i + 2);
      std::string_view name = close == std::string_view::npos ? std::string_view() : pattern.substr(i + 2, close - i - 2);
      const bool negated = !name.empty() && name.front() == '^';
      if (negated) name.remove_prefix(1);
      out += c;
      out += e;
      if (name.size() > 2 && name.find_first_of(":=") == std::string_view::npos && is_script_name(name)) {
        out += negated ? "{^sc:" : "{sc:";
        out += name;
        out += '}';
        i = close;
      }
    } else {
      quoted = e == 'Q';
      out += c;
      out += e;
    }
  }
  return out;
}

inline void note_no_jit(int rc) {
  static std::once_flag once;
  std::call_once(once, [rc] {
    std::fprintf(stderr, "hmoe tokenizer: PCRE2 JIT is unavailable (%s); using the PCRE2 interpreter\n",
                 pcre2_message(rc).c_str());
  });
}

}  // namespace detail

class Regex {
 public:
  Regex() = default;

  /// Compiles `pattern` (UTF-8). With `literal`, the pattern is a plain string to find. Throws Error naming the
  /// pattern and the position of the problem.
  explicit Regex(std::string_view pattern, bool literal = false) : pattern_(pattern) {
    const std::uint32_t options =
        PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    const std::string compiled = literal ? std::string(pattern) : detail::oniguruma_compat(pattern);
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options, &err,
                                     &offset, nullptr);
    if (!code)
      throw Error("cannot compile the regular expression " + json_quote(pattern) + ": " + detail::pcre2_message(err) +
                  (compiled == pattern ? " (at byte " + std::to_string(offset) + ")" : ""));
    code_ = std::shared_ptr<pcre2_code>(code, [](pcre2_code* c) { pcre2_code_free(c); });
    const int rc = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    jit_ = rc == 0;
    if (!jit_) detail::note_no_jit(rc);
  }

  const std::string& pattern() const noexcept { return pattern_; }
  /// Whether matching runs JIT-compiled code.
  bool jit() const noexcept { return jit_; }
  explicit operator bool() const noexcept { return code_ != nullptr; }

  /// Calls f(begin, end) for each successive non-empty match in `subject`, left to right (an empty match is
  /// skipped by moving on one character). Offsets are bytes into `subject`; lookarounds see only `subject`.
  template <class F>
  void for_each_match(std::string_view subject, F&& f) const {
    detail::MatchState& st = detail::match_state();
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    const std::size_t n = subject.size();
    std::size_t start = 0;
    while (start < n) {
      int rc = jit_ ? pcre2_jit_match(code_.get(), s, n, start, 0, st.data, st.context)
                    : pcre2_match(code_.get(), s, n, start, 0, st.data, st.context);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(code_.get(), s, n, start, PCRE2_NO_JIT, st.data, st.context);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0)
        throw Error("regular expression " + json_quote(pattern_) + " failed on a " + std::to_string(n) +
                    "-byte text: " + detail::pcre2_message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
      const std::size_t b = ov[0], e = ov[1];
      if (e <= b) {
        const utf8::Step step = b < n ? utf8::step(subject, b) : utf8::Step{utf8::Step::Invalid, 1, 0};
        start = b + (step.kind == utf8::Step::Valid ? step.length : 1);
        continue;
      }
      f(b, e);
      start = e;
    }
  }

 private:
  static std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '\r') out += "\\r";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    return out + "\"";
  }

  std::string pattern_;
  std::shared_ptr<pcre2_code> code_;
  bool jit_ = false;
};

}  // namespace hmoe::tokenizer
