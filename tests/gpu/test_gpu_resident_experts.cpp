// The hybrid layout with routed experts resident on the GPU (GpuOptions::resident_experts): the pairs routed to
// them run on the GPU, the rest on the CPU, and the logits equal the CPU reference model's within the bound the
// hybrid tests use (test_gpu_model.cpp: rel-L2 ≤ 1e-4 per position, no top-1 flip) — for a prompt (two chunks
// of 40 + 24 tokens), token-by-token decode (64 steps) and chunks of 19 — with a random third of each layer's
// experts resident (the seed is printed: rerun with HMOE_RESIDENT_SEED=N), all of them, none, a placement
// plan's choice, every pipeline mode and with prompts offloaded; and the load refuses bad lists with messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <hmoe/gpu.hpp>
#include <hmoe/model/expert_stats.hpp>
#include <hmoe/model/placement_plan.hpp>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "../support/error_of.hpp"
#include "model_runs.hpp"
#include "../unit/model/logits_compare.hpp"

namespace fs = std::filesystem;
using namespace hmoe;

namespace {

const fs::path repo_models = fs::path(HMOE_TEST_DATA) / "models";

using test::Mode;
using test::name_of;
using test::run;

std::uint64_t test_seed() {
  if (const char* s = std::getenv("HMOE_RESIDENT_SEED")) return std::stoull(s);
  return std::random_device{}();
}

/// Each MoE layer: a random third of its experts (at least one), ascending.
gpu::ResidentExperts random_third(const DeepSeekHParams& h, std::mt19937_64& rng) {
  gpu::ResidentExperts r(static_cast<std::size_t>(h.layers));
  for (auto l = h.dense_layers; l < h.layers; ++l) {
    std::vector<std::int32_t> ids(static_cast<std::size_t>(h.experts));
    for (std::size_t e = 0; e < ids.size(); ++e) ids[e] = static_cast<std::int32_t>(e);
    std::shuffle(ids.begin(), ids.end(), rng);
    ids.resize(static_cast<std::size_t>(std::max<std::int64_t>(1, h.experts / 3)));
    std::sort(ids.begin(), ids.end());
    r[static_cast<std::size_t>(l)] = ids;
  }
  return r;
}

gpu::ResidentExperts every_expert(const DeepSeekHParams& h) {
  gpu::ResidentExperts r(static_cast<std::size_t>(h.layers));
  for (auto l = h.dense_layers; l < h.layers; ++l)
    for (std::int32_t e = 0; e < h.experts; ++e) r[static_cast<std::size_t>(l)].push_back(e);
  return r;
}

/// "blk.1 {0 4} blk.2 {3 5}" for the messages.
std::string describe(const gpu::ResidentExperts& r) {
  std::ostringstream out;
  for (std::size_t l = 0; l < r.size(); ++l) {
    if (r[l].empty()) continue;
    out << "blk." << l << " {";
    for (std::size_t i = 0; i < r[l].size(); ++i) out << (i ? " " : "") << r[l][i];
    out << "} ";
  }
  const auto s = out.str();
  return s.empty() ? "none" : s;
}

/// The CPU reference's logits for the file's test tokens (one prefill).
struct Reference {
  std::vector<std::int32_t> tokens;
  std::vector<float> logits;
  DeepSeekHParams h;
};
Reference reference_of(const fs::path& file, cpu::ThreadPool& pool) {
  Reference r;
  r.tokens = test::read_meta_tokens(file.parent_path() / "meta.json");
  const auto model = ReferenceModel<>::load(gguf::File::open(file));
  r.h = model.hparams();
  auto cache = model.make_cache(static_cast<std::int64_t>(r.tokens.size()));
  r.logits = model.forward(pool, r.tokens, cache);
  return r;
}

std::string label(const fs::path& file) { return file.parent_path().filename().string() + "/" + file.filename().string(); }

/// Loads `Model` with `resident` and checks every mode against the reference's logits.
template <class Model>
void check_equal(const fs::path& file, const Reference& ref, cpu::ThreadPool& pool, const std::string& what,
                 const gpu::ResidentExperts& resident, gpu::GpuOptions options = {}) {
  options.max_batch_tokens = 40;  // the 64-token prompt runs as two chunks
  options.cuda_graph = false;
  options.resident_experts = resident;
  const auto model = Model::load(gguf::File::open(file), options);
  const auto vocab = model.hparams().vocab;
  for (const auto mode : {Mode::Prefill, Mode::Decode, Mode::Chunked}) {
    const auto got = run(model, pool, ref.tokens, mode);
    REQUIRE(got.size() == ref.logits.size());
    const auto a = test::compare_logits(got, ref.logits, vocab);
    MESSAGE(what << " " << label(file) << " " << name_of(mode) << ", " << gpu::resident_count(resident)
                 << " resident (" << describe(resident) << "): vs CPU reference worst rel-L2 " << a.worst_rel_l2
                 << " at position " << a.worst_position << ", mean " << a.mean_rel_l2 << ", top-1 flips "
                 << a.argmax_mismatches);
    CHECK(a.worst_rel_l2 <= 1e-4);
    CHECK(a.argmax_mismatches == 0);
  }
}

const char* const files[] = {"dsv3-tiny/Q4_K_M.gguf", "dsv3-tiny/Q8_0.gguf", "dsv2lite-tiny/Q4_K_M.gguf",
                             "dsv2lite-tiny/BF16.gguf"};

}  // namespace

