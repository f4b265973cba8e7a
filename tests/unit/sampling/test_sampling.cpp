// hmoe::Sampler: greedy, seeding, top-k, top-p, min-p, repetition penalty, temperature (chi-square), errors.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "../../support/error_of.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/model/sampling.hpp"

using namespace hmoe;

namespace {

/// Fresh random logits, uniform in [lo, hi), from a seeded generator (the library's portable one).
std::vector<float> random_logits(std::size_t n, std::uint64_t seed, double lo = -4.0, double hi = 4.0) {
  Xoshiro256ss g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * g.uniform());
  return v;
}

/// Logits whose softmax (at T = 1) is exactly `probs` up to rounding: log p.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> v;
  for (double p : probs) v.push_back(static_cast<float>(std::log(p)));
  return v;
}

SamplingParams params(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  p.repeat_penalty = 1.0f;
  return p;
}

std::vector<int> counts(Sampler& s, std::span<const float> logits, int draws) {
  std::vector<int> c(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++c[static_cast<std::size_t>(s.sample(logits, {}))];
  return c;
}

std::set<std::int32_t> ids_of(const std::vector<TokenProb>& d) {
  std::set<std::int32_t> s;
  for (const TokenProb& t : d) s.insert(t.id);
  return s;
}

std::set<std::int32_t> drawn(const std::vector<int>& c) {
  std::set<std::int32_t> s;
  for (std::size_t i = 0; i < c.size(); ++i)
    if (c[i] > 0) s.insert(static_cast<std::int32_t>(i));
  return s;
}

/// Pearson's chi-square statistic of observed counts against expected probabilities.
double chi_square(const std::vector<int>& observed, const std::vector<double>& p, int n) {
  double x2 = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * n;
    x2 += (observed[i] - e) * (observed[i] - e) / e;
  }
  return x2;
}

std::vector<double> softmax(const std::vector<float>& l, double t) {
  const double top = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double z = 0.0;
  for (std::size_t i = 0; i < l.size(); ++i) z += p[i] = std::exp((l[i] - top) / t);
  for (double& x : p) x /= z;
  return p;
}

using hmoe::test::error_of;

}  // namespace

