/// \file
/// \brief Picking the next token from a row of logits: repetition penalty, top-k, top-p, min-p, temperature,
///        and a seeded draw that gives the same tokens on every machine.
///
/// The order is the order of llama.cpp's common default sampler chain (without its optional stages that hmoe
/// does not have):
///
///   1. repetition penalty  on the raw logits, over the recent history;
///   2. top-k               keep the k largest logits;
///   3. top-p (nucleus)     keep the smallest set of the best tokens whose probability reaches top_p;
///   4. min-p               keep the tokens whose probability is at least min_p times the best one's;
///   5. temperature         divide the surviving logits by T;
///   6. draw                one token from the softmax of the survivors.
///
/// Why this order: the penalty must come first, so that what the filters see is the penalised distribution;
/// top-k first among the filters, because it is a cheap partial selection that shrinks a 129k vocabulary to k
/// before anything is sorted; top-p and min-p judge probabilities at temperature 1 (as llama.cpp does), so that
/// what they keep does not move with T, and T only reshapes the distribution among the survivors. Keeping
/// llama.cpp's stages and order means its flags (--temp, --top-k, --top-p, --min-p, --repeat-penalty,
/// --repeat-last-n) mean the same here.
///
/// Greedy decoding (temperature <= 0) is the argmax of the penalised logits, ties going to the lowest token id:
/// the filters always keep the best token, so they cannot change it, and no random number is drawn.
///
/// Reproducibility: the random numbers come from xoshiro256** seeded through SplitMix64 (both written out
/// here), not from <random>'s distributions, whose output differs between standard libraries. Every step walks
/// its candidates in a canonical order (token id order, or a full order by logit then id), never in the
/// unspecified order std::nth_element / std::partial_sort leave behind, so the same seed, logits and history give
/// the same tokens with any standard library. (Probabilities use std::exp; libms that differ in the last bit
/// can, very rarely, move a draw that falls exactly on a boundary.)
///
/// Cost per token for a vocabulary of V: O(V) for the copy, the finiteness check and the softmax, and nothing
/// is sorted beyond what is needed: top-k is an O(V) selection plus a sort of the k; top-p without top-k buckets
/// the tokens by logit in one O(V) pass and sorts only the bucket where the cumulative probability crosses
/// top_p; min-p is one pass. (About 1-1.5 ms per token at V = 129,280 on a slow core without top-k, a third of
/// that with it; tests/unit/sampling prints the figures.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace hmoe {

struct SamplingParams {
  float temperature = 0.6f;  ///< <= 0: greedy (argmax). NaN or infinite: invalid.
  int top_k = 0;             ///< 0: off. Negative: invalid.
  float top_p = 1.0f;        ///< In (0, 1]; 1: off.
  float min_p = 0.0f;        ///< In [0, 1); 0: off. Keeps tokens with p >= min_p * p_max.
  /// > 0; 1: off. llama.cpp's rule: a penalised logit l becomes l / penalty if l > 0, else l * penalty.
  float repeat_penalty = 1.0f;
  /// How many of the last history tokens the penalty looks at (each distinct token there is penalised once);
  /// 0: none, -1: the whole history. Below -1: invalid.
  int repeat_last_n = 64;
  std::uint64_t seed = 0;  ///< The same seed gives the same sequence.
};

/// xoshiro256** (Blackman and Vigna), seeded by SplitMix64: a fixed, portable generator, the same numbers on
/// every platform.
class Xoshiro256ss {
 public:
  explicit Xoshiro256ss(std::uint64_t seed = 0) noexcept { reseed(seed); }

  void reseed(std::uint64_t seed) noexcept {
    std::uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
  }

  /// SplitMix64: advances `state` and returns its next output.
  static std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1): the top 53 bits as a double (exact, no rounding up to 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
};

