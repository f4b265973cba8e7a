// Placement by compute intensity: router statistics gathered while the CPU model runs equal a recount of what
// the routers chose; they survive a save/load round trip and refuse malformed files; the planner fills a budget
// in its order (mandatory part, shared experts, dense FFN, output head, routed experts hottest first), never
// past the budget, charging exactly memory_report's bytes, and refuses with the numbers when the mandatory part
// does not fit.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <hmoe/hmoe.hpp>
#include <hmoe/model/expert_stats.hpp>
#include <hmoe/model/placement_plan.hpp>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../../support/error_of.hpp"

using namespace hmoe;
namespace fs = std::filesystem;

namespace {

fs::path test_model(const char* name) { return fs::path(HMOE_TEST_DATA) / "models" / name; }
fs::path bundled_model() { return fs::path(HMOE_TEST_DATA) / ".." / ".." / "models" / "hmoe-tiny-dsv3-Q4_K_M.gguf"; }

using D = dims::Dynamic;
using CpuMoe = MoeLayer<TopKRouter<D, Placement<CPU>>, Experts<D, Placement<CPU>, Quant<Stored>, Isa<Generic>>,
                       Mlp<D, Placement<CPU>>>;

/// Keeps a copy of every routing it is shown.
struct Recorder final : RoutingObserver {
  std::vector<std::pair<int, Routing>> seen;
  void observe(int layer, const Routing& r) override { seen.emplace_back(layer, r); }
};

/// Counts and weight sums recounted from raw routings, expert by expert (a different loop from ExpertStats::add).
struct Recount {
  std::vector<std::uint64_t> count;
  std::vector<double> weight;
  std::vector<std::uint64_t> tokens;
};
Recount recount(const std::vector<std::pair<int, Routing>>& seen, std::int64_t layers, std::int64_t experts) {
  Recount r{std::vector<std::uint64_t>(static_cast<std::size_t>(layers * experts)),
            std::vector<double>(static_cast<std::size_t>(layers * experts)), std::vector<std::uint64_t>(static_cast<std::size_t>(layers))};
  for (const auto& [layer, routing] : seen) {
    r.tokens[static_cast<std::size_t>(layer)] += static_cast<std::uint64_t>(routing.tokens);
    for (std::int64_t e = 0; e < experts; ++e)
      for (std::size_t i = 0; i < routing.expert.size(); ++i)
        if (routing.expert[i] == e) {
          ++r.count[static_cast<std::size_t>(layer * experts + e)];
          r.weight[static_cast<std::size_t>(layer * experts + e)] += routing.weight[i];
        }
  }
  return r;
}

void check_equal(const ExpertStats& s, const Recount& r) {
  for (int l = 0; l < s.layers(); ++l) {
    CHECK(s.tokens(l) == r.tokens[static_cast<std::size_t>(l)]);
    for (int e = 0; e < s.experts(); ++e) {
      INFO("layer " << l << ", expert " << e);
      CHECK(s.count(l, e) == r.count[static_cast<std::size_t>(l * s.experts() + e)]);
      CHECK(s.weight(l, e) == doctest::Approx(r.weight[static_cast<std::size_t>(l * s.experts() + e)]).epsilon(1e-12));
    }
  }
}

std::vector<float> random_input(std::mt19937_64& rng, std::int64_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

/// Random statistics for a model of h's shape: per MoE layer a random token count, each token routed to
/// per_token distinct experts drawn from a skewed (Zipf-like, shuffled) distribution; some experts stay unused.
ExpertStats random_stats(const DeepSeekHParams& h, std::mt19937_64& rng) {
  ExpertStats s(h);
  const auto k = h.experts_used, n = h.experts;
  for (auto l = static_cast<int>(h.dense_layers); l < h.layers; ++l) {
    std::vector<double> p(static_cast<std::size_t>(n));
    for (std::size_t e = 0; e < p.size(); ++e) p[e] = 1.0 / std::pow(static_cast<double>(e + 1), 1.3);
    if (n > k + 1) p[static_cast<std::size_t>(n - 1)] = 0;  // never chosen
    std::shuffle(p.begin(), p.end(), rng);
    const auto tokens = std::uniform_int_distribution<std::int64_t>(5, 300)(rng);
    Routing r{tokens, k, {}, {}};
    std::uniform_real_distribution<float> w(0.01f, 1.0f);
    for (std::int64_t t = 0; t < tokens; ++t) {
      auto q = p;
      for (std::int64_t j = 0; j < k; ++j) {
        std::discrete_distribution<int> pick(q.begin(), q.end());
        const int e = pick(rng);
        q[static_cast<std::size_t>(e)] = 0;
        r.expert.push_back(e);
        r.weight.push_back(w(rng));
      }
    }
    s.add(l, r);
  }
  return s;
}

std::uint64_t group_bytes(const MemoryReport& r, TensorGroup g) { return r.group_bytes[static_cast<std::size_t>(g)]; }

}  // namespace

TEST_CASE("an observed MoE layer reports exactly what its router chose") {
  std::mt19937_64 rng(std::random_device{}());
  for (const char* model : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/BF16.gguf", "dsv3-tiny/Q8_0.gguf"}) {
    INFO(model);
    const auto f = gguf::File::open(test_model(model));
    const auto h = read_hparams(f);
    const int layer = static_cast<int>(h.dense_layers);
    const CpuMoe moe(f, h, layer);
    const TopKRouter<D, Placement<CPU>> router(f, h, layer);
    cpu::ThreadPool pool(2);
    const std::int64_t n = 41;
    const auto x = random_input(rng, n * h.hidden);
    std::vector<float> out(x.size());

    ExpertStats stats(h);
    CHECK(ObserveRouting::current() == nullptr);
    {
      ObserveRouting scope(stats);
      CHECK(ObserveRouting::current() == &stats);
      moe.forward(pool, x.data(), n, out.data());
    }
    CHECK(ObserveRouting::current() == nullptr);
    moe.forward(pool, x.data(), n, out.data());  // not observed: nothing more is counted

    // The independent count: the same router run directly on the same input.
    const std::vector<std::pair<int, Routing>> direct{{layer, router.route(pool, x.data(), n)}};
    check_equal(stats, recount(direct, h.layers, h.experts));
    CHECK(stats.tokens(layer) == static_cast<std::uint64_t>(n));
    CHECK(stats.layer_count(layer) == static_cast<std::uint64_t>(n * h.experts_used));
    CHECK(stats.total_count() == static_cast<std::uint64_t>(n * h.experts_used));
    std::set<int> used;
    for (int e = 0; e < h.experts; ++e)
      if (stats.count(layer, e)) used.insert(e);
    CHECK(used.size() >= 2);  // random inputs spread over experts: a count that ignored ids would differ
  }
}

TEST_CASE("a whole model's statistics equal a recount of every MoE layer's routing, and merge adds") {
  std::mt19937_64 rng(std::random_device{}());
  for (const char* model : {"dsv3-tiny/Q8_0.gguf", "dsv2lite-tiny/Q4_K_M.gguf"}) {
    INFO(model);
    const auto model_ = ReferenceModel<>::load(gguf::File::open(test_model(model)));
    const auto& h = model_.hparams();
    cpu::ThreadPool pool(2);
    std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(h.vocab - 1));
    std::vector<std::int32_t> a(23), b(9);
    for (auto& t : a) t = id(rng);
    for (auto& t : b) t = id(rng);

    Recorder rec;
    ExpertStats first(h), second(h), both(h);
    {
      auto cache = model_.make_cache(64);
      ObserveRouting outer(rec);
      model_.forward(pool, a, cache);
      {
        ObserveRouting inner(first);  // nested: only the inner observer sees this forward
        CHECK(ObserveRouting::current() == &first);
      }
      CHECK(ObserveRouting::current() == &rec);
      model_.forward(pool, b, cache);
    }
    // The recorder saw each MoE layer once per forward, in order, never a dense layer.
    REQUIRE(rec.seen.size() == static_cast<std::size_t>(2 * (h.layers - h.dense_layers)));
    for (std::size_t i = 0; i < rec.seen.size(); ++i) {
      CHECK(rec.seen[i].first == h.dense_layers + static_cast<std::int64_t>(i) % (h.layers - h.dense_layers));
      CHECK(rec.seen[i].second.per_token == h.experts_used);
    }
    {
      auto cache = model_.make_cache(64);
      {
        ObserveRouting s(first);
        model_.forward(pool, a, cache);
      }
      ObserveRouting s(second);
      model_.forward(pool, b, cache);
    }
    {
      auto cache = model_.make_cache(64);
      ObserveRouting s(both);
      model_.forward(pool, a, cache);
      model_.forward(pool, b, cache);
    }
    check_equal(both, recount(rec.seen, h.layers, h.experts));
    for (int l = static_cast<int>(h.dense_layers); l < h.layers; ++l) CHECK(both.tokens(l) == a.size() + b.size());
    for (int l = 0; l < h.dense_layers; ++l) CHECK(both.tokens(l) == 0);
    auto merged = first;
    merged.merge(second);
    CHECK(merged.total_count() == both.total_count());
    for (int l = 0; l < h.layers; ++l)
      for (int e = 0; e < h.experts; ++e) {
        CHECK(merged.count(l, e) == both.count(l, e));
        CHECK(merged.weight(l, e) == doctest::Approx(both.weight(l, e)).epsilon(1e-12));
      }
    CHECK(test::error_of([&] { merged.merge(ExpertStats(h.layers, h.dense_layers, h.experts + 1, h.experts_used)); })
              .find("ExpertStats::merge") != std::string::npos);
  }
}