TEST_CASE("the generator is xoshiro256** seeded by SplitMix64, bit for bit") {
  // Reference values from an independent Python transcription of the two published algorithms.
  std::uint64_t state = 0;
  CHECK(Xoshiro256ss::splitmix64(state) == 0xe220a8397b1dcdafull);  // SplitMix64's well-known first output
  Xoshiro256ss g(0);
  CHECK(g.next() == 0x99ec5f36cb75f2b4ull);
  CHECK(g.next() == 0xbf6e1f784956452aull);
  CHECK(g.next() == 0x1a5f849d4933e6e0ull);
  CHECK(g.next() == 0x6aa594f1262d2d2cull);
  for (int i = 0; i < 1000; ++i) {
    const double u = g.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("a fixed seed gives a pinned token sequence (portable across machines)") {
  // 16 logits from Xoshiro256ss(7), T = 0.8, seed 42, no filters: the expected tokens come from an independent
  // Python version of the same draw (softmax in double, inverse CDF walked in id order).
  const auto logits = random_logits(16, 7);
  SamplingParams p = params(0.8f);
  p.seed = 42;
  Sampler s(p, 16);
  const std::vector<std::int32_t> expected{3, 4, 5, 13, 13, 12, 11, 12, 12, 4, 5, 3, 12, 3, 11, 12, 4, 12, 10, 10};
  std::vector<std::int32_t> got;
  for (std::size_t i = 0; i < expected.size(); ++i) got.push_back(s.sample(logits, {}));
  CHECK(got == expected);
}

TEST_CASE("greedy is the argmax, ties to the lowest id, and draws no random number") {
  for (float t : {0.0f, -1.0f}) {
    CAPTURE(t);
    Sampler s(params(t), 1000);
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      const auto l = random_logits(1000, seed);
      const auto best = static_cast<std::int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      CHECK(s.sample(l, {}) == best);
    }
  }
  std::vector<float> tie(10, -1.0f);
  tie[7] = 2.5f;
  tie[3] = 2.5f;
  tie[9] = 2.5f;
  Sampler s(params(0.0f), 10);
  CHECK(s.sample(tie, {}) == 3);
  const auto d = s.distribution(tie, {});
  REQUIRE(d.size() == 1);
  CHECK(d[0].id == 3);
  CHECK(d[0].p == 1.0);

  // Greedy draws nothing: a sampling Sampler that was used greedily in between gives the same sequence.
  const auto l = random_logits(64, 99);
  SamplingParams p = params(1.0f);
  p.seed = 5;
  Sampler a(p, 64), b(p, 64);
  std::vector<std::int32_t> sa, sb;
  for (int i = 0; i < 50; ++i) sa.push_back(a.sample(l, {}));
  for (int i = 0; i < 50; ++i) sb.push_back(b.sample(l, {}));
  CHECK(sa == sb);
}

TEST_CASE("the same seed repeats, reseed restarts, different seeds differ") {
  constexpr std::int32_t vocab = 500;
  std::vector<std::vector<float>> rows;
  for (std::uint64_t r = 0; r < 300; ++r) rows.push_back(random_logits(vocab, 1000 + r, -2.0, 2.0));
  const auto run = [&](Sampler& s) {
    std::vector<std::int32_t> history;
    for (const auto& row : rows) history.push_back(s.sample(row, history));
    return history;
  };
  SamplingParams p;  // the defaults: T = 0.6, repeat_penalty 1, last 64
  p.top_k = 40;
  p.top_p = 0.95f;
  p.min_p = 0.01f;
  p.repeat_penalty = 1.1f;
  p.seed = 1234;
  Sampler a(p, vocab), b(p, vocab);
  const auto first = run(a);
  CHECK(first == run(b));
  a.reseed(1234);
  CHECK(first == run(a));
  a.reseed(1235);
  const auto other = run(a);
  int same = 0;
  for (std::size_t i = 0; i < first.size(); ++i) same += first[i] == other[i];
  MESSAGE(same << " of " << first.size() << " tokens agree between seeds 1234 and 1235");
  CHECK(first != other);
  CHECK(same < static_cast<int>(first.size()) * 3 / 4);  // the draws are not nearly deterministic
}

TEST_CASE("top-k never samples outside the k best") {
  constexpr std::int32_t vocab = 1000;
  for (int k : {1, 10, 57}) {
    CAPTURE(k);
    const auto l = random_logits(vocab, 300 + static_cast<std::uint64_t>(k));
    std::vector<std::int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return l[a] > l[b]; });
    const std::set<std::int32_t> best(order.begin(), order.begin() + k);

    SamplingParams p = params(3.0f);  // hot, so that the tail of the k is visited too
    p.top_k = k;
    Sampler s(p, vocab);
    CHECK(ids_of(s.distribution(l, {})) == best);
    const auto c = counts(s, l, 20000);
    CHECK(drawn(c) == best);  // never outside, and every one of the k is reachable
  }
  // Ties at the boundary go to the lower ids; k >= vocab is no filter.
  SamplingParams p = params(1.0f);
  p.top_k = 3;
  Sampler s(p, 8);
  CHECK(ids_of(s.distribution(std::vector<float>(8, 0.5f), {})) == std::set<std::int32_t>{0, 1, 2});
  p.top_k = 8;
  Sampler all(p, 8);
  CHECK(all.distribution(random_logits(8, 1), {}).size() == 8);
}