TEST_CASE("hybrid with a random third of the routed experts resident on the GPU equals the CPU reference") {
  const auto seed = test_seed();
  MESSAGE("seed " << seed << " (HMOE_RESIDENT_SEED=" << seed << " reruns these choices)");
  std::mt19937_64 rng(seed);
  cpu::ThreadPool pool(4);
  for (const auto* name : files) {
    const auto file = repo_models / name;
    const auto ref = reference_of(file, pool);
    check_equal<HybridModel<Generic>>(file, ref, pool, "hybrid(reference experts)", random_third(ref.h, rng));
  }
}

TEST_CASE("hybrid with every routed expert resident, and with none, equals the CPU reference") {
  cpu::ThreadPool pool(4);
  for (const auto* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/Q8_0.gguf"}) {
    const auto file = repo_models / name;
    const auto ref = reference_of(file, pool);
    check_equal<HybridModel<Generic>>(file, ref, pool, "hybrid(all resident)", every_expert(ref.h));
    check_equal<HybridModel<Generic>>(file, ref, pool, "hybrid(none resident, no lists)", {});
    check_equal<HybridModel<Generic>>(file, ref, pool, "hybrid(none resident, empty lists)",
                                      gpu::ResidentExperts(static_cast<std::size_t>(ref.h.layers)));
  }
}

TEST_CASE("resident experts in every pipeline mode, and beside prompts whose experts are offloaded") {
  const auto seed = test_seed();
  MESSAGE("seed " << seed << " (HMOE_RESIDENT_SEED=" << seed << " reruns these choices)");
  std::mt19937_64 rng(seed);
  cpu::ThreadPool pool(4);
  using Sequential1 = HybridModel<Generic, Stored, Stored, dims::Dynamic, Pipeline<Sequential>>;
  using Overlap4 = HybridModel<Generic, Stored, Stored, dims::Dynamic, Pipeline<CpuGpuOverlap<4>>>;
  for (const auto* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/Q8_0.gguf"}) {
    const auto file = repo_models / name;
    const auto ref = reference_of(file, pool);
    const auto resident = random_third(ref.h, rng);
    check_equal<Sequential1>(file, ref, pool, "hybrid Pipeline<Sequential>", resident);
    gpu::GpuOptions lanes;
    lanes.min_micro_batch = 8;  // 40-token chunks run as 4 micro-batches, each staging its own resident rows
    check_equal<Overlap4>(file, ref, pool, "hybrid Pipeline<CpuGpuOverlap<4>>", resident, lanes);
    gpu::GpuOptions offload;
    offload.expert_offload_min_tokens = 8;  // prompt chunks stage whole layers; decode steps use the resident ones
    check_equal<HybridModel<Generic>>(file, ref, pool, "hybrid(prompts offloaded)", resident, offload);
  }
}

TEST_CASE("a placement plan's experts, from router statistics of the CPU model, run resident in the hybrid layout") {
  cpu::ThreadPool pool(4);
  const auto file = repo_models / "dsv3-tiny/Q4_K_M.gguf";
  const auto ref = reference_of(file, pool);
  ExpertStats stats(ref.h);
  {
    const auto cpu_model = ReferenceModel<>::load(gguf::File::open(file));
    auto cache = cpu_model.make_cache(static_cast<std::int64_t>(ref.tokens.size()));
    ObserveRouting observe(stats);
    cpu_model.forward(pool, ref.tokens, cache);
  }
  const auto f = gguf::File::open(file);
  std::uint64_t all = 0;
  for (const auto b : routed_expert_bytes(f, ref.h)) all += b * static_cast<std::uint64_t>(ref.h.experts);
  const auto plan = plan_routed_experts(f, ref.h, all / 3, &stats);
  MESSAGE(format_routed_experts(plan));
  REQUIRE(!plan.placed.empty());
  check_equal<HybridModel<Generic>>(file, ref, pool, "hybrid(planned)", plan.gpu_experts_by_layer());

  // The model's device bytes grow by exactly the plan's expert bytes.
  gpu::GpuOptions options;
  const auto without = HybridModel<Generic>::load(gguf::File::open(file), options).gpu_weight_bytes();
  options.resident_experts = plan.gpu_experts_by_layer();
  const auto with = HybridModel<Generic>::load(gguf::File::open(file), options).gpu_weight_bytes();
  MESSAGE("GPU weight bytes: " << without << " without resident experts, " << with << " with the plan's ("
                               << plan.routed_gpu_bytes() << " planned)");
  CHECK(with - without == plan.routed_gpu_bytes());
}

