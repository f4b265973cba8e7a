/// \file
/// \brief A compiled PCRE2 pattern for pre-tokenization: UTF + Unicode properties (UCP), JIT-compiled.
///
/// Patterns are compiled with PCRE2_UTF | PCRE2_UCP (so \p{..}, \w, \d and POSIX classes are Unicode-aware, as
/// in Oniguruma, the engine HF tokenizers uses; detail::oniguruma_compat rewrites what the two engines read
/// differently: \s, script names, and the characters newer Unicode versions added to the general categories) and PCRE2_MATCH_INVALID_UTF: a subject that is not valid UTF-8 is
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

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hmoe/tokenizer/error.hpp"
#include "hmoe/tokenizer/unicode_delta.hpp"
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
///    (so \p{Han} takes in U+300A '《'), Oniguruma against Script;
///  - the general categories \p{L}, \p{M}, \p{N}, \p{P}, \p{S} (and \P{..} outside character classes) also
///    take the characters that newer Unicode versions added to them (unicode_delta.hpp): PCRE2 10.42 knows
///    Unicode 14, HF's Oniguruma Unicode 16, so e.g. U+1FA77 🩷 would otherwise be a symbol to one and
///    unassigned to the other. (without `with_delta`, this last rewrite is left out: see has_newer_unicode.)
/// \Q...\E text is left alone.
inline std::string oniguruma_compat(std::string_view pattern, bool with_delta = true) {
  const auto delta = [](char category) -> std::string_view {
    switch (category) {
      case 'L': return unicode_delta::L;
      case 'M': return unicode_delta::M;
      case 'N': return unicode_delta::N;
      case 'P': return unicode_delta::P;
      case 'S': return unicode_delta::S;
      default: return {};
    }
  };
  std::string out;
  out.reserve(pattern.size() + 16);
  bool quoted = false, in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (quoted) {
      if (c == '\\' && i + 1 < pattern.size() && pattern[i + 1] == 'E') quoted = false;
      out += c;
      continue;
    }
    if (c == '[' && !in_class) {
      // A class: "[^]...]" and "[]...]" start with a literal ']'.
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == '[' && in_class && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // A POSIX class inside a class: copy it whole.
      const std::size_t close = pattern.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(pattern.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (c == ']' && in_class) {
      in_class = false;
      out += c;
      continue;
    }
    if (c != '\\' || i + 1 == pattern.size()) {
      out += c;
      continue;
    }
    const char e = pattern[++i];
    if (e == 's') {
      out += "\\p{White_Space}";
    } else if (e == 'S') {
      out += "\\P{White_Space}";
    } else if ((e == 'p' || e == 'P') && i + 1 < pattern.size() && pattern[i + 1] == '{') {
      const std::size_t close = pattern.find('}', i + 2);
      std::string_view name = close == std::string_view::npos ? std::string_view() : pattern.substr(i + 2, close - i - 2);
      const bool negated = !name.empty() && name.front() == '^';
      if (negated) name.remove_prefix(1);
      const bool positive = (e == 'p') != negated;
      if (with_delta && name.size() == 1 && !delta(name[0]).empty() && (positive || !in_class)) {
        if (!in_class) out += positive ? "[" : "[^";
        out += "\\p{";
        out += name;
        out += '}';
        out += delta(name[0]);
        if (!in_class) out += ']';
        i = close;
      } else if (name.size() > 2 && name.find_first_of(":=") == std::string_view::npos && is_script_name(name)) {
        out += c;
        out += e;
        out += negated ? "{^sc:" : "{sc:";
        out += name;
        out += '}';
        i = close;
      } else {
        out += c;
        out += e;
      }
    } else {
      quoted = e == 'Q';
      out += c;
      out += e;
    }
  }
  return out;
}

/// The code points of unicode_delta.hpp, for a quick test of whether a text holds any of them.
class NewerUnicode {
 public:
  static const NewerUnicode& get() {
    static const NewerUnicode t;
    return t;
  }
  bool contains(char32_t c) const noexcept {
    if (c < 0x10000) return (bmp_[c >> 6] >> (c & 63)) & 1;
    const auto it = std::upper_bound(astral_.begin(), astral_.end(), c,
                                     [](char32_t v, const std::pair<char32_t, char32_t>& r) { return v < r.first; });
    return it != astral_.begin() && c <= std::prev(it)->second;
  }
  char32_t min() const noexcept { return min_; }

 private:
  NewerUnicode() {
    for (std::string_view ranges : {unicode_delta::L, unicode_delta::M, unicode_delta::N, unicode_delta::P,
                                    unicode_delta::S}) {
      // "\x{1C89}-\x{1C8A}\x{A7CB}..."
      std::size_t i = 0;
      const auto hex = [&]() {
        i += 3;  // \x{
        char32_t v = 0;
        for (; ranges[i] != '}'; ++i) v = v * 16 + static_cast<char32_t>(ranges[i] <= '9' ? ranges[i] - '0' : ranges[i] - 'A' + 10);
        ++i;
        return v;
      };
      while (i < ranges.size()) {
        const char32_t a = hex();
        char32_t b = a;
        if (i < ranges.size() && ranges[i] == '-') {
          ++i;
          b = hex();
        }
        min_ = std::min(min_, a);
        for (char32_t c = a; c <= b && c < 0x10000; ++c) bmp_[c >> 6] |= std::uint64_t{1} << (c & 63);
        if (b >= 0x10000) astral_.emplace_back(std::max<char32_t>(a, 0x10000), b);
      }
    }
    std::sort(astral_.begin(), astral_.end());
  }
  std::array<std::uint64_t, 1024> bmp_{};
  std::vector<std::pair<char32_t, char32_t>> astral_;
  char32_t min_ = 0x110000;
};

/// Whether `text` holds a character that Unicode added to a general category after PCRE2's Unicode data
/// (unicode_delta.hpp). Only then do the patterns need those characters added to their classes, which makes
/// PCRE2's JIT noticeably slower; for all other text both forms of a pattern match alike.
inline bool has_newer_unicode(std::string_view text) noexcept {
  const NewerUnicode& t = NewerUnicode::get();
  // Lead bytes below this start characters below t.min(): skip them without decoding.
  const unsigned char first_lead = t.min() >= 0x10000 ? 0xF0 : t.min() >= 0x800 ? 0xE0 : 0xC2;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    if (first_lead == 0xE0 && i + 8 <= n) {
      // Eight bytes at a time while none is 0xE0 or above.
      std::uint64_t w;
      std::memcpy(&w, text.data() + i, 8);
      if (((w & (w << 1) & (w << 2)) & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<unsigned char>(text[i]) < first_lead) {
      ++i;
      continue;
    }
    const utf8::Step st = utf8::step(text, i);
    if (st.kind == utf8::Step::Valid && t.contains(st.code_point)) return true;
    i += st.kind == utf8::Step::Valid ? st.length : 1;
  }
  return false;
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
  /// pattern and the problem.
  explicit Regex(std::string_view pattern, bool literal = false) : pattern_(pattern) {
    const std::string exact = literal ? std::string(pattern) : detail::oniguruma_compat(pattern, true);
    const std::string fast = literal ? exact : detail::oniguruma_compat(pattern, false);
    exact_ = compile(exact, literal);
    if (fast != exact) fast_ = compile(fast, literal);
  }

  const std::string& pattern() const noexcept { return pattern_; }
  /// Whether matching runs JIT-compiled code.
  bool jit() const noexcept { return jit_; }
  explicit operator bool() const noexcept { return exact_ != nullptr; }

  /// Calls f(begin, end) for each successive non-empty match in `subject`, left to right (an empty match is
  /// skipped by moving on one character). Offsets are bytes into `subject`; lookarounds see only `subject`.
  /// `newer_unicode`: whether the subject may hold characters of unicode_delta.hpp (has_newer_unicode); when
  /// it is known not to, a faster form of the pattern runs, with the same result.
  template <class F>
  void for_each_match(std::string_view subject, F&& f, bool newer_unicode = true) const {
    pcre2_code* code = newer_unicode || !fast_ ? exact_.get() : fast_.get();
    detail::MatchState& st = detail::match_state();
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    const std::size_t n = subject.size();
    std::size_t start = 0;
    while (start < n) {
      int rc = jit_ ? pcre2_jit_match(code, s, n, start, 0, st.data, st.context)
                    : pcre2_match(code, s, n, start, 0, st.data, st.context);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) rc = pcre2_match(code, s, n, start, PCRE2_NO_JIT, st.data, st.context);
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

  std::shared_ptr<pcre2_code> compile(const std::string& text, bool literal) {
    const std::uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    int err = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), options, &err, &offset, nullptr);
    if (!code)
      throw Error("cannot compile the regular expression " + json_quote(pattern_) + ": " + detail::pcre2_message(err) +
                  (text == pattern_ ? " (at byte " + std::to_string(offset) + ")" : ""));
    std::shared_ptr<pcre2_code> owned(code, [](pcre2_code* c) { pcre2_code_free(c); });
    const int rc = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    jit_ = jit_ && rc == 0;
    if (rc != 0) detail::note_no_jit(rc);
    return owned;
  }

  std::string pattern_;
  std::shared_ptr<pcre2_code> exact_, fast_;  // fast_: without the unicode_delta ranges (null when the same)
  bool jit_ = true;
};

}  // namespace hmoe::tokenizer
