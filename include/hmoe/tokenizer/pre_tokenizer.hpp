/// \file
/// \brief Pre-tokenization: cutting text into the pieces ("words") that BPE encodes one at a time.
///
/// A pre-tokenizer is a sequence of steps, each applied to every piece the previous step produced, as HF
/// tokenizers' `Sequence` of `Split` pre-tokenizers does (and as llama.cpp's `regex_exprs` lists do). A Split
/// step finds the matches of its regex in the piece; with the `Isolated` behaviour every match and every
/// stretch between matches becomes a piece of its own (the other HF behaviours are supported too). Each piece
/// is searched on its own, so lookarounds and anchors never see past its ends.
///
/// Presets, by the name llama.cpp writes to `tokenizer.ggml.pre`:
///  - `deepseek-v3` (DeepSeek-V3 / R1): the three Split regexes of the V3 tokenizer.json: digit runs of at most
///    three, runs of CJK ideographs + kana, then the letters / punctuation / whitespace pattern.
///  - `deepseek-llm` (DeepSeek-LLM, V2, V2-Lite): newlines, Latin-like letter runs with one optional leading
///    space, ASCII/full-width punctuation runs, trailing whitespace, CJK/Hangul runs, then digits.
///  - `deepseek-coder`.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hmoe/tokenizer/error.hpp"
#include "hmoe/tokenizer/regex.hpp"
#include "hmoe/tokenizer/utf8.hpp"

namespace hmoe::tokenizer {

/// What a Split step does with its matches (HF's SplitDelimiterBehavior).
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

namespace presets {

/// DeepSeek-V3's pre-tokenizer regexes, as in its tokenizer.json with non-ASCII characters written \x{...}.
inline constexpr std::array<std::string_view, 3> deepseek_v3 = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

/// DeepSeek-LLM / V2's: the letter class lists the cased-letter ranges of many scripts (not CJK).
inline constexpr std::array<std::string_view, 6> deepseek_llm = {
    "[\r\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"
    "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"
    "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
    "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}"
    "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"
    "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"
    "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
    "\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
};

inline constexpr std::array<std::string_view, 5> deepseek_coder = {
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
};

struct Preset {
  std::string_view name;
  std::span<const std::string_view> patterns;
};

inline constexpr std::array<Preset, 3> all = {{
    {"deepseek-v3", deepseek_v3},
    {"deepseek-llm", deepseek_llm},
    {"deepseek-coder", deepseek_coder},
}};

/// "deepseek-v3, deepseek-llm, deepseek-coder".
inline std::string names() {
  std::string out;
  for (const auto& p : all) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

}  // namespace presets

/// `pattern` with every non-ASCII character written as \x{HEX}, the form the presets are written in (so that a
/// tokenizer.json's regexes can be recognised as a preset). A character right after a backslash is kept.
inline std::string normalize_pattern(std::string_view pattern) {
  std::string out;
  std::size_t i = 0;
  bool escaped = false;
  while (i < pattern.size()) {
    const auto c = static_cast<unsigned char>(pattern[i]);
    if (c < 0x80 || escaped) {
      const utf8::Step st = utf8::step(pattern, i);
      out.append(pattern.substr(i, st.length));
      escaped = !escaped && c == '\\';
      i += st.length;
      continue;
    }
    const utf8::Step st = utf8::step(pattern, i);
    if (st.kind != utf8::Step::Valid) {
      out += pattern[i++];
      continue;
    }
    constexpr char hex[] = "0123456789ABCDEF";
    std::string digits;
    for (char32_t v = st.code_point; v; v >>= 4) digits.insert(digits.begin(), hex[v & 15]);
    out += "\\x{" + digits + "}";
    i += st.length;
  }
  return out;
}

class PreTokenizer {
 public:
  struct Step {
    enum class Kind { Split, PrefixSpace } kind = Kind::Split;
    Regex regex;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
  };

  PreTokenizer() = default;

  /// The preset named `name` (as in tokenizer.ggml.pre). An unknown name is an Error listing the known ones.
  static PreTokenizer preset(std::string_view name) {
    for (const auto& p : presets::all) {
      if (p.name != name) continue;
      PreTokenizer t;
      t.name_ = std::string(name);
      for (auto pattern : p.patterns) t.add_split(Regex(pattern), SplitBehavior::Isolated, false);
      return t;
    }
    throw Error("unknown pre-tokenizer '" + std::string(name) + "' (known: " + presets::names() + ")");
  }