TEST_CASE("top-p keeps the nucleus, including the token that crosses p") {
  // Probabilities (T = 1), scattered over ids: sorted 0.40 (id 3), 0.25 (id 1), 0.15 (id 5), 0.10 (id 0),
  // 0.06 (id 4), 0.04 (id 2). Cumulative: 0.40, 0.65, 0.80, 0.90, 0.96, 1.
  const std::vector<double> probs{0.10, 0.25, 0.04, 0.40, 0.06, 0.15};
  const auto l = logits_of(probs);
  struct Case {
    float top_p;
    std::set<std::int32_t> nucleus;
  };
  for (const Case& c : {Case{0.30f, {3}}, Case{0.70f, {3, 1, 5}},  // 0.65 < 0.70 <= 0.80: id 5 crosses p
                        Case{0.85f, {3, 1, 5, 0}}, Case{0.99f, {3, 1, 5, 0, 4, 2}}}) {
    CAPTURE(c.top_p);
    SamplingParams p = params(1.0f);
    p.top_p = c.top_p;
    p.seed = 77;
    Sampler s(p, 6);
    const auto d = s.distribution(l, {});
    CHECK(ids_of(d) == c.nucleus);
    double mass = 0.0;
    for (std::int32_t id : c.nucleus) mass += probs[static_cast<std::size_t>(id)];
    for (const TokenProb& t : d) CHECK(t.p == doctest::Approx(probs[static_cast<std::size_t>(t.id)] / mass));
    constexpr int n = 40000;
    const auto cnt = counts(s, l, n);
    CHECK(drawn(cnt) == c.nucleus);
    for (std::int32_t id : c.nucleus)  // frequencies follow the renormalised nucleus (5 sigma is < 0.013 here)
      CHECK(std::abs(cnt[static_cast<std::size_t>(id)] / double(n) - probs[static_cast<std::size_t>(id)] / mass) <
            0.02);
  }
}

TEST_CASE("top-p edge cases: equal logits, a far outlier") {
  SamplingParams p = params(1.0f);
  p.top_p = 0.5f;
  Sampler s(p, 10);
  // Ten equal probabilities: 0.1 each, the fifth reaches 0.5; ties go to the lower ids.
  CHECK(ids_of(s.distribution(std::vector<float>(10, 1.25f), {})) == std::set<std::int32_t>{0, 1, 2, 3, 4});
  // One logit 1000 below the rest (out of the bucketed range), the best far above them.
  std::vector<float> l(10, 0.0f);
  l[6] = -1000.0f;
  l[2] = 5.0f;  // p = e^5 / (e^5 + 8) = 0.9488
  CHECK(ids_of(s.distribution(l, {})) == std::set<std::int32_t>{2});
  p.top_p = 0.96f;  // 0.9488 + 0.0064 per other token: two more, the lowest ids
  Sampler wider(p, 10);
  CHECK(ids_of(wider.distribution(l, {})) == std::set<std::int32_t>{0, 1, 2});
}

TEST_CASE("top-p and min-p over a DeepSeek-sized vocabulary match a full sort") {
  // 129,280 logits: nuclei of thousands of tokens, crossing inside one of the logit buckets the sampler uses
  // instead of sorting. The reference sorts everything; min-p cuts the largest nucleus.
  constexpr std::int32_t vocab = 129280;
  const auto l = random_logits(vocab, 2024, -6.0, 6.0);
  std::vector<std::int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return l[a] > l[b] || (l[a] == l[b] && a < b);
  });
  const double top = l[static_cast<std::size_t>(order[0])];
  double z = 0.0;
  for (float x : l) z += std::exp(x - top);
  for (float min_p : {0.0f, 0.02f}) {
    // Min-p keeps a prefix of the same order: the tokens within log(min_p) of the best.
    std::size_t min_p_keep = order.size();
    if (min_p > 0.0f)
      min_p_keep = static_cast<std::size_t>(std::count_if(l.begin(), l.end(), [&](float x) {
        return static_cast<double>(x) - top >= std::log(static_cast<double>(min_p));
      }));
    for (float top_p : {0.1f, 0.5f, 0.9f, 0.99f, 1.0f}) {
      CAPTURE(min_p);
      CAPTURE(top_p);
      double cum = 0.0;
      std::size_t keep = 0;
      while (keep < order.size()) {
        cum += std::exp(l[static_cast<std::size_t>(order[keep++])] - top);
        if (top_p < 1.0f && cum >= top_p * z) break;
      }
      keep = std::min(keep, min_p_keep);
      MESSAGE("top_p " << top_p << ", min_p " << min_p << ": " << keep << " tokens survive");
      SamplingParams p = params(0.7f);
      p.top_p = top_p;
      p.min_p = min_p;
      Sampler s(p, vocab);
      const auto d = s.distribution(l, {});
      REQUIRE(d.size() == keep);
      // Without top-k the survivors stay in id order.
      for (std::size_t i = 1; i < keep; ++i) REQUIRE(d[i - 1].id < d[i].id);
      CHECK(ids_of(d) == std::set<std::int32_t>(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep)));
      for (int i = 0; i < 200; ++i) {
        const auto t = s.sample(l, {});
        REQUIRE(std::find(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), t) !=
                order.begin() + static_cast<std::ptrdiff_t>(keep));
      }
    }
  }
}

