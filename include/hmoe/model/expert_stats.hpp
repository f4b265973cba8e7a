/// \file
/// \brief Router statistics: for every MoE layer and routed expert, how many tokens the router sent there and
/// the summed routing weight. Gathered while a CPU model runs over a calibration text, merged, saved as a small
/// text file, and ordered hottest-first for placement (model/placement_plan.hpp).
///
/// Gathering: an `ExpertStats` is a `RoutingObserver`; install it on the thread that runs the model.
///
/// ```cpp
/// ExpertStats stats(model.hparams());
/// {
///   ObserveRouting scope(stats);          // every CPU MoE layer's forward on this thread now reports here
///   model.forward(pool, tokens, cache);
/// }
/// stats.save("stats.txt");
/// ```
///
/// File format (version 1), plain text, one record per line, fields separated by spaces, lines starting with
/// `#` ignored:
///
/// ```text
/// hmoe-expert-stats 1
/// shape <layers> <dense_layers> <experts> <per_token>
/// layer <l> tokens <T>                      one group of three lines per MoE layer l, dense_layers <= l < layers
/// count <c_0> <c_1> ... <c_{experts-1}>     tokens routed to each expert (whole numbers)
/// weight <w_0> ... <w_{experts-1}>          the routing weights summed over those tokens (%.17g: exact)
/// ```
///
/// `per_token` is the routed experts per token the statistics were gathered with, so each layer's counts sum to
/// T × per_token; the loader checks that, and that every MoE layer appears exactly once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hmoe/layer/moe.hpp"
#include "hmoe/layer/router.hpp"
#include "hmoe/model/hparams.hpp"

namespace hmoe {

/// A statistics file that cannot be read, or statistics that do not belong to a model.
struct ExpertStatsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ExpertStats final : public RoutingObserver {
 public:
  /// One routed expert of one layer with its statistics.
  struct Entry {
    int layer = 0, expert = 0;
    std::uint64_t count = 0;
    double weight = 0;
    bool operator==(const Entry&) const = default;
  };

  ExpertStats() = default;
  /// Empty statistics for a model of this shape; `per_token` = routed experts per token.
  ExpertStats(std::int64_t layers, std::int64_t dense_layers, std::int64_t experts, std::int64_t per_token)
      : layers_(layers), dense_layers_(dense_layers), experts_(experts), per_token_(per_token) {
    if (layers < 0 || dense_layers < 0 || dense_layers > layers || experts < 1 || per_token < 1 || per_token > experts)
      throw std::invalid_argument("ExpertStats: bad shape: layers " + std::to_string(layers) + ", dense_layers " +
                                  std::to_string(dense_layers) + ", experts " + std::to_string(experts) +
                                  ", per_token " + std::to_string(per_token));
    count_.assign(static_cast<std::size_t>(layers * experts), 0);
    weight_.assign(count_.size(), 0.0);
    tokens_.assign(static_cast<std::size_t>(layers), 0);
  }
  /// Empty statistics for the model these hyper-parameters describe (its `experts_used` per token).
  explicit ExpertStats(const DeepSeekHParams& h) : ExpertStats(h.layers, h.dense_layers, h.experts, h.experts_used) {}

  std::int64_t layers() const { return layers_; }
  std::int64_t dense_layers() const { return dense_layers_; }
  std::int64_t experts() const { return experts_; }
  std::int64_t per_token() const { return per_token_; }
  bool is_moe_layer(std::int64_t layer) const { return layer >= dense_layers_ && layer < layers_; }

  /// Tokens that went through MoE layer `layer`'s router.
  std::uint64_t tokens(int layer) const { return tokens_[checked_layer(layer)]; }
  /// Tokens the router of `layer` sent to `expert`.
  std::uint64_t count(int layer, int expert) const { return count_[index(layer, expert)]; }
  /// Their routing weights, summed.
  double weight(int layer, int expert) const { return weight_[index(layer, expert)]; }
  /// Token-to-expert assignments of one MoE layer (its routed-expert traffic): tokens × per_token.
  std::uint64_t layer_count(int layer) const {
    const auto l = checked_layer(layer);
    std::uint64_t s = 0;
    for (std::int64_t e = 0; e < experts_; ++e) s += count_[static_cast<std::size_t>(static_cast<std::int64_t>(l) * experts_ + e)];
    return s;
  }
  /// Every layer's token-to-expert assignments: the routed-expert traffic the statistics saw.
  std::uint64_t total_count() const {
    std::uint64_t s = 0;
    for (auto c : count_) s += c;
    return s;
  }

