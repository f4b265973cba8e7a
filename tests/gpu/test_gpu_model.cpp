// Whole models on the GPU: the hybrid layout (routed experts on the CPU) and the all-GPU layout, against the CPU
// f32 reference model on the same file and against HF float64 logits of that file.
//
// Exact configuration (f32 KV cache, f32 activations): the GPU does the reference's arithmetic with other
// summation orders, so logits must match the reference to rel-L2 ≤ 1e-4 per position (f32 rounding through a few
// layers is ~1e-6; the bound leaves room for a near-tied router choice to flip nowhere, which would show as 1e-1)
// and HF to ≤ 1e-3 (issue 6's target). Fast configuration (bf16 paged cache and bf16 prefill GEMMs, 512 + 64 models
// only): at least as close to HF as llama.cpp is on the same file (mean KL, top-1 with one position of slack).
// Each file runs as one prefill, token by token (decode), and in chunks (GEMM and GEMV paths mixed).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <hmoe/gpu.hpp>
#include <hmoe/pipeline/trace.hpp>
#include <span>
#include <string>
#include <vector>

#include "model_runs.hpp"

#include "../support/closeness.hpp"
#include "../unit/model/logits_compare.hpp"

namespace fs = std::filesystem;
using namespace hmoe;

namespace {

using test::Mode;
using test::name_of;
using test::run;


fs::path hf_logits(const fs::path& file) {
  const auto stem = file.stem().string();
  return file.parent_path() / ("hf-" + stem.substr(0, stem.find("-legacy")) + ".f32");
}

/// The exact GPU configuration against the CPU reference and HF.
template <class Model>
void check_exact(const fs::path& file, const std::string& layout, gpu::GpuOptions options = {}) {
  const auto tokens = test::read_meta_tokens(file.parent_path() / "meta.json");
  const auto hf = test::read_f32(hf_logits(file));
  cpu::ThreadPool pool(4);
  const auto reference = ReferenceModel<>::load(gguf::File::open(file));
  auto ref_cache = reference.make_cache(static_cast<std::int64_t>(tokens.size()));
  const auto want = reference.forward(pool, tokens, ref_cache);
  options.max_batch_tokens = 40;  // so the prefill of a 64-token file runs in two chunks
  // Decode steps three ways where the layout allows graphs (the all-GPU one runs them as launches): the whole
  // step as one graph (every mode), per-layer graphs, plain launches (decode again).
  enum class Path { Graph, LayerGraphs, Launches };
  for (const auto path : {Path::Graph, Path::LayerGraphs, Path::Launches}) {
    options.cuda_graph = path == Path::Graph;
    options.layer_graphs = path == Path::LayerGraphs;
    const auto model = Model::load(gguf::File::open(file), options);
    const auto vocab = model.hparams().vocab;
    const char* how = path == Path::Graph ? " (graph)" : path == Path::LayerGraphs ? " (layer graphs)" : " (launches)";
    for (const auto mode : {Mode::Prefill, Mode::Decode, Mode::Chunked}) {
      if (path != Path::Graph && mode != Mode::Decode) continue;
      const auto got = run(model, pool, tokens, mode);
      REQUIRE(got.size() == want.size());
      const auto vs_ref = test::compare_logits(got, want, vocab);
      const auto vs_hf = test::compare_logits(got, hf, vocab);
      MESSAGE(layout << " " << file.parent_path().filename().string() << "/" << file.filename().string() << " "
                     << name_of(mode) << std::string(mode == Mode::Decode ? how : "")
                     << ": vs CPU reference worst rel-L2 " << vs_ref.worst_rel_l2 << " (top-1 flips "
                     << vs_ref.argmax_mismatches << "); vs HF worst rel-L2 " << vs_hf.worst_rel_l2);
      CHECK(vs_ref.worst_rel_l2 <= 1e-4);
      CHECK(vs_ref.argmax_mismatches == 0);
      CHECK(vs_hf.worst_rel_l2 <= 1e-3);
    }
  }
}

/// The fast configuration against HF, next to llama.cpp's figures for the same file.
template <class Model>
void check_fast(const fs::path& file, const std::string& layout) {
  const auto tokens = test::read_meta_tokens(file.parent_path() / "meta.json");
  const auto hf = test::read_f32(hf_logits(file));
  cpu::ThreadPool pool(4);
  gpu::GpuOptions options;
  options.kv = gpu::KvFormat::BF16;
  options.precision = cuda::Precision::BF16;
  options.max_batch_tokens = 40;
  const auto model = Model::load(gguf::File::open(file), options);
  const auto vocab = model.hparams().vocab;
  const auto llama = test::llama_cpp_closeness(file, hf, vocab);
  for (const auto mode : {Mode::Prefill, Mode::Decode, Mode::Chunked}) {
    const auto ours = test::closeness(run(model, pool, tokens, mode), hf, vocab);
    MESSAGE(layout << " bf16 " << file.parent_path().filename().string() << "/" << file.filename().string() << " "
                   << name_of(mode) << ": mean KL " << ours.kl << ", top-1 " << ours.top1
                   << (llama ? "; llama.cpp: mean KL " + std::to_string(llama->kl) + ", top-1 " +
                                   std::to_string(llama->top1)
                             : std::string("; llama.cpp figures not found")));
    REQUIRE(llama);
    CHECK(ours.kl <= llama->kl);
    CHECK(ours.top1 >= llama->top1 - 1.0 / static_cast<double>(tokens.size()) - 1e-9);
  }
}

const fs::path repo_models = fs::path(HMOE_TEST_DATA) / "models";
const fs::path shared_fixtures = fs::path(HMOE_SHARED_DATA) / "fixtures";

}  // namespace