TEST_CASE("min-p keeps the tokens with p >= min_p * p_max") {
  // p_max = 0.5; min_p = 0.15 puts the floor at 0.075: 0.5, 0.2, 0.1, 0.09 stay, 0.06 and 0.05 go.
  const std::vector<double> probs{0.06, 0.2, 0.5, 0.05, 0.09, 0.1};
  const auto l = logits_of(probs);
  SamplingParams p = params(1.0f);
  p.min_p = 0.15f;
  Sampler s(p, 6);
  const std::set<std::int32_t> kept{1, 2, 4, 5};
  CHECK(ids_of(s.distribution(l, {})) == kept);
  CHECK(drawn(counts(s, l, 20000)) == kept);
  p.min_p = 0.45f;  // floor 0.225: only the best
  Sampler one(p, 6);
  CHECK(ids_of(one.distribution(l, {})) == std::set<std::int32_t>{2});
  // Min-p after top-p: the ratio to p_max does not change with renormalisation.
  p.min_p = 0.15f;
  p.top_p = 0.75f;  // nucleus 0.5, 0.2, 0.1 (crosses at 0.8)
  Sampler both(p, 6);
  CHECK(ids_of(both.distribution(l, {})) == std::set<std::int32_t>{1, 2, 5});
}

TEST_CASE("the repetition penalty changes exactly the history tokens in the window") {
  constexpr std::size_t vocab = 50;
  auto original = random_logits(vocab, 4242);
  original[10] = 0.0f;  // l = 0 is multiplied (stays 0)
  const std::vector<std::int32_t> history{1, 2, 3, 2, 10, 11, 11, 12, 20, 2};
  std::vector<std::uint8_t> seen(vocab, 0);

  struct Case {
    int last_n;
    std::set<std::int32_t> changed;
  };
  for (const Case& c : {Case{5, {11, 12, 20, 2}}, Case{-1, {1, 2, 3, 10, 11, 12, 20}}, Case{0, {}},
                        Case{1000, {1, 2, 3, 10, 11, 12, 20}}}) {
    CAPTURE(c.last_n);
    auto l = original;
    apply_repetition_penalty(l, history, 1.3f, c.last_n, seen);
    for (std::size_t i = 0; i < vocab; ++i) {
      CAPTURE(i);
      const float o = original[i];
      if (c.changed.count(static_cast<std::int32_t>(i))) {
        CHECK(l[i] == (o > 0.0f ? o / 1.3f : o * 1.3f));  // once, even for tokens repeated in the window
        if (o != 0.0f) CHECK(l[i] != o);
      } else {
        CHECK(std::memcmp(&l[i], &o, sizeof(float)) == 0);  // bit for bit untouched
      }
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](std::uint8_t b) { return b == 0; }));
  }
  auto l = original;
  apply_repetition_penalty(l, history, 1.0f, 64, seen);
  CHECK(std::memcmp(l.data(), original.data(), vocab * sizeof(float)) == 0);

  // Through the sampler: penalising the argmax makes greedy pick the runner-up.
  std::vector<float> g{1.0f, 3.0f, 2.0f, -1.0f};
  SamplingParams p = params(0.0f);
  p.repeat_penalty = 2.0f;
  Sampler s(p, 4);
  const std::vector<std::int32_t> h{1};
  CHECK(s.sample(g, {}) == 1);
  CHECK(s.sample(g, h) == 2);  // 3 / 2 = 1.5 < 2
  p.repeat_last_n = 0;
  Sampler off(p, 4);
  CHECK(off.sample(g, h) == 1);
}