TEST_CASE("hottest() orders by count, then weight, then layer and expert id") {
  ExpertStats s(3, 1, 4, 2);
  // layer 1: expert 2 ×3, expert 0 ×2 (weight 1.0), expert 3 ×2 (weight 1.5), expert 1 ×1
  s.add(1, Routing{4, 2, {2, 0, 2, 3, 2, 0, 3, 1}, {0.1f, 0.5f, 0.1f, 0.75f, 0.1f, 0.5f, 0.75f, 0.2f}});
  // layer 2: expert 1 ×3 (the same weight as layer 1's expert 2: the lower layer ranks first), expert 0 ×1,
  // experts 2 and 3 never
  s.add(2, Routing{2, 2, {1, 0, 1, 1}, {0.1f, 0.1f, 0.1f, 0.1f}});
  const auto order = s.hottest();
  const std::vector<std::pair<int, int>> want{{1, 2}, {2, 1}, {1, 3}, {1, 0}, {1, 1}, {2, 0}, {2, 2}, {2, 3}};
  REQUIRE(order.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("rank " << i);
    CHECK(order[i].layer == want[i].first);
    CHECK(order[i].expert == want[i].second);
  }
  CHECK(s.hottest(1) == std::vector<std::int32_t>{2, 3, 0, 1});
  CHECK(s.hottest(2) == std::vector<std::int32_t>{1, 0, 2, 3});
  CHECK(s.count(1, 2) == 3);
  CHECK(s.weight(1, 3) == doctest::Approx(1.5));
  CHECK(test::error_of([&] { s.add(0, Routing{1, 2, {0, 1}, {1, 1}}); }).find("dense") != std::string::npos);
  CHECK(test::error_of([&] { s.add(1, Routing{1, 2, {0, 4}, {1, 1}}); }).find("expert id 4") != std::string::npos);
  CHECK(test::error_of([&] { s.add(1, Routing{1, 1, {0}, {1}}); }).find("1 experts per token") != std::string::npos);
}