  /// Adds one forward's routing of MoE layer `layer`.
  void add(int layer, const Routing& r) {
    const auto l = checked_layer(layer);
    if (!is_moe_layer(layer))
      throw std::invalid_argument("ExpertStats: layer " + std::to_string(layer) + " is dense (the first " +
                                  std::to_string(dense_layers_) + " layers have no router)");
    if (r.per_token != per_token_)
      throw std::invalid_argument("ExpertStats: layer " + std::to_string(layer) + " routed " +
                                  std::to_string(r.per_token) + " experts per token, the statistics count " +
                                  std::to_string(per_token_));
    const auto n = static_cast<std::size_t>(r.tokens * r.per_token);
    if (r.tokens < 0 || r.expert.size() != n || r.weight.size() != n)
      throw std::invalid_argument("ExpertStats: a Routing of " + std::to_string(r.tokens) + " tokens × " +
                                  std::to_string(r.per_token) + " has " + std::to_string(r.expert.size()) + " ids");
    for (std::size_t i = 0; i < n; ++i)
      if (r.expert[i] < 0 || r.expert[i] >= experts_)
        throw std::invalid_argument("ExpertStats: expert id " + std::to_string(r.expert[i]) + " outside [0, " +
                                    std::to_string(experts_) + ")");
    const auto row = static_cast<std::size_t>(l) * static_cast<std::size_t>(experts_);
    for (std::size_t i = 0; i < n; ++i) {
      ++count_[row + static_cast<std::size_t>(r.expert[i])];
      weight_[row + static_cast<std::size_t>(r.expert[i])] += r.weight[i];
    }
    tokens_[l] += static_cast<std::uint64_t>(r.tokens);
  }

  /// RoutingObserver: what a CPU MoE layer reports while an ObserveRouting scope holds these statistics.
  void observe(int layer, const Routing& routing) override { add(layer, routing); }

  /// Adds statistics gathered on another text with a model of the same shape.
  void merge(const ExpertStats& o) {
    if (o.layers_ != layers_ || o.dense_layers_ != dense_layers_ || o.experts_ != experts_ || o.per_token_ != per_token_)
      throw ExpertStatsError("ExpertStats::merge: statistics of shape " + o.shape_text() + " into " + shape_text());
    for (std::size_t i = 0; i < count_.size(); ++i) count_[i] += o.count_[i], weight_[i] += o.weight_[i];
    for (std::size_t i = 0; i < tokens_.size(); ++i) tokens_[i] += o.tokens_[i];
  }

