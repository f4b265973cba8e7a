// Resident experts, the host side (no GPU): the option's checks, the split of a routing between the GPU (the
// resident experts' pairs, grouped by expert) and the CPU (the rest; resident ids become -1), which together run
// every pair exactly once; the CPU reference experts skip -1 pairs, so the two halves add up to the whole layer;
// and the planner's choice for an experts-only budget, which the examples hand to GpuOptions::resident_experts.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <hmoe/gpu/expert_groups.hpp>
#include <hmoe/gpu/resident_experts.hpp>
#include <hmoe/hmoe.hpp>
#include <hmoe/model/expert_stats.hpp>
#include <hmoe/model/placement_plan.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../../support/error_of.hpp"

using namespace hmoe;
namespace fs = std::filesystem;

namespace {

fs::path test_model(const char* name) { return fs::path(HMOE_TEST_DATA) / "models" / name; }

DeepSeekHParams shape(std::int64_t layers, std::int64_t dense, std::int64_t experts, std::int64_t per_token) {
  DeepSeekHParams h;
  h.layers = layers;
  h.dense_layers = dense;
  h.experts = experts;
  h.experts_used = per_token;
  return h;
}

/// A random routing: each token gets per_token distinct experts with random weights.
Routing random_routing(std::mt19937_64& rng, std::int64_t tokens, std::int64_t per_token, std::int64_t experts) {
  Routing r{tokens, per_token, {}, {}};
  std::vector<std::int32_t> ids(static_cast<std::size_t>(experts));
  std::iota(ids.begin(), ids.end(), 0);
  std::uniform_real_distribution<float> w(0.05f, 1.0f);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::shuffle(ids.begin(), ids.end(), rng);
    for (std::int64_t j = 0; j < per_token; ++j) {
      r.expert.push_back(ids[static_cast<std::size_t>(j)]);
      r.weight.push_back(w(rng));
    }
  }
  return r;
}

/// Each expert resident with probability `p`.
std::vector<std::uint8_t> random_mask(std::mt19937_64& rng, std::int64_t experts, double p) {
  std::bernoulli_distribution pick(p);
  std::vector<std::uint8_t> m(static_cast<std::size_t>(experts));
  for (auto& b : m) b = pick(rng) ? 1 : 0;
  return m;
}

std::uint64_t seed_from_device() {
  const auto seed = std::random_device{}();
  MESSAGE("seed " << seed);
  return seed;
}

}  // namespace

TEST_CASE("GpuOptions::resident_experts: plans' lists pass, bad ones are refused naming the block and the id") {
  const auto h = shape(4, 1, 8, 2);
  using gpu::check_resident_experts;
  CHECK_NOTHROW(check_resident_experts({}, h));
  CHECK_NOTHROW(check_resident_experts({{}, {0, 3}, {7}, {1, 2, 3, 4, 5, 6, 7, 0}}, h));
  CHECK_NOTHROW(check_resident_experts({{}, {}, {}, {}, {}, {}}, h));  // empty lists past the end say nothing

  auto error = [&](const gpu::ResidentExperts& r) { return test::error_of([&] { check_resident_experts(r, h); }); };
  CHECK(error({{}, {}, {}, {}, {1}}) == "GpuOptions::resident_experts[4] (blk.4): the model has 4 layers");
  CHECK(error({{0}}) == "GpuOptions::resident_experts[0] (blk.0): a dense layer (the first 1 have no routed experts)");
  CHECK(error({{}, {8}}) == "GpuOptions::resident_experts[1] (blk.1): expert id 8 outside [0, 8)");
  CHECK(error({{}, {}, {-1}}) == "GpuOptions::resident_experts[2] (blk.2): expert id -1 outside [0, 8)");
  CHECK(error({{}, {}, {}, {5, 2, 5}}) == "GpuOptions::resident_experts[3] (blk.3): expert id 5 given twice");

  const gpu::ResidentExperts r{{}, {0, 3}, {}, {7}};
  CHECK(gpu::resident_count(r) == 3);
  CHECK(gpu::resident_ids(r, 1).size() == 2);
  CHECK(gpu::resident_ids(r, 9).empty());
  CHECK(gpu::resident_ids(r, -1).empty());
  CHECK(gpu::resident_mask(gpu::resident_ids(r, 1), 8) == std::vector<std::uint8_t>{1, 0, 0, 1, 0, 0, 0, 0});
}