TEST_CASE("statistics survive a save/load round trip and malformed files are refused") {
  std::mt19937_64 rng(std::random_device{}());
  const auto f = gguf::File::open(bundled_model());
  const auto h = read_hparams(f);
  const auto stats = random_stats(h, rng);
  const auto path = fs::temp_directory_path() / ("hmoe-test-stats-" + std::to_string(rng()) + ".txt");
  stats.save(path, "model x\nsecond comment line");
  const auto back = ExpertStats::load(path);
  fs::remove(path);
  CHECK(back == stats);  // weights too: %.17g round-trips doubles exactly
  CHECK(back.to_text() == stats.to_text());
  CHECK(stats.to_text("a note").starts_with("hmoe-expert-stats 1\n# a note\nshape 6 1 16 2\nlayer 1 tokens "));

  const auto text = stats.to_text();
  auto error = [](const std::string& t) { return test::error_of([&] { ExpertStats::from_text(t, "s.txt"); }); };
  auto replaced = [&](std::string_view what, std::string_view with) {
    auto t = text;
    const auto at = t.find(what);
    REQUIRE(at != std::string::npos);
    return t.replace(at, what.size(), with);
  };
  CHECK(error("").find("not an hmoe expert statistics file") != std::string::npos);
  CHECK(error("{\"json\": 1}\n").find("not an hmoe expert statistics file") != std::string::npos);
  CHECK(error(replaced("hmoe-expert-stats 1", "hmoe-expert-stats 2")).find("format version 2") != std::string::npos);
  CHECK(error(replaced("shape 6 1 16 2", "shape 6 1 16 17")).find("s.txt:2: shape") != std::string::npos);
  CHECK(error(replaced("count ", "count 1 ")).find("expected 'count' and 16 numbers for layer 1") != std::string::npos);
  CHECK(error(replaced("\nlayer 2 ", "\nlayer 1 ")).find("layer 1 appears twice") != std::string::npos);
  CHECK(error(replaced("\nlayer 2 ", "\nlayer 0 ")).find("layer 0 is not a MoE layer") != std::string::npos);
  std::string negative = "weight -1";
  for (int e = 1; e < 16; ++e) negative += " 0";
  const auto w_at = text.find("\nweight ") + 1;
  CHECK(error(text.substr(0, w_at) + negative + text.substr(text.find('\n', w_at)))
            .find("s.txt:5: weight '-1' is not a finite number >= 0") != std::string::npos);
  // One token more than the counts add up to.
  const auto tok_at = text.find("layer 3 tokens ") + 15;
  const auto tokens = std::stoull(text.substr(tok_at));
  CHECK(error(replaced("layer 3 tokens " + std::to_string(tokens), "layer 3 tokens " + std::to_string(tokens + 1)))
            .find("layer 3's counts sum to " + std::to_string(2 * tokens)) != std::string::npos);
  const auto cut = text.substr(0, text.find("layer 5 tokens"));
  CHECK(error(cut).find("MoE layer 5 is missing") != std::string::npos);
  CHECK(error(replaced("count ", "count x")).find("is not a whole number") != std::string::npos);
  CHECK(ExpertStats::from_text("# leading comment\n" + text) == stats);
  CHECK(test::error_of([] { ExpertStats::load("/nonexistent/stats.txt"); }).find("cannot read") != std::string::npos);
}