TEST_CASE("temperature sampling follows softmax(logits / T): chi-square goodness of fit") {
  // 8 tokens with fresh random logits, 100,000 draws per case, Pearson's chi-square against softmax(l / T)
  // with 7 degrees of freedom (5 for the top-k case: 6 survivors). The rejection threshold is the
  // 1 - 1e-6 quantile (40.52 for 7 df, 35.89 for 5 df): a correct sampler would exceed it with probability 1e-6
  // for a random seed. The seeds are fixed, so each statistic is a fixed number and the test cannot be flaky:
  // it passes or fails the same way on every run and machine. Its power is shown below: the same counts
  // against softmax(l) (the temperature ignored) give a statistic in the thousands.
  constexpr int n = 100000;
  constexpr double crit7 = 40.52, crit5 = 35.89;
  for (std::uint64_t seed : {11u, 12u, 13u}) {
    for (float t : {0.5f, 1.0f, 1.7f}) {
      CAPTURE(seed);
      CAPTURE(t);
      const auto l = random_logits(8, seed, -1.5, 1.5);
      const auto expected = softmax(l, static_cast<double>(t));
      for (double e : expected) REQUIRE(e * n >= 5.0);  // the chi-square approximation is valid
      SamplingParams p = params(t);
      p.seed = seed * 1000 + static_cast<std::uint64_t>(t * 10);
      Sampler s(p, 8);
      const auto c = counts(s, l, n);
      const double x2 = chi_square(c, expected, n);
      MESSAGE("seed " << seed << " T " << t << ": chi-square " << x2 << " (7 df, threshold " << crit7 << ")");
      CHECK(x2 < crit7);
      if (t != 1.0f) CHECK(chi_square(c, softmax(l, 1.0), n) > 200.0);
    }
  }
  // Top-k then temperature: the softmax over the 6 best only.
  const auto l = random_logits(8, 21, -1.0, 1.0);
  SamplingParams p = params(1.3f);
  p.top_k = 6;
  p.seed = 2121;
  Sampler s(p, 8);
  const auto c = counts(s, l, n);
  std::vector<float> best = l;
  std::sort(best.begin(), best.end(), std::greater<>());
  std::vector<int> obs;
  std::vector<float> kept;
  for (std::size_t i = 0; i < 8; ++i) {
    if (l[i] >= best[5]) {
      obs.push_back(c[i]);
      kept.push_back(l[i]);
    } else {
      CHECK(c[i] == 0);
    }
  }
  REQUIRE(obs.size() == 6);
  const double x2 = chi_square(obs, softmax(kept, 1.3), n);
  MESSAGE("top-k 6, T 1.3: chi-square " << x2 << " (5 df, threshold " << crit5 << ")");
  CHECK(x2 < crit5);
}