TEST_CASE("resident experts that do not fit in free GPU memory are refused with the numbers") {
  CHECK_NOTHROW(gpu::require_resident_fits(3, 300, 700, 1000));
  const auto msg = test::error_of([] { gpu::require_resident_fits(3, 301, 700, 1000); });
  INFO(msg);
  CHECK(msg.find("3 resident routed experts need 0 KiB (301 bytes)") != std::string::npos);
  CHECK(msg.find("(1001 bytes) in all, but only 1 KiB (1000 bytes) is free") != std::string::npos);
  CHECK(msg.find("--gpu-experts-budget") != std::string::npos);
}

TEST_CASE("group_by_expert: each expert's pairs in token order, with their weights; -1 and unkept experts skipped") {
  const auto seed = seed_from_device();
  std::mt19937_64 rng(seed);
  for (const std::int64_t tokens : {1, 2, 7, 64}) {
    const std::int64_t k = 3, experts = 10;
    const auto r = random_routing(rng, tokens, k, experts);
    for (const bool masked : {false, true}) {
      const auto keep = masked ? random_mask(rng, experts, 0.4) : std::vector<std::uint8_t>{};
      const auto g = gpu::group_by_expert(r.expert.data(), r.weight.data(), tokens, k, experts, keep);
      INFO("tokens " << tokens << (masked ? ", some experts kept" : ", all kept"));
      REQUIRE(g.start.size() == static_cast<std::size_t>(experts) + 1);
      for (std::int64_t e = 0; e < experts; ++e) {
        std::vector<std::int32_t> rows;  // the naive recount: scan the routing for expert e
        std::vector<float> weights;
        if (keep.empty() || keep[static_cast<std::size_t>(e)])
          for (std::int64_t i = 0; i < tokens * k; ++i)
            if (r.expert[static_cast<std::size_t>(i)] == e) {
              rows.push_back(static_cast<std::int32_t>(i / k));
              weights.push_back(r.weight[static_cast<std::size_t>(i)]);
            }
        const auto b = g.start[static_cast<std::size_t>(e)], n = g.count(static_cast<std::size_t>(e));
        CHECK(std::vector<std::int32_t>(g.rows.begin() + b, g.rows.begin() + b + n) == rows);
        CHECK(std::vector<float>(g.weights.begin() + b, g.weights.begin() + b + n) == weights);
      }
    }
  }

  const std::vector<std::int32_t> ids{2, -1, 0, 2};
  const std::vector<float> w{0.5f, 0.25f, 0.125f, 1.0f};
  const auto g = gpu::group_by_expert(ids.data(), w.data(), 2, 2, 3);
  CHECK(g.pairs() == 3);
  CHECK(g.start == std::vector<std::int64_t>{0, 1, 1, 3});
  CHECK(g.rows == std::vector<std::int32_t>{1, 0, 1});
  CHECK(g.weights == std::vector<float>{0.125f, 0.5f, 1.0f});
  const std::vector<std::int32_t> bad{0, 3};
  CHECK(test::error_of([&] { (void)gpu::group_by_expert(bad.data(), w.data(), 1, 2, 3); }) ==
        "group_by_expert: expert id 3 outside [0, 3)");
  const std::vector<std::uint8_t> short_mask{1, 0};
  CHECK_THROWS_AS((void)gpu::group_by_expert(ids.data(), w.data(), 2, 2, 3, short_mask), std::invalid_argument);
}