TEST_CASE("hybrid and all-GPU layouts equal the CPU reference on the repo's test models (f32 cache)") {
  const auto files = test::model_files(repo_models);
  REQUIRE(!files.empty());
  for (const auto& f : files) {
    check_exact<HybridModel<Generic>>(f, "hybrid(reference experts)");
    check_exact<GpuModel<>>(f, "all-GPU");
  }
}

TEST_CASE("hybrid and all-GPU layouts on the shared 512+64 fixtures: exact and fast configurations") {
  const auto files = test::model_files(shared_fixtures);
  if (files.empty()) {
    MESSAGE("skipped: no fixtures under " << shared_fixtures.string());
    return;
  }
  for (const auto& f : files) {
    check_exact<HybridModel<Generic>>(f, "hybrid(reference experts)");
    check_exact<GpuModel<>>(f, "all-GPU");
    check_fast<GpuModel<>>(f, "all-GPU");
    if (AMX::available()) check_fast<HybridModel<AMX>>(f, "hybrid(AMX experts)");
    else MESSAGE("hybrid(AMX experts) skipped: this CPU has no AMX");
  }
}

TEST_CASE("every pipeline mode gives the reference's logits, micro-batched prompts included") {
  // Micro-batches of 8+ tokens here (the default floor of 64 would never split these 64-token files): a 40-token
  // chunk runs as 4 coroutines whose attention, experts and copies interleave on one stream.
  gpu::GpuOptions options;
  options.min_micro_batch = 8;
  using Sequential1 = HybridModel<Generic, Stored, Stored, dims::Dynamic, Pipeline<Sequential>>;
  using Overlap1 = HybridModel<Generic, Stored, Stored, dims::Dynamic, Pipeline<CpuGpuOverlap<1>>>;
  using Overlap4 = HybridModel<Generic, Stored, Stored, dims::Dynamic, Pipeline<CpuGpuOverlap<4>>>;
  for (const auto* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/Q8_0.gguf"}) {
    const auto f = repo_models / name;
    check_exact<Sequential1>(f, "hybrid(reference experts) Pipeline<Sequential>", options);
    check_exact<Overlap1>(f, "hybrid(reference experts) Pipeline<CpuGpuOverlap<1>>", options);
    check_exact<Overlap4>(f, "hybrid(reference experts) Pipeline<CpuGpuOverlap<4>>", options);
    options.micro_batches = 3;  // the run-time count, below the policy's
    check_exact<Overlap4>(f, "hybrid(reference experts) Pipeline<CpuGpuOverlap<4>>, 3 micro-batches", options);
    options.micro_batches = 0;
  }
}

TEST_CASE("hybrid prompts with the routed experts offloaded to the GPU give the reference's logits") {
  // expert_offload_min_tokens = 8: every prompt chunk here (40, 24 and 19 tokens) stages each layer's expert
  // tensors into the two GPU slots and runs them there; decode steps (1 token) keep them on the CPU.
  gpu::GpuOptions options;
  options.expert_offload_min_tokens = 8;
  for (const auto* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv3-tiny/Q8_0.gguf", "dsv2lite-tiny/Q4_K_M.gguf",
                           "dsv2lite-tiny/BF16.gguf"})
    check_exact<HybridModel<Generic>>(repo_models / name, "hybrid(experts offloaded for prompts)", options);
  if (const auto f = shared_fixtures / "dsv3-mini" / "Q4_K_M.gguf"; fs::exists(f)) {
    check_exact<HybridModel<Generic>>(f, "hybrid(experts offloaded for prompts)", options);
    if (AMX::available()) {
      options.kv = gpu::KvFormat::BF16;
      options.precision = cuda::Precision::BF16;
      const auto model = HybridModel<AMX>::load(gguf::File::open(f), options);
      const auto tokens = test::read_meta_tokens(f.parent_path() / "meta.json");
      const auto hf = test::read_f32(hf_logits(f));
      const auto llama = test::llama_cpp_closeness(f, hf, model.hparams().vocab);
      cpu::ThreadPool pool(4);
      auto cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
      const auto ours = test::closeness(model.forward(pool, tokens, cache), hf, model.hparams().vocab);
      MESSAGE("hybrid(AMX, experts offloaded for prompts) bf16 dsv3-mini/Q4_K_M prefill: mean KL " << ours.kl
              << ", top-1 " << ours.top1);
      REQUIRE(llama);
      CHECK(ours.kl <= llama->kl);
    }
  }
}