TEST_CASE("bad parameters are refused, naming the flag") {
  const auto refused = [](SamplingParams p, const char* flag) {
    CAPTURE(flag);
    const std::string m = error_of([&] { Sampler s(p, 10); });
    CHECK(m.find(std::string("sampling: ") + flag) != std::string::npos);
    CHECK_THROWS_AS(Sampler(p, 10), std::invalid_argument);
  };
  const auto with = [](auto member, auto value) {
    SamplingParams p;
    p.*member = value;
    return p;
  };
  refused(with(&SamplingParams::temperature, std::numeric_limits<float>::quiet_NaN()), "temperature");
  refused(with(&SamplingParams::temperature, std::numeric_limits<float>::infinity()), "temperature");
  refused(with(&SamplingParams::top_k, -1), "top_k");
  refused(with(&SamplingParams::top_p, 0.0f), "top_p");
  refused(with(&SamplingParams::top_p, 1.5f), "top_p");
  refused(with(&SamplingParams::top_p, -0.1f), "top_p");
  refused(with(&SamplingParams::top_p, std::numeric_limits<float>::quiet_NaN()), "top_p");
  refused(with(&SamplingParams::min_p, -0.01f), "min_p");
  refused(with(&SamplingParams::min_p, 1.0f), "min_p");
  refused(with(&SamplingParams::min_p, std::numeric_limits<float>::quiet_NaN()), "min_p");
  refused(with(&SamplingParams::repeat_penalty, 0.0f), "repeat_penalty");
  refused(with(&SamplingParams::repeat_penalty, -1.0f), "repeat_penalty");
  refused(with(&SamplingParams::repeat_penalty, std::numeric_limits<float>::quiet_NaN()), "repeat_penalty");
  refused(with(&SamplingParams::repeat_last_n, -2), "repeat_last_n");
  CHECK(error_of([] { Sampler s(SamplingParams{}, 0); }).find("vocabulary size 0") != std::string::npos);
  // Edges that are valid.
  CHECK_NOTHROW(Sampler(with(&SamplingParams::top_p, 1.0f), 10));
  CHECK_NOTHROW(Sampler(with(&SamplingParams::min_p, 0.0f), 10));
  CHECK_NOTHROW(Sampler(with(&SamplingParams::temperature, -3.0f), 10));
  CHECK_NOTHROW(Sampler(with(&SamplingParams::repeat_last_n, -1), 10));
}

TEST_CASE("non-finite logits and bad inputs are errors, never a silent pick") {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (float t : {0.0f, 0.8f}) {
      CAPTURE(bad);
      CAPTURE(t);
      auto l = random_logits(10, 3);
      l[3] = bad;
      Sampler s(params(t), 10);
      CHECK_THROWS_AS(s.sample(l, {}), std::runtime_error);
      const std::string m = error_of([&] { s.sample(l, {}); });
      CHECK(m.find("logit of token 3 is") != std::string::npos);
      CHECK(m.find(std::isnan(bad) ? "nan" : "inf") != std::string::npos);
    }
  }
  Sampler s(params(0.8f), 10);
  const auto l = random_logits(10, 3);
  CHECK(error_of([&] { s.sample(std::span(l).first(9), {}); }) ==
        "sampling: got 9 logits for a vocabulary of 10");
  SamplingParams p = params(0.8f);
  p.repeat_penalty = 1.2f;
  Sampler pen(p, 10);
  const std::vector<std::int32_t> h{1, 10};
  CHECK(error_of([&] { pen.sample(l, h); }) == "sampling: history token 10 is outside the vocabulary [0, 10)");
  const std::vector<std::int32_t> neg{-1};
  CHECK_THROWS_AS(pen.sample(l, neg), std::invalid_argument);
  const std::vector<std::int32_t> fine{1, 2, 1};
  CHECK_NOTHROW(pen.sample(l, fine));  // the scratch was left clean by the failures
}

TEST_CASE("cost at the DeepSeek vocabulary size") {
  constexpr std::int32_t vocab = 129280;
  const auto l = random_logits(vocab, 8, -10.0, 10.0);
  std::vector<std::int32_t> history(100);
  for (std::size_t i = 0; i < history.size(); ++i) history[i] = static_cast<std::int32_t>(i * 997 % vocab);
  struct Case {
    const char* what;
    int top_k;
    float top_p, min_p;
  };
  for (const Case& c : {Case{"no filter", 0, 1.0f, 0.0f}, Case{"top-k 40", 40, 1.0f, 0.0f},
                        Case{"top-p 0.95", 0, 0.95f, 0.0f}, Case{"min-p 0.05", 0, 1.0f, 0.05f},
                        Case{"k 40, p 0.95, min-p 0.05", 40, 0.95f, 0.05f}}) {
    SamplingParams p;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    p.repeat_penalty = 1.1f;
    Sampler s(p, vocab);
    constexpr int reps = 20;
    const auto t0 = std::chrono::steady_clock::now();
    std::int64_t sum = 0;
    for (int i = 0; i < reps; ++i) sum += s.sample(l, history);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(std::string(c.what) << ": " << ms / reps << " ms per token (vocab " << vocab << ")");
    CHECK(sum >= 0);
  }
}