TEST_CASE("the split of a routing runs every pair exactly once: resident on the GPU, the rest on the CPU") {
  const auto seed = seed_from_device();
  std::mt19937_64 rng(seed);
  const std::int64_t k = 4, experts = 16;
  for (const double share : {0.0, 0.33, 1.0}) {
    for (const std::int64_t tokens : {1, 5, 40}) {
      INFO("share resident " << share << ", tokens " << tokens);
      const auto r = random_routing(rng, tokens, k, experts);
      const auto resident = random_mask(rng, experts, share);
      const auto gpu_side = gpu::group_by_expert(r.expert.data(), r.weight.data(), tokens, k, experts, resident);
      auto cpu_ids = r.expert;
      const auto cpu_pairs = gpu::hide_resident_pairs(cpu_ids, resident);
      CHECK(cpu_pairs + gpu_side.pairs() == tokens * k);
      // Count each (token, expert) pair where it runs; every one must run once, with its own weight.
      std::vector<int> runs(static_cast<std::size_t>(tokens * experts), 0);
      std::vector<float> weight(runs.size(), 0.0f);
      for (std::int64_t i = 0; i < tokens * k; ++i) {
        const auto id = cpu_ids[static_cast<std::size_t>(i)];
        if (id < 0) {
          CHECK(resident[static_cast<std::size_t>(r.expert[static_cast<std::size_t>(i)])] == 1);
          continue;
        }
        CHECK(resident[static_cast<std::size_t>(id)] == 0);
        const auto at = static_cast<std::size_t>((i / k) * experts + id);
        ++runs[at];
        weight[at] += r.weight[static_cast<std::size_t>(i)];
      }
      for (std::size_t e = 0; e < static_cast<std::size_t>(experts); ++e)
        for (auto p = gpu_side.start[e]; p < gpu_side.start[e + 1]; ++p) {
          CHECK(resident[e] == 1);
          const auto at = static_cast<std::size_t>(gpu_side.rows[static_cast<std::size_t>(p)]) * static_cast<std::size_t>(experts) + e;
          ++runs[at];
          weight[at] += gpu_side.weights[static_cast<std::size_t>(p)];
        }
      for (std::int64_t i = 0; i < tokens * k; ++i) {
        const auto at = static_cast<std::size_t>((i / k) * experts + r.expert[static_cast<std::size_t>(i)]);
        CHECK(runs[at] == 1);
        CHECK(weight[at] == r.weight[static_cast<std::size_t>(i)]);
      }
      CHECK(std::accumulate(runs.begin(), runs.end(), 0) == tokens * k);
    }
  }
}

TEST_CASE("the CPU reference experts skip -1 pairs: the CPU half plus the resident half is the whole layer") {
  const auto seed = seed_from_device();
  std::mt19937_64 rng(seed);
  using D = dims::Dynamic;
  using RefExperts = Experts<D, Placement<CPU>, Quant<Stored>, Isa<Generic>>;
  cpu::ThreadPool pool(2);
  for (const char* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/Q8_0.gguf"}) {
    const auto f = gguf::File::open(test_model(name));
    const auto h = read_hparams(f);
    const int layer = static_cast<int>(h.dense_layers);
    const RefExperts experts(f, h, layer);
    const std::int64_t tokens = 9;
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<std::size_t>(tokens * h.hidden));
    for (auto& v : x) v = normal(rng);
    const auto r = random_routing(rng, tokens, h.experts_used, h.experts);
    auto resident = random_mask(rng, h.experts, 0.33);
    resident[0] = 1;  // at least one expert on each side
    resident[1] = 0;

    std::vector<float> whole(x.size(), 0.0f), cpu_half(x.size(), 0.0f), gpu_half(x.size(), 0.0f);
    experts.forward(pool, x.data(), r, whole.data());
    auto cpu_routing = r;
    gpu::hide_resident_pairs(cpu_routing.expert, resident);
    experts.forward(pool, x.data(), cpu_routing, cpu_half.data());
    auto gpu_routing = r;  // the complement: only the resident pairs
    std::vector<std::uint8_t> not_resident(resident.size());
    for (std::size_t e = 0; e < resident.size(); ++e) not_resident[e] = resident[e] ? 0 : 1;
    gpu::hide_resident_pairs(gpu_routing.expert, not_resident);
    experts.forward(pool, x.data(), gpu_routing, gpu_half.data());

    double err = 0, norm = 0;
    for (std::size_t i = 0; i < whole.size(); ++i) {
      const double d = static_cast<double>(cpu_half[i]) + gpu_half[i] - whole[i];
      err += d * d;
      norm += static_cast<double>(whole[i]) * whole[i];
    }
    const double rel = std::sqrt(err / norm);
    MESSAGE(std::string(name) << " blk." << layer << ": " << std::count(resident.begin(), resident.end(), 1) << " of "
                 << h.experts << " experts resident, CPU half + resident half vs whole: rel-L2 " << rel);
    CHECK(rel <= 1e-6);
  }
}