TEST_CASE("the planner fills the budget in order, hottest experts first, never past the budget") {
  const auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const auto& path : {test_model("dsv3-tiny/Q4_K_M.gguf"), test_model("dsv2lite-tiny/Q4_K_M.gguf"), bundled_model()}) {
    INFO(path.string());
    const auto f = gguf::File::open(path);
    const auto h = read_hparams(f);
    const std::int64_t ctx = std::uniform_int_distribution<std::int64_t>(0, 9000)(rng);
    const std::uint64_t bpv = ctx % 2 ? 2 : 4;
    INFO("context " << ctx << ", " << bpv << " bytes/value");
    const auto stats = random_stats(h, rng);

    // What the planner must charge, from memory_report.
    const auto report = memory_report(f, h, LayoutPlan::all_cpu(), ctx);
    const auto kv = kv_cache_bytes(h, ctx, bpv);
    const auto attention = group_bytes(report, TensorGroup::Attention), router = group_bytes(report, TensorGroup::Router);
    const auto shared = group_bytes(report, TensorGroup::SharedExperts), dense = group_bytes(report, TensorGroup::DenseFfn);
    const auto head = group_bytes(report, TensorGroup::OutputHead), routed = group_bytes(report, TensorGroup::RoutedExperts);
    const auto mandatory = kv + attention + router;
    REQUIRE(shared > 0);
    REQUIRE(dense > 0);

    const auto per_expert = routed_expert_bytes(f, h);
    std::uint64_t sum = 0;
    for (int l = 0; l < h.layers; ++l) {
      CHECK((per_expert[static_cast<std::size_t>(l)] == 0) == (l < h.dense_layers));
      sum += per_expert[static_cast<std::size_t>(l)] * static_cast<std::uint64_t>(h.experts);
    }
    CHECK(sum == routed);

    // The mandatory part exactly: nothing else.
    auto p = plan_placement(f, h, mandatory, &stats, ctx, bpv);
    CHECK(p.gpu_bytes == mandatory);
    CHECK(p.bytes_left() == 0);
    CHECK(p.placed.empty());
    CHECK(p.groups.size() == 7);
    CHECK(p.groups[0].name == "KV cache");
    CHECK(p.groups[0].bytes == kv);
    for (std::size_t i = 0; i < 3; ++i) CHECK((p.groups[i].mandatory && p.groups[i].on_gpu));
    for (std::size_t i = 3; i < 7; ++i) CHECK((!p.groups[i].mandatory && !p.groups[i].on_gpu));
    // The order: shared experts, dense FFN, output head, token embedding (kept on the host).
    CHECK(p.groups[1].group == TensorGroup::Attention);
    CHECK(p.groups[2].group == TensorGroup::Router);
    CHECK(p.groups[3].group == TensorGroup::SharedExperts);
    CHECK(p.groups[4].group == TensorGroup::DenseFfn);
    CHECK(p.groups[5].group == TensorGroup::OutputHead);
    CHECK(p.groups[6].group == TensorGroup::Embedding);

    // Shared experts come before the dense FFN, which comes before the head, then the hottest expert.
    p = plan_placement(f, h, mandatory + shared, &stats, ctx, bpv);
    CHECK(p.groups[3].on_gpu);
    CHECK(!p.groups[4].on_gpu);
    CHECK(p.gpu_bytes == mandatory + shared);
    const auto groups = mandatory + shared + dense + head;
    p = plan_placement(f, h, groups, &stats, ctx, bpv);
    CHECK((p.groups[3].on_gpu && p.groups[4].on_gpu && p.groups[5].on_gpu && !p.groups[6].on_gpu));
    CHECK(p.placed.empty());
    const auto hottest = stats.hottest();
    const auto first_bytes = per_expert[static_cast<std::size_t>(hottest[0].layer)];
    p = plan_placement(f, h, groups + first_bytes, &stats, ctx, bpv);
    REQUIRE(p.placed.size() >= 1);
    CHECK(p.placed[0].layer == hottest[0].layer);
    CHECK(p.placed[0].expert == hottest[0].expert);
    CHECK(p.expert_on_gpu(hottest[0].layer, hottest[0].expert));
    CHECK(p.gpu_bytes <= groups + first_bytes);

    // Random budgets: the defining rule replayed item by item, the budget, the byte sums and the traffic.
    const auto everything = groups + routed;
    for (int trial = 0; trial < 60; ++trial) {
      const auto budget = std::uniform_int_distribution<std::uint64_t>(mandatory, everything + everything / 8)(rng);
      INFO("budget " << budget);
      p = plan_placement(f, h, budget, &stats, ctx, bpv);
      CHECK(p.gpu_bytes <= budget);
      CHECK(p.bytes_left() == budget - p.gpu_bytes);
      std::uint64_t left = budget, on_gpu = 0;
      for (const auto& g : p.groups) {
        if (g.mandatory) {
          CHECK(g.on_gpu);
        } else if (g.group == TensorGroup::Embedding) {
          CHECK(!g.on_gpu);
          continue;
        } else {
          CHECK(g.on_gpu == (g.bytes <= left));
        }
        if (g.on_gpu) left -= g.bytes, on_gpu += g.bytes;
      }
      std::size_t next = 0;
      std::uint64_t traffic = 0;
      for (const auto& e : hottest) {
        const auto bytes = per_expert[static_cast<std::size_t>(e.layer)];
        const bool fits = bytes <= left;
        CHECK(p.expert_on_gpu(e.layer, e.expert) == fits);
        if (!fits) continue;
        left -= bytes, on_gpu += bytes, traffic += e.count;
        REQUIRE(next < p.placed.size());  // placed in this order: hottest first
        CHECK(p.placed[next].layer == e.layer);
        CHECK(p.placed[next].expert == e.expert);
        CHECK(p.placed[next].bytes == bytes);
        ++next;
      }
      CHECK(next == p.placed.size());
      CHECK(on_gpu == p.gpu_bytes);
      CHECK(left == p.bytes_left());
      for (std::size_t i = 1; i < p.placed.size(); ++i) CHECK(p.placed[i - 1].count >= p.placed[i].count);
      // Nothing left in host RAM would still fit (the embedding aside).
      for (const auto& g : p.groups)
        if (!g.on_gpu && g.group != TensorGroup::Embedding) CHECK(g.bytes > p.bytes_left());
      for (int l = static_cast<int>(h.dense_layers); l < h.layers; ++l) {
        if (p.experts_on_gpu(l) < h.experts) CHECK(per_expert[static_cast<std::size_t>(l)] > p.bytes_left());
        CHECK(p.gpu_experts(l).size() == static_cast<std::size_t>(p.experts_on_gpu(l)));
      }
      CHECK(p.gpu_routed_traffic == traffic);
      CHECK(p.routed_traffic == stats.total_count());
      CHECK(p.gpu_traffic_fraction() == doctest::Approx(static_cast<double>(traffic) / static_cast<double>(stats.total_count())));
      // memory_report on the plan's whole-group layout, plus the placed experts, is the plan's GPU total.
      const auto r = memory_report(f, h, p.layout, ctx);
      CHECK(r.kv_bytes == kv);
      CHECK(r.gpu_bytes + (p.layout.gpu(TensorGroup::RoutedExperts) ? 0 : p.routed_gpu_bytes()) == p.gpu_bytes);
    }
  }
}