TEST_CASE("resident experts with the CPU's AVX-512 / AMX kernels stay as close to the reference as without") {
  // The fused CPU kernels quantize activations, so they are compared against their own all-CPU-experts error:
  // the resident pairs run in f32 on the GPU, which must not make the logits worse.
  const auto seed = test_seed();
  MESSAGE("seed " << seed << " (HMOE_RESIDENT_SEED=" << seed << " reruns these choices)");
  std::mt19937_64 rng(seed);
  cpu::ThreadPool pool(4);
  auto check = [&]<class Model>(const char* kernels) {
    for (const auto* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/Q8_0.gguf"}) {
      const auto file = repo_models / name;
      const auto ref = reference_of(file, pool);
      gpu::GpuOptions options;
      options.max_batch_tokens = 40;
      const auto none = Model::load(gguf::File::open(file), options);
      options.resident_experts = random_third(ref.h, rng);
      const auto third = Model::load(gguf::File::open(file), options);
      for (const auto mode : {Mode::Prefill, Mode::Decode}) {
        const auto base = test::compare_logits(run(none, pool, ref.tokens, mode), ref.logits, ref.h.vocab);
        const auto got = test::compare_logits(run(third, pool, ref.tokens, mode), ref.logits, ref.h.vocab);
        MESSAGE("hybrid(" << kernels << ") " << label(file) << " " << name_of(mode) << " vs CPU reference: none "
                          << "resident worst rel-L2 " << base.worst_rel_l2 << " (top-1 flips " << base.argmax_mismatches
                          << "), a third resident (" << describe(options.resident_experts) << ") " << got.worst_rel_l2
                          << " (top-1 flips " << got.argmax_mismatches << ")");
        CHECK(got.worst_rel_l2 <= 2 * base.worst_rel_l2 + 1e-4);
      }
    }
  };
  if (AMX::available()) check.operator()<HybridModel<AMX>>("AMX experts");
  else MESSAGE("AMX experts skipped: this CPU has no AMX");
  if (AVX512::available()) check.operator()<HybridModel<AVX512>>("AVX-512 experts");
  else MESSAGE("AVX-512 experts skipped: this CPU has no AVX-512");
}

TEST_CASE("bad resident expert lists are refused at load with messages") {
  const auto file = repo_models / "dsv3-tiny/Q4_K_M.gguf";
  const auto h = read_hparams(gguf::File::open(file));
  REQUIRE(h.dense_layers >= 1);
  const auto moe = static_cast<std::size_t>(h.dense_layers);
  auto error = [&]<class Model = HybridModel<Generic>>(gpu::ResidentExperts r, bool graph = false) {
    gpu::GpuOptions options;
    options.resident_experts = std::move(r);
    options.cuda_graph = graph;
    return test::error_of([&] { (void)Model::load(gguf::File::open(file), options); });
  };
  gpu::ResidentExperts r(static_cast<std::size_t>(h.layers));
  r[moe] = {0, static_cast<std::int32_t>(h.experts)};
  const auto out_of_range = error(r);
  r[moe] = {1, 1};
  const auto twice = error(r);
  r[moe] = {};
  r[0] = {0};
  const auto dense = error(r);
  r[0] = {};
  r.resize(static_cast<std::size_t>(h.layers) + 1);
  r.back() = {0};
  const auto past_end = error(r);
  r.back() = {};
  r[moe] = {0};
  const auto graph = error(r, true);
  const auto all_gpu = error.operator()<GpuModel<>>(r);
  r[moe] = {};
  const auto fine = error(r);
  MESSAGE("out of range: " << out_of_range << "\ntwice: " << twice << "\ndense: " << dense << "\npast the end: "
                           << past_end << "\nCUDA graph: " << graph << "\nall-GPU layout: " << all_gpu);
  CHECK(out_of_range.find("expert id " + std::to_string(h.experts) + " outside [0, " + std::to_string(h.experts) + ")") !=
        std::string::npos);
  CHECK(twice.find("expert id 1 given twice") != std::string::npos);
  CHECK(dense.find("a dense layer") != std::string::npos);
  CHECK(past_end.find("the model has " + std::to_string(h.layers) + " layers") != std::string::npos);
  CHECK(graph.find("cannot run in a CUDA graph") != std::string::npos);
  CHECK(all_gpu.find("is for the hybrid layout") != std::string::npos);
  CHECK(fine == "(no exception)");
}