TEST_CASE("fewer routed experts per token: the GPU layouts equal the CPU reference run with the same override") {
  for (const auto* name : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/Q8_0.gguf"}) {
    const auto file = repo_models / name;
    const auto tokens = test::read_meta_tokens(file.parent_path() / "meta.json");
    const auto trained = read_hparams(gguf::File::open(file)).experts_used;
    REQUIRE(trained >= 2);
    const ModelOverrides fewer{.experts_per_token = trained - 1};
    cpu::ThreadPool pool(4);
    const auto reference = ReferenceModel<>::load(gguf::File::open(file), fewer);
    auto ref_cache = reference.make_cache(static_cast<std::int64_t>(tokens.size()));
    const auto want = reference.forward(pool, tokens, ref_cache);
    auto full_cache = reference.make_cache(static_cast<std::int64_t>(tokens.size()));
    const auto full = ReferenceModel<>::load(gguf::File::open(file)).forward(pool, tokens, full_cache);
    gpu::GpuOptions options;
    options.overrides = fewer;
    auto check = [&](const auto& model, const std::string& layout) {
      CHECK(model.hparams().experts_used == trained - 1);
      auto cache = model.make_cache(static_cast<std::int64_t>(tokens.size()));
      const auto got = model.forward(pool, tokens, cache);
      const auto vocab = model.hparams().vocab;
      const auto vs_ref = test::compare_logits(got, want, vocab);
      const auto vs_full = test::compare_logits(got, full, vocab);
      MESSAGE(layout << " " << name << " with " << trained - 1 << " of " << trained
                     << " experts: vs the CPU reference with the same override worst rel-L2 " << vs_ref.worst_rel_l2
                     << "; vs all experts worst rel-L2 " << vs_full.worst_rel_l2);
      CHECK(vs_ref.worst_rel_l2 <= 1e-4);
      CHECK(vs_full.worst_rel_l2 > 1e-3);  // the override really took effect
    };
    check(HybridModel<Generic>::load(gguf::File::open(file), options), "hybrid(reference experts)");
    check(GpuModel<>::load(gguf::File::open(file), options), "all-GPU");
  }
}

TEST_CASE("a trace records every block of every micro-batch on the GPU and CPU tracks") {
  const auto file = repo_models / "dsv3-tiny/Q4_K_M.gguf";
  const auto tokens = test::read_meta_tokens(file.parent_path() / "meta.json");
  gpu::GpuOptions options;
  options.min_micro_batch = 16;  // 64 tokens → 2 micro-batches of 32
  options.micro_batches = 2;     // the default pipeline runs prompts as one
  const auto model = HybridModel<Generic>::load(gguf::File::open(file), options);
  REQUIRE(model.micro_batches(64) == 2);
  const auto& h = model.hparams();
  cpu::ThreadPool pool(2);
  pipeline::Trace trace;
  model.set_trace(&trace);
  auto cache = model.make_cache(65);
  (void)model.forward(pool, tokens, cache, Logits::Last);
  model.set_trace(nullptr);
  const auto path = fs::temp_directory_path() / "hmoe-trace-test.json";
  trace.write(path.string());
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto count = [&](const std::string& what) {
    std::size_t c = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++c;
    return static_cast<std::int64_t>(c);
  };
  const auto moe_layers = h.layers - h.dense_layers;
  MESSAGE("trace: " << trace.size() << " spans, " << text.size() << " bytes");
  CHECK(count("\"name\":\"routed experts L") == 2 * moe_layers);  // per MoE layer and micro-batch
  CHECK(count("\"name\":\"attention L") == 2 * moe_layers);
  CHECK(count("\"name\":\"block L") == 2 * h.dense_layers);
  CHECK(count("\"ph\":\"X\"") == static_cast<std::int64_t>(trace.size()));
  CHECK(text.find("nan") == std::string::npos);
  fs::remove(path);

  // A decode step runs the layer graphs: per MoE layer one span for the graph (launch to routing copy) and one
  // for the CPU experts, then the head's graph.
  pipeline::Trace decode_trace;
  model.set_trace(&decode_trace);
  (void)model.forward(pool, std::span(tokens).subspan(0, 1), cache, Logits::Last);
  model.set_trace(nullptr);
  CHECK(decode_trace.size() == static_cast<std::size_t>(2 * moe_layers + 1));
}

TEST_CASE("a bf16 paged cache is refused for a model whose MLA shape the tile kernels do not take") {
  const auto file = repo_models / "dsv3-tiny" / "Q8_0.gguf";
  gpu::GpuOptions options;
  options.kv = gpu::KvFormat::BF16;
  try {
    (void)GpuModel<>::load(gguf::File::open(file), options);
    FAIL("load accepted a bf16 cache for kv_lora_rank 128");
  } catch (const ModelError& e) {
    const std::string what = e.what();
    CHECK(what.find("kv_lora_rank 512") != std::string::npos);
    CHECK(what.find("Q8_0.gguf") != std::string::npos);
  }
}