TEST_CASE("edge budgets: too small is refused with the numbers, huge places everything, no statistics no experts") {
  const auto f = gguf::File::open(test_model("dsv3-tiny/Q4_K_M.gguf"));
  const auto h = read_hparams(f);
  std::mt19937_64 rng(std::random_device{}());
  const auto stats = random_stats(h, rng);
  const std::int64_t ctx = 8192;
  const auto report = memory_report(f, h, LayoutPlan::all_cpu(), ctx);
  const auto mandatory = kv_cache_bytes(h, ctx, 2) + group_bytes(report, TensorGroup::Attention) +
                         group_bytes(report, TensorGroup::Router);

  for (const std::uint64_t budget : {std::uint64_t{0}, mandatory / 2, mandatory - 1}) {
    const auto err = test::error_of([&] { plan_placement(f, h, budget, &stats, ctx, 2); });
    INFO(err);
    CHECK(err.find("must have on the GPU") != std::string::npos);
    CHECK(err.find("KV cache for 8192 tokens " + bytes_text(kv_cache_bytes(h, ctx, 2))) != std::string::npos);
    CHECK(err.find("= " + bytes_text(mandatory) + " (" + std::to_string(mandatory) + " bytes)") != std::string::npos);
    CHECK(err.find("budget of " + bytes_text(budget) + " (" + std::to_string(budget) + " bytes)") != std::string::npos);
  }
  CHECK(test::error_of([&] { plan_placement(f, h, mandatory, &stats, ctx, 2); }) == "(no exception)");
  CHECK(test::error_of([&] { plan_placement(f, h, mandatory, &stats, -1, 2); }).find("context") != std::string::npos);

  // A huge budget: every group but the embedding and every routed expert, even those never chosen.
  const auto max = std::numeric_limits<std::uint64_t>::max();
  const auto p = plan_placement(f, h, max, &stats, ctx, 2);
  auto all_gpu = LayoutPlan::all_gpu();
  all_gpu.on_gpu[static_cast<std::size_t>(TensorGroup::Embedding)] = false;
  CHECK(p.gpu_bytes == memory_report(f, h, all_gpu, ctx).gpu_bytes);
  CHECK(p.layout.on_gpu == all_gpu.on_gpu);
  CHECK(p.bytes_left() == max - p.gpu_bytes);
  CHECK(p.placed.size() == static_cast<std::size_t>((h.layers - h.dense_layers) * h.experts));
  CHECK(p.gpu_traffic_fraction() == 1.0);
  CHECK(p.experts_skipped == 0);
  for (int l = 0; l < h.layers; ++l) CHECK(p.experts_on_gpu(l) == (l < h.dense_layers ? 0 : h.experts));
  const auto text = format(p);
  auto at = [&](std::string_view s) { return text.find(s); };
  CHECK(at("KV cache") < at("attention, norms"));
  CHECK(at("attention, norms") < at("shared experts"));
  CHECK(at("shared experts") < at("dense FFN"));
  CHECK(at("dense FFN") < at("output head"));
  CHECK(at("output head") < at("routed experts"));
  CHECK(at("routed experts     GPU") != std::string::npos);
  CHECK(at("hottest first: 100.0 % of the routed traffic") != std::string::npos);

  // Without statistics: no routed expert is placed, and the plan says why.
  const auto none = plan_placement(f, h, max, nullptr, ctx, 2);
  CHECK(none.placed.empty());
  CHECK(!none.has_stats);
  CHECK(none.gpu_traffic_fraction() == 0.0);
  CHECK(none.gpu_bytes == p.gpu_bytes - p.routed_gpu_bytes());
  CHECK(!none.layout.gpu(TensorGroup::RoutedExperts));
  CHECK(format(none).find("none placed: no router statistics") != std::string::npos);

  // Statistics of another model are refused.
  const auto other = gguf::File::open(test_model("dsv2lite-tiny/Q4_K_M.gguf"));
  const auto foreign = random_stats(read_hparams(other), rng);
  CHECK(test::error_of([&] { plan_placement(f, h, max, &foreign, ctx, 2); }).find("do not belong to Q4_K_M.gguf") !=
        std::string::npos);
}