TEST_CASE("plan_routed_experts: the hottest experts in an experts-only budget, as GpuOptions::resident_experts") {
  const auto seed = seed_from_device();
  std::mt19937_64 rng(seed);
  const auto f = gguf::File::open(test_model("dsv3-tiny/Q4_K_M.gguf"));
  const auto h = read_hparams(f);
  ExpertStats stats(h);
  for (auto l = static_cast<int>(h.dense_layers); l < h.layers; ++l) stats.add(l, random_routing(rng, 50, h.experts_used, h.experts));
  const auto per_expert = routed_expert_bytes(f, h);
  std::uint64_t all = 0;
  for (const auto b : per_expert) all += b * static_cast<std::uint64_t>(h.experts);

  const auto none = plan_routed_experts(f, h, 0, &stats);
  CHECK(none.placed.empty());
  CHECK(gpu::resident_count(none.gpu_experts_by_layer()) == 0);

  const auto every = plan_routed_experts(f, h, all, &stats);
  CHECK(every.placed.size() == static_cast<std::size_t>((h.layers - h.dense_layers) * h.experts));
  CHECK(every.bytes_left() == 0);
  CHECK_NOTHROW(gpu::check_resident_experts(every.gpu_experts_by_layer(), h));

  const auto without_stats = plan_routed_experts(f, h, all, nullptr);
  CHECK(without_stats.placed.empty());
  CHECK(format_routed_experts(without_stats).find("none without router statistics") != std::string::npos);

  const auto budget = all / 3;
  const auto some = plan_routed_experts(f, h, budget, &stats);
  INFO(format_routed_experts(some));
  CHECK(some.routed_gpu_bytes() <= budget);
  CHECK(!some.placed.empty());
  CHECK(some.placed.size() < every.placed.size());
  const auto lists = some.gpu_experts_by_layer();
  REQUIRE(lists.size() == static_cast<std::size_t>(h.layers));
  CHECK_NOTHROW(gpu::check_resident_experts(lists, h));
  CHECK(gpu::resident_count(lists) == static_cast<std::int64_t>(some.placed.size()));
  for (const auto& e : some.placed) {
    const auto& ids = lists[static_cast<std::size_t>(e.layer)];
    CHECK(std::find(ids.begin(), ids.end(), e.expert) != ids.end());
  }
  // The hottest expert is placed first.
  const auto hottest = stats.hottest();
  CHECK(some.placed.front().count == hottest.front().count);

  // hmoe-plan's hint: a budget of exactly a whole-GPU plan's expert bytes picks the same experts again.
  const auto whole_plan = plan_placement(f, h, plan_placement(f, h, ~std::uint64_t{0}, nullptr, 0).gpu_bytes + budget,
                                         &stats, 0);
  CHECK(plan_routed_experts(f, h, whole_plan.routed_gpu_bytes(), &stats).expert_mask == whole_plan.expert_mask);
}

TEST_CASE("parse_bytes reads budgets in binary units") {
  CHECK(parse_bytes("24G") == std::uint64_t{24} << 30);
  CHECK(parse_bytes("1.5G") == std::uint64_t{3} << 29);
  CHECK(parse_bytes("800M") == std::uint64_t{800} << 20);
  CHECK(parse_bytes("800MiB") == std::uint64_t{800} << 20);
  CHECK(parse_bytes("2KB") == 2048u);
  CHECK(parse_bytes("123456") == 123456u);
  CHECK(parse_bytes("0") == 0u);
  CHECK(!parse_bytes(""));
  CHECK(!parse_bytes("G"));
  CHECK(!parse_bytes("-1G"));
  CHECK(!parse_bytes("12Q"));
  CHECK(!parse_bytes("nan"));
  CHECK(!parse_bytes("1e30T"));
}