/// llama.cpp's repetition penalty, in place: each distinct token among the last `last_n` entries of `history`
/// (all of them for -1) has its logit divided by `penalty` when positive, multiplied by it otherwise, once.
/// Tokens must be in [0, logits.size()) (invalid_argument otherwise). Other logits are untouched.
/// `seen` is scratch of logits.size() bytes, all zero on entry and on return.
inline void apply_repetition_penalty(std::span<float> logits, std::span<const std::int32_t> history, float penalty,
                                     int last_n, std::span<std::uint8_t> seen) {
  if (penalty == 1.0f || last_n == 0 || history.empty()) return;
  const std::size_t n = last_n < 0 ? history.size() : std::min(history.size(), static_cast<std::size_t>(last_n));
  const auto window = history.last(n);
  for (std::int32_t t : window) {
    if (t < 0 || static_cast<std::size_t>(t) >= logits.size()) {
      for (std::int32_t u : window)  // leave the scratch clean before throwing
        if (u >= 0 && static_cast<std::size_t>(u) < logits.size()) seen[static_cast<std::size_t>(u)] = 0;
      throw std::invalid_argument("sampling: history token " + std::to_string(t) + " is outside the vocabulary [0, " +
                                  std::to_string(logits.size()) + ")");
    }
    auto& mark = seen[static_cast<std::size_t>(t)];
    if (mark) continue;
    mark = 1;
    float& l = logits[static_cast<std::size_t>(t)];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
  for (std::int32_t t : window) seen[static_cast<std::size_t>(t)] = 0;
}

/// One token and its probability in the distribution sample() draws from.
struct TokenProb {
  std::int32_t id;
  double p;
};

/// Samples tokens under fixed SamplingParams. Holds scratch buffers of the vocabulary's size (reused, so a
/// call allocates nothing) and the random state: one Sampler per sequence, not shared between threads.
class Sampler {
 public:
  Sampler(SamplingParams p, std::int32_t vocab) : p_(p), vocab_(vocab), rng_(p.seed) {
    validate(p_);
    if (vocab <= 0) throw std::invalid_argument("sampling: vocabulary size " + std::to_string(vocab) + " is not > 0");
    const auto v = static_cast<std::size_t>(vocab);
    work_.resize(v);
    seen_.assign(v, 0);
    cand_.reserve(v);
  }

  /// Throws std::invalid_argument naming the first bad parameter.
  static void validate(const SamplingParams& p) {
    const auto bad = [](const char* flag, auto value, const char* rule) {
      std::ostringstream m;
      m << "sampling: " << flag << " = " << value << " is invalid: " << rule;
      throw std::invalid_argument(m.str());
    };
    if (!std::isfinite(p.temperature)) bad("temperature", p.temperature, "must be a finite number (<= 0: greedy)");
    if (p.top_k < 0) bad("top_k", p.top_k, "must be >= 0 (0: off)");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad("top_p", p.top_p, "must be in (0, 1] (1: off)");
    if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) bad("min_p", p.min_p, "must be in [0, 1) (0: off)");
    if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty))
      bad("repeat_penalty", p.repeat_penalty, "must be a finite number > 0 (1: off)");
    if (p.repeat_last_n < -1) bad("repeat_last_n", p.repeat_last_n, "must be >= -1 (0: off, -1: whole history)");
  }

  const SamplingParams& params() const noexcept { return p_; }
  std::int32_t vocab() const noexcept { return vocab_; }

  /// Restarts the random sequence, as a fresh Sampler with this seed would.
  void reseed(std::uint64_t seed) noexcept {
    p_.seed = seed;
    rng_.reseed(seed);
  }

  /// The next token. `logits` has one entry per vocabulary token; `history` is the prompt and the tokens
  /// generated so far (for the repetition penalty). invalid_argument for a wrong size or a history token outside
  /// the vocabulary; runtime_error for a NaN or infinite logit.
  std::int32_t sample(std::span<const float> logits, std::span<const std::int32_t> history) {
    prepare(logits, history);
    if (p_.temperature <= 0.0f) return argmax();
    filter();
    // Temperature, then the draw: the inverse CDF, walked in the survivors' canonical order.
    const double total = tempered_weights();
    const double target = rng_.uniform() * total;
    double cum = 0.0;
    std::size_t last_positive = 0;
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      if (weights_[i] <= 0.0) continue;
      cum += weights_[i];
      last_positive = i;
      if (target < cum) return id_at(i);
    }
    return id_at(last_positive);  // rounding left target at the very top: the last token with weight
  }

  /// The distribution sample() draws from for these inputs: the surviving tokens with their probabilities after
  /// the filters and the temperature, in sample()'s walk order. For greedy settings, the argmax with p = 1.
  /// Draws no random number (for tests, and for showing what the sampler would do).
  std::vector<TokenProb> distribution(std::span<const float> logits, std::span<const std::int32_t> history) {
    prepare(logits, history);
    if (p_.temperature <= 0.0f) return {{argmax(), 1.0}};
    filter();
    const double total = tempered_weights();
    std::vector<TokenProb> out;
    out.reserve(weights_.size());
    for (std::size_t i = 0; i < weights_.size(); ++i) out.push_back({id_at(i), weights_[i] / total});
    return out;
  }

 private:
  struct Cand {
    float logit;
    std::int32_t id;
  };
  /// The canonical full order: larger logit first, then lower id.
  static bool better(const Cand& a, const Cand& b) noexcept {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }

  /// Copies the logits into work_ (checking each is finite) and applies the repetition penalty.
  void prepare(std::span<const float> logits, std::span<const std::int32_t> history) {
    if (logits.size() != work_.size())
      throw std::invalid_argument("sampling: got " + std::to_string(logits.size()) + " logits for a vocabulary of " +
                                  std::to_string(work_.size()));
    bool finite = true;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      work_[i] = logits[i];
      finite &= std::isfinite(logits[i]);
    }
    if (!finite) {
      const auto bad = std::find_if(logits.begin(), logits.end(), [](float l) { return !std::isfinite(l); });
      std::ostringstream m;
      m << "sampling: the logit of token " << (bad - logits.begin()) << " is " << *bad
        << "; refusing to sample from non-finite logits";
      throw std::runtime_error(m.str());
    }
    apply_repetition_penalty(work_, history, p_.repeat_penalty, p_.repeat_last_n, seen_);
  }

  std::int32_t argmax() const noexcept {
    // std::max_element returns the first of equal maxima: the lowest id.
    return static_cast<std::int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
  }

  /// The survivors are either every token in id order (all_, no filter did anything: work_ is read directly)
  /// or cand_.
  std::size_t survivors() const noexcept { return all_ ? work_.size() : cand_.size(); }
  std::int32_t id_at(std::size_t i) const noexcept { return all_ ? static_cast<std::int32_t>(i) : cand_[i].id; }
  float logit_at(std::size_t i) const noexcept { return all_ ? work_[i] : cand_[i].logit; }

  /// weights_[i] = exp((l_i - l_max) / T) over the survivors; returns their sum.
  double tempered_weights() {
    const std::size_t n = survivors();
    float top = logit_at(0);
    for (std::size_t i = 1; i < n; ++i) top = std::max(top, logit_at(i));
    const double inv_t = 1.0 / static_cast<double>(p_.temperature);
    weights_.resize(n);
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      weights_[i] = std::exp((static_cast<double>(logit_at(i)) - top) * inv_t);
      total += weights_[i];
    }
    return total;
  }

  /// Applies top-k, top-p and min-p. Leaves the survivors in a canonical order: all_ (every token, id order),
  /// cand_ in the order of better() (after top-k), or cand_ in id order (top-p or min-p without top-k).
  void filter() {
    const std::size_t v = work_.size();
    const bool top_k = p_.top_k > 0 && static_cast<std::size_t>(p_.top_k) < v;
    const bool top_p = p_.top_p < 1.0f;
    const bool min_p = p_.min_p > 0.0f;
    all_ = false;
    cand_.clear();
    if (!top_k && !top_p && !min_p) {
      all_ = true;
      return;
    }
    if (top_k) {
      // An O(V) selection of the k best, then a sort of those k alone; top-p walks them in that order.
      for (std::size_t i = 0; i < v; ++i) cand_.push_back({work_[i], static_cast<std::int32_t>(i)});
      const auto k = static_cast<std::ptrdiff_t>(p_.top_k);
      if (k <= 1024) {
        std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), better);
      } else {
        std::nth_element(cand_.begin(), cand_.begin() + k, cand_.end(), better);
        std::sort(cand_.begin(), cand_.begin() + k, better);
      }
      cand_.resize(static_cast<std::size_t>(k));
      if (top_p) {
        const double top = cand_.front().logit;
        double z = 0.0;
        for (const Cand& c : cand_) z += std::exp(static_cast<double>(c.logit) - top);
        const double target = static_cast<double>(p_.top_p) * z;
        double cum = 0.0;
        std::size_t keep = cand_.size();
        for (std::size_t i = 0; i < cand_.size(); ++i) {
          cum += std::exp(static_cast<double>(cand_[i].logit) - top);
          if (cum >= target) {
            keep = i + 1;
            break;
          }
        }
        cand_.resize(keep);
      }
    } else if (top_p) {
      nucleus();
    }
    if (min_p) {
      // p_i >= min_p * p_max, i.e. l_i - l_max >= log(min_p); the best token always survives.
      const double floor = std::log(static_cast<double>(p_.min_p));
      if (!top_k && !top_p) {  // min-p alone: one pass over the vocabulary, survivors in id order
        const double top = *std::max_element(work_.begin(), work_.end());
        for (std::size_t i = 0; i < v; ++i)
          if (static_cast<double>(work_[i]) - top >= floor) cand_.push_back({work_[i], static_cast<std::int32_t>(i)});
      } else {
        double top = cand_.front().logit;
        for (const Cand& c : cand_) top = std::max(top, static_cast<double>(c.logit));
        std::erase_if(cand_, [&](const Cand& c) { return static_cast<double>(c.logit) - top < floor; });
      }
    }
  }

  /// Top-p over the whole vocabulary, without sorting it: the nucleus is the shortest prefix, in the order of
  /// better(), whose probability reaches top_p (the token that crosses top_p included). The tokens are bucketed
  /// by logit (4096 equal steps over the 64 nats below the best; everything lower, whose probability is below
  /// e^-64 of the best's, in the last bucket), the buckets' masses are summed best first to find the bucket in
  /// which the running sum crosses top_p, and only that bucket is sorted. Leaves the nucleus in cand_ in id order.
  /// O(V), with the masses summed in a fixed order (id order within a bucket, then bucket order).
  void nucleus() {
    constexpr std::size_t n_buckets = 4096;
    constexpr double span = 64.0;
    const std::size_t v = work_.size();
    const auto [lo_it, hi_it] = std::minmax_element(work_.begin(), work_.end());
    const double top = *hi_it;
    const double range = std::min(span, top - static_cast<double>(*lo_it));
    const double scale = range > 0.0 ? static_cast<double>(n_buckets - 1) / range : 0.0;
    bucket_.resize(v);
    mass_.assign(n_buckets, 0.0);
    for (std::size_t i = 0; i < v; ++i) {
      const double d = top - static_cast<double>(work_[i]);  // >= 0, monotonic in the logit
      const auto b = static_cast<std::uint16_t>(std::min(d * scale, static_cast<double>(n_buckets - 1)));
      bucket_[i] = b;
      mass_[b] += std::exp(-d);
    }
    double z = 0.0;
    for (double m : mass_) z += m;
    const double target = static_cast<double>(p_.top_p) * z;
    double cum = 0.0;  // the mass of the buckets before `crossing`
    std::size_t crossing = 0;
    for (std::size_t b = 0; b < n_buckets; ++b) {
      if (mass_[b] <= 0.0) continue;
      crossing = b;  // bucket 0 holds the best token: never empty
      if (cum + mass_[b] >= target) break;
      cum += mass_[b];
    }
    // The crossing bucket, sorted, walked to the token that reaches top_p.
    for (std::size_t i = 0; i < v; ++i)
      if (bucket_[i] == crossing) cand_.push_back({work_[i], static_cast<std::int32_t>(i)});
    std::sort(cand_.begin(), cand_.end(), better);
    Cand last = cand_.back();
    for (const Cand& c : cand_) {
      cum += std::exp(static_cast<double>(c.logit) - top);
      if (cum >= target) {
        last = c;
        break;
      }
    }
    // The nucleus: every bucket before the crossing one, and the crossing bucket up to `last`, in id order.
    cand_.clear();
    for (std::size_t i = 0; i < v; ++i) {
      const Cand c{work_[i], static_cast<std::int32_t>(i)};
      if (bucket_[i] < crossing || (bucket_[i] == crossing && !better(last, c))) cand_.push_back(c);
    }
  }

  SamplingParams p_;
  std::int32_t vocab_;
  Xoshiro256ss rng_;
  std::vector<float> work_;
  std::vector<std::uint8_t> seen_;
  std::vector<Cand> cand_;
  bool all_ = false;
  std::vector<double> weights_;
  std::vector<std::uint16_t> bucket_;
  std::vector<double> mass_;
};

}  // namespace hmoe