TEST_CASE("an item that does not fit stays in host RAM and a smaller later one is still placed") {
  // The bundled Q4_K_M file keeps blk.2's and blk.5's expert down projections in Q6_K: their experts are larger.
  const auto f = gguf::File::open(bundled_model());
  const auto h = read_hparams(f);
  const auto per_expert = routed_expert_bytes(f, h);
  REQUIRE(per_expert[2] > per_expert[1]);
  ExpertStats stats(h);
  // blk.2 expert 5 the hottest, then blk.1 expert 3, then blk.2 expert 0; every other expert once or never.
  stats.add(2, Routing{4, 2, {5, 0, 5, 0, 5, 1, 5, 2}, {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}});
  stats.add(1, Routing{3, 2, {3, 1, 3, 2, 3, 4}, {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}});
  const std::int64_t ctx = 100;
  const auto report = memory_report(f, h, LayoutPlan::all_cpu(), ctx);
  const auto mandatory = kv_cache_bytes(h, ctx, 2) + group_bytes(report, TensorGroup::Attention) +
                         group_bytes(report, TensorGroup::Router);
  const auto shared = group_bytes(report, TensorGroup::SharedExperts), dense = group_bytes(report, TensorGroup::DenseFfn);
  const auto head = group_bytes(report, TensorGroup::OutputHead);
  REQUIRE(dense < shared);

  // The shared experts do not fit, the (smaller) dense FFN does.
  auto p = plan_placement(f, h, mandatory + dense, &stats, ctx, 2);
  CHECK(!p.groups[3].on_gpu);
  CHECK(p.groups[3].note.find("does not fit") != std::string::npos);
  CHECK(p.groups[4].on_gpu);
  CHECK(p.gpu_bytes == mandatory + dense);
  CHECK(!p.layout.gpu(TensorGroup::SharedExperts));
  CHECK(p.layout.gpu(TensorGroup::DenseFfn));

  // The hottest expert (blk.2, large) does not fit in a small expert's bytes; blk.1's next-hottest does.
  const auto groups = mandatory + shared + dense + head;
  p = plan_placement(f, h, groups + per_expert[1], &stats, ctx, 2);
  REQUIRE(p.placed.size() == 1);
  CHECK(p.placed[0].layer == 1);
  CHECK(p.placed[0].expert == 3);
  CHECK(p.placed[0].count == 3);
  CHECK(!p.expert_on_gpu(2, 5));
  CHECK(p.expert_on_gpu(1, 3));
  CHECK(p.gpu_experts(1) == std::vector<std::int32_t>{3});
  CHECK(p.experts_skipped >= 1);
  CHECK(p.gpu_routed_traffic == 3);
  CHECK(p.routed_traffic == 14);
  CHECK(p.bytes_left() == 0);

  // With room for the large one, it goes first.
  p = plan_placement(f, h, groups + per_expert[2], &stats, ctx, 2);
  REQUIRE(p.placed.size() == 1);
  CHECK((p.placed[0].layer == 2 && p.placed[0].expert == 5));
  CHECK(p.gpu_traffic_fraction() == doctest::Approx(4.0 / 14.0));
}