  /// Every (MoE layer, expert), hottest first: by token count, then summed weight, both descending; ties to the
  /// lower layer, then the lower expert id. Experts never chosen come last, in the same order.
  std::vector<Entry> hottest() const {
    std::vector<Entry> out;
    out.reserve(static_cast<std::size_t>((layers_ - dense_layers_) * experts_));
    for (auto l = static_cast<int>(dense_layers_); l < layers_; ++l)
      for (int e = 0; e < experts_; ++e) out.push_back({l, e, count(l, e), weight(l, e)});
    std::stable_sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
      if (a.count != b.count) return a.count > b.count;
      return a.weight > b.weight;
    });
    return out;
  }
  /// The experts of one MoE layer, hottest first (same order as hottest()).
  std::vector<std::int32_t> hottest(int layer) const {
    checked_layer(layer);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(experts_));
    for (std::size_t e = 0; e < ids.size(); ++e) ids[e] = static_cast<std::int32_t>(e);
    std::stable_sort(ids.begin(), ids.end(), [&](std::int32_t a, std::int32_t b) {
      if (count(layer, a) != count(layer, b)) return count(layer, a) > count(layer, b);
      return weight(layer, a) > weight(layer, b);
    });
    return ids;
  }

  /// Throws, naming both shapes, when these statistics were not gathered on a model shaped like `h` (layers,
  /// dense layers, experts; the experts per token may differ: selective experts route the same experts).
  void require_matches(const DeepSeekHParams& h, std::string_view what) const {
    if (h.layers != layers_ || h.dense_layers != dense_layers_ || h.experts != experts_)
      throw ExpertStatsError("hmoe: the expert statistics (" + shape_text() + ") do not belong to " + std::string(what) +
                             " (" + std::to_string(h.layers) + " layers, " + std::to_string(h.dense_layers) +
                             " dense, " + std::to_string(h.experts) + " routed experts)");
  }

  /// The file format described at the top of this header; `comment` lines (if any) go after the magic line.
  std::string to_text(std::string_view comment = {}) const {
    std::string out = "hmoe-expert-stats 1\n";
    std::istringstream lines{std::string(comment)};
    for (std::string line; std::getline(lines, line);) out.append("# ").append(line).append("\n");
    out += "shape " + std::to_string(layers_) + " " + std::to_string(dense_layers_) + " " + std::to_string(experts_) +
           " " + std::to_string(per_token_) + "\n";
    char num[40];
    for (auto l = static_cast<int>(dense_layers_); l < layers_; ++l) {
      out += "layer " + std::to_string(l) + " tokens " + std::to_string(tokens(l)) + "\ncount";
      for (int e = 0; e < experts_; ++e) out.append(" ").append(std::to_string(count(l, e)));
      out += "\nweight";
      for (int e = 0; e < experts_; ++e) {
        std::snprintf(num, sizeof num, " %.17g", weight(l, e));
        out += num;
      }
      out += "\n";
    }
    return out;
  }

  /// Parses to_text()'s format; `source` names the text in error messages (a path).
  static ExpertStats from_text(std::string_view text, std::string_view source = "expert statistics") {
    std::istringstream in{std::string(text)};
    std::string line;
    int line_no = 0;
    auto fail = [&](const std::string& why) -> ExpertStatsError {
      return ExpertStatsError(std::string(source) + (line_no > 0 ? ":" + std::to_string(line_no) : "") + ": " + why);
    };
    // The next line that is not a comment or blank, split into words; false at the end.
    std::vector<std::string> words;
    auto next = [&]() {
      while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        std::istringstream ws(line);
        words.clear();
        for (std::string w; ws >> w;) words.push_back(w);
        return true;
      }
      return false;
    };
    auto whole = [&](const std::string& w, std::string_view what) -> std::uint64_t {
      std::uint64_t v = 0;
      if (w.empty() || w.size() > 19 || w.find_first_not_of("0123456789") != std::string::npos)
        throw fail(std::string(what) + " '" + w + "' is not a whole number");
      for (char c : w) v = v * 10 + static_cast<std::uint64_t>(c - '0');
      return v;
    };
    auto real = [&](const std::string& w) -> double {
      char* end = nullptr;
      const double v = std::strtod(w.c_str(), &end);
      if (w.empty() || end != w.c_str() + w.size() || !std::isfinite(v) || v < 0)
        throw fail("weight '" + w + "' is not a finite number >= 0");
      return v;
    };

    if (!next() || words.size() != 2 || words[0] != "hmoe-expert-stats")
      throw fail("not an hmoe expert statistics file (the first line must be 'hmoe-expert-stats 1')");
    if (words[1] != "1") throw fail("format version " + words[1] + "; this build reads version 1");
    if (!next() || words.size() != 5 || words[0] != "shape")
      throw fail("expected 'shape <layers> <dense_layers> <experts> <per_token>'");
    const auto layers = whole(words[1], "layers"), dense = whole(words[2], "dense_layers");
    const auto experts = whole(words[3], "experts"), per_token = whole(words[4], "per_token");
    constexpr std::uint64_t limit = std::uint64_t{1} << 20;
    if (layers > limit || experts > limit || dense > layers || experts < 1 || per_token < 1 || per_token > experts)
      throw fail("shape " + words[1] + " " + words[2] + " " + words[3] + " " + words[4] + " is not a model's");
    ExpertStats s(static_cast<std::int64_t>(layers), static_cast<std::int64_t>(dense), static_cast<std::int64_t>(experts),
                  static_cast<std::int64_t>(per_token));
    std::vector<bool> seen(static_cast<std::size_t>(layers), false);
    while (next()) {
      if (words.size() != 4 || words[0] != "layer" || words[2] != "tokens")
        throw fail("expected 'layer <l> tokens <T>'");
      const auto l = whole(words[1], "layer");
      if (l < dense || l >= layers)
        throw fail("layer " + words[1] + " is not a MoE layer (those are " + std::to_string(dense) + " to " +
                   std::to_string(layers - 1) + ")");
      if (seen[l]) throw fail("layer " + words[1] + " appears twice");
      seen[l] = true;
      s.tokens_[l] = whole(words[3], "tokens");
      const auto row = l * experts;
      if (!next() || words.empty() || words[0] != "count" || words.size() != experts + 1)
        throw fail("expected 'count' and " + std::to_string(experts) + " numbers for layer " + std::to_string(l));
      std::uint64_t sum = 0;
      for (std::uint64_t e = 0; e < experts; ++e) sum += s.count_[row + e] = whole(words[e + 1], "count");
      if (sum != s.tokens_[l] * per_token)
        throw fail("layer " + std::to_string(l) + "'s counts sum to " + std::to_string(sum) + ", not tokens × per_token = " +
                   std::to_string(s.tokens_[l] * per_token));
      if (!next() || words.empty() || words[0] != "weight" || words.size() != experts + 1)
        throw fail("expected 'weight' and " + std::to_string(experts) + " numbers for layer " + std::to_string(l));
      for (std::uint64_t e = 0; e < experts; ++e) s.weight_[row + e] = real(words[e + 1]);
    }
    for (auto l = dense; l < layers; ++l)
      if (!seen[l]) {
        line_no = 0;
        throw fail("MoE layer " + std::to_string(l) + " is missing");
      }
    return s;
  }

  void save(const std::filesystem::path& path, std::string_view comment = {}) const {
    std::ofstream out(path, std::ios::binary);
    out << to_text(comment);
    if (!out.flush()) throw ExpertStatsError("cannot write " + path.string());
  }
  static ExpertStats load(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ExpertStatsError("cannot read " + path.string());
    std::ostringstream s;
    s << in.rdbuf();
    return from_text(s.str(), path.string());
  }

  bool operator==(const ExpertStats& o) const {
    return layers_ == o.layers_ && dense_layers_ == o.dense_layers_ && experts_ == o.experts_ &&
           per_token_ == o.per_token_ && count_ == o.count_ && weight_ == o.weight_ && tokens_ == o.tokens_;
  }

 private:
  std::string shape_text() const {
    return std::to_string(layers_) + " layers, " + std::to_string(dense_layers_) + " dense, " +
           std::to_string(experts_) + " routed experts, " + std::to_string(per_token_) + " per token";
  }
  std::size_t checked_layer(int layer) const {
    if (layer < 0 || layer >= layers_)
      throw std::out_of_range("ExpertStats: layer " + std::to_string(layer) + " outside [0, " + std::to_string(layers_) + ")");
    return static_cast<std::size_t>(layer);
  }
  std::size_t index(int layer, int expert) const {
    const auto l = checked_layer(layer);
    if (expert < 0 || expert >= experts_)
      throw std::out_of_range("ExpertStats: expert " + std::to_string(expert) + " outside [0, " + std::to_string(experts_) + ")");
    return l * static_cast<std::size_t>(experts_) + static_cast<std::size_t>(expert);
  }

  std::int64_t layers_ = 0, dense_layers_ = 0, experts_ = 0, per_token_ = 0;
  std::vector<std::uint64_t> count_;  ///< layers × experts (dense layers' rows stay 0)
  std::vector<double> weight_;        ///< layers × experts
  std::vector<std::uint64_t> tokens_;  ///< per layer
};

}  // namespace hmoe
