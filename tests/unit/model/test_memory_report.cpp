// The memory report: every tensor lands in exactly one group, the groups add up to the file, the KV cache is
// the MLA formula, layouts move the right bytes between GPU and host, and a budget that is too small is refused
// with both numbers before anything is allocated.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <hmoe/model/memory_report.hpp>

#include "../../support/error_of.hpp"

using namespace hmoe;
namespace fs = std::filesystem;

TEST_CASE("tensor names fall into the groups a layout places") {
  CHECK(group_of("token_embd.weight") == TensorGroup::Embedding);
  CHECK(group_of("output.weight") == TensorGroup::OutputHead);
  CHECK(group_of("output_norm.weight") == TensorGroup::OutputHead);
  CHECK(group_of("blk.3.ffn_gate_exps.weight") == TensorGroup::RoutedExperts);
  CHECK(group_of("blk.3.ffn_down_shexp.weight") == TensorGroup::SharedExperts);
  CHECK(group_of("blk.3.ffn_gate_inp.weight") == TensorGroup::Router);
  CHECK(group_of("blk.3.exp_probs_b.bias") == TensorGroup::Router);
  CHECK(group_of("blk.0.ffn_up.weight") == TensorGroup::DenseFfn);
  CHECK(group_of("blk.3.ffn_norm.weight") == TensorGroup::Attention);
  CHECK(group_of("blk.3.attn_kv_a_mqa.weight") == TensorGroup::Attention);
  CHECK(group_of("blk.3.attn_q_a_norm.weight") == TensorGroup::Attention);
}

TEST_CASE("the report of a real file adds up, and layouts move bytes between GPU and host") {
  for (const char* model : {"dsv3-tiny/Q4_K_M.gguf", "dsv2lite-tiny/BF16.gguf"}) {
    INFO(model);
    const auto f = gguf::File::open(fs::path(HMOE_TEST_DATA) / "models" / model);
    const auto h = read_hparams(f);
    std::uint64_t file_bytes = 0;
    for (const auto& t : f.tensors()) file_bytes += t.n_bytes();

    const auto cpu = memory_report(f, h, LayoutPlan::all_cpu(), 4096);
    std::uint64_t sum = 0, tensors = 0;
    for (std::size_t g = 0; g < tensor_group_count; ++g) sum += cpu.group_bytes[g], tensors += cpu.group_tensors[g];
    CHECK(sum == file_bytes);
    CHECK(tensors == f.tensors().size());
    const auto moe_layers = static_cast<std::uint64_t>(h.layers - h.dense_layers);
    CHECK(cpu.group_tensors[static_cast<std::size_t>(TensorGroup::RoutedExperts)] == 3 * moe_layers);
    CHECK(cpu.kv_bytes == static_cast<std::uint64_t>(h.layers) * 4096 * (h.kv_lora_rank + h.qk_rope) * 4);
    CHECK(cpu.gpu_bytes == 0);
    CHECK(cpu.host_bytes == file_bytes + cpu.kv_bytes);

    const auto hybrid = memory_report(f, h, LayoutPlan::hybrid(), 4096);
    const auto routed = cpu.group_bytes[static_cast<std::size_t>(TensorGroup::RoutedExperts)];
    CHECK(hybrid.host_bytes == routed);
    CHECK(hybrid.kv_bytes == cpu.kv_bytes / 2);  // bf16 on the GPU
    CHECK(hybrid.gpu_bytes == file_bytes - routed + hybrid.kv_bytes);

    const auto text = format(hybrid, LayoutPlan::hybrid());
    CHECK(text.find("routed experts    host") != std::string::npos);
    CHECK(text.find("KV cache (4096 tokens) GPU") != std::string::npos);
  }
}

TEST_CASE("sizes print in the largest fitting unit") {
  CHECK(bytes_text(3ull << 30) == "3.00 GiB");
  CHECK(bytes_text(45ull << 20) == "45.0 MiB");
  CHECK(bytes_text(789ull << 10) == "789 KiB");
}

TEST_CASE("a layout over budget is refused with both numbers") {
  const auto f = gguf::File::open(fs::path(HMOE_TEST_DATA) / "models" / "dsv3-tiny" / "Q4_K_M.gguf");
  const auto h = read_hparams(f);
  const auto r = memory_report(f, h, LayoutPlan::all_gpu(), 1 << 20);
  const auto err = test::error_of([&] { require_fits(r, r.gpu_bytes / 2, ~0ull, "dsv3-tiny all-GPU"); });
  CHECK(err.find("dsv3-tiny all-GPU needs " + bytes_text(r.gpu_bytes) + " of GPU memory") != std::string::npos);
  CHECK(err.find("the budget is " + bytes_text(r.gpu_bytes / 2)) != std::string::npos);
  CHECK(test::error_of([&] { require_fits(r, r.gpu_bytes - 1, ~0ull, "one byte short"); }) != "(no exception)");
  CHECK(err.find("1048576 tokens") != std::string::npos);
  CHECK(test::error_of([&] { require_fits(r, r.gpu_bytes, ~0ull, "fits"); }) == "(no exception)");
  const auto cpu = memory_report(f, h, LayoutPlan::all_cpu(), 64);
  CHECK(test::error_of([&] { require_fits(cpu, 0, cpu.host_bytes / 2, "tight host"); }).find("of host memory") !=
        std::string::npos);
}