  /// Appends a Split step.
  void add_split(Regex regex, SplitBehavior behavior, bool invert) {
    steps_.push_back(Step{Step::Kind::Split, std::move(regex), behavior, invert});
  }
  /// Appends a step that puts a space in front of every piece that does not start with one (HF ByteLevel's
  /// add_prefix_space).
  void add_prefix_space() { steps_.push_back(Step{Step::Kind::PrefixSpace, {}, {}, false}); }

  /// The preset name, or what set_name() gave.
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  std::span<const Step> steps() const noexcept { return steps_; }
  /// Whether every step runs JIT-compiled.
  bool jit() const noexcept {
    for (const auto& s : steps_)
      if (s.kind == Step::Kind::Split && !s.regex.jit()) return false;
    return true;
  }

  /// Calls f(piece) for every non-empty piece of `text`, in order. The views point into `text`, except after a
  /// PrefixSpace step (then into a temporary that lives for the call).
  template <class F>
  void split(std::string_view text, F&& f) const {
    run(0, text, f, detail::has_newer_unicode(text));
  }

  /// The pieces, as strings (for tests and tools).
  std::vector<std::string> pieces(std::string_view text) const {
    std::vector<std::string> out;
    split(text, [&](std::string_view p) { out.emplace_back(p); });
    return out;
  }

 private:
  template <class F>
  void run(std::size_t i, std::string_view piece, F& f, bool newer) const {
    if (piece.empty()) return;
    if (i == steps_.size()) {
      f(piece);
      return;
    }
    const Step& step = steps_[i];
    if (step.kind == Step::Kind::PrefixSpace) {
      if (piece.front() == ' ') {
        run(i + 1, piece, f, newer);
      } else {
        std::string spaced;
        spaced.reserve(piece.size() + 1);
        spaced += ' ';
        spaced += piece;
        run(i + 1, spaced, f, newer);
      }
      return;
    }
    if (step.behavior == SplitBehavior::Isolated) {
      // Matches and the gaps between them are pieces alike; invert makes no difference.
      std::size_t prev = 0;
      step.regex.for_each_match(piece, [&](std::size_t b, std::size_t e) {
        if (b > prev) run(i + 1, piece.substr(prev, b - prev), f, newer);
        run(i + 1, piece.substr(b, e - b), f, newer);
        prev = e;
      }, newer);
      if (prev < piece.size()) run(i + 1, piece.substr(prev), f, newer);
      return;
    }
    // The other behaviours: list the segments (match or not), then combine them as HF does.
    struct Segment {
      std::size_t b, e;
      bool match;
    };
    std::vector<Segment> segs;
    std::size_t prev = 0;
    step.regex.for_each_match(piece, [&](std::size_t b, std::size_t e) {
      if (b > prev) segs.push_back({prev, b, step.invert});
      segs.push_back({b, e, !step.invert});
      prev = e;
    }, newer);
    if (prev < piece.size()) segs.push_back({prev, piece.size(), step.invert});
    std::vector<std::pair<std::size_t, std::size_t>> out;
    bool previous_match = false;
    if (step.behavior == SplitBehavior::MergedWithNext) {
      // A match joins the piece after it, unless that piece is a match too (HF walks backwards).
      for (auto s = segs.rbegin(); s != segs.rend(); ++s) {
        if (s->match && !previous_match && !out.empty()) out.back().first = s->b;
        else out.emplace_back(s->b, s->e);
        previous_match = s->match;
      }
      std::reverse(out.begin(), out.end());
    } else {
      for (const Segment& s : segs) {
        switch (step.behavior) {
          case SplitBehavior::Removed:
            if (!s.match) out.emplace_back(s.b, s.e);
            break;
          case SplitBehavior::MergedWithPrevious:
            // A match joins the piece before it, unless that piece is a match too.
            if (s.match && !previous_match && !out.empty()) out.back().second = s.e;
            else out.emplace_back(s.b, s.e);
            break;
          case SplitBehavior::Contiguous:
            // Adjacent matches become one piece.
            if (s.match == previous_match && !out.empty()) out.back().second = s.e;
            else out.emplace_back(s.b, s.e);
            break;
          default: break;
        }
        previous_match = s.match;
      }
    }
    for (const auto& [b, e] : out) run(i + 1, piece.substr(b, e - b), f, newer);
  }

  std::string name_ = "custom";
  std::vector<Step> steps_;
};

}  // namespace hmoe::tokenizer
