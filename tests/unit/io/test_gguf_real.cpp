// The real llama.cpp conversions of the two mini DeepSeek models, when the shared data is present.
#include <doctest/doctest.h>

#include <map>

#include "gguf_test_support.hpp"

using namespace hmoe;
using namespace hmoe::gguf;
using namespace hmoe::gguf::test;

namespace {

// Facts read from each file with gguf-py's GGUFReader (gguf 0.19):
//   r = GGUFReader(path); len(r.tensors); len(r.fields) - 3 (its GGUF.* pseudo-fields); r.data_offset;
//   r.fields["general.file_type"].contents(); the last tensor's name/type/shape/data_offset - r.data_offset;
//   FNV-1a 64 of the bytes of the last tensor and of blk.0.attn_norm.weight; and a Counter of tensor types.
struct Known {
  const char* file;
  std::size_t n_tensors, n_kv;
  std::uint64_t data_offset;
  std::uint32_t file_type;
  const char* last_name;
  GgmlType last_type;
  std::array<std::uint64_t, 2> last_ne;
  std::uint64_t last_offset, last_fnv, norm_fnv;
  std::map<GgmlType, int> types;
};

using enum GgmlType;
const std::array<Known, 6> known{{
    {"dsv3-mini/BF16.gguf", 52, 48, 62976, 32, "output_norm.weight", F32, {256, 1}, 14023744,
     0x2f2f495cc707648eull, 0x1c672b4d2371b4e3ull, {{BF16, 35}, {F32, 17}}},
    {"dsv3-mini/Q8_0.gguf", 52, 48, 62976, 7, "blk.2.ffn_up_shexp.weight", Q8_0, {256, 256}, 7396416,
     0xef678e0825640adcull, 0x1c672b4d2371b4e3ull, {{Q8_0, 35}, {F32, 17}}},
    {"dsv3-mini/Q4_K_M.gguf", 52, 48, 62976, 15, "blk.2.ffn_up_shexp.weight", Q4_K, {256, 256}, 4292160,
     0x645777a87909ea41ull, 0x1c672b4d2371b4e3ull, {{Q6_K, 3}, {F32, 17}, {Q4_K, 26}, {Q5_0, 3}, {Q5_K, 3}}},
    {"dsv2lite-mini/BF16.gguf", 44, 44, 62304, 32, "output_norm.weight", F32, {256, 1}, 14413824,
     0x13bb7f0bc08c7c4bull, 0x8f8443824290c1ffull, {{BF16, 32}, {F32, 12}}},
    {"dsv2lite-mini/Q8_0.gguf", 44, 44, 62304, 7, "blk.2.ffn_up_shexp.weight", Q8_0, {256, 512}, 7532544,
     0x3f45a3458717d528ull, 0x8f8443824290c1ffull, {{Q8_0, 32}, {F32, 12}}},
    {"dsv2lite-mini/Q4_K_M.gguf", 44, 44, 62304, 15, "blk.2.ffn_up_shexp.weight", Q4_K, {256, 512}, 4379648,
     0x8806d2a6a88f69abull, 0x8f8443824290c1ffull, {{Q6_K, 3}, {F32, 12}, {Q4_K, 23}, {Q5_0, 3}, {Q5_K, 3}}},
}};

}  // namespace

TEST_CASE("the real mini DeepSeek GGUFs made by llama.cpp") {
  const auto root = std::filesystem::path(HMOE_SHARED_DATA) / "fixtures";
  if (!std::filesystem::exists(root)) {
    MESSAGE("skipped: " << root << " is absent, so the real-GGUF checks did not run");
    return;
  }
  for (const Known& k : known) {
    CAPTURE(k.file);
    const File f = File::open(root / k.file);
    CHECK(f.version() == 3);
    CHECK(f.architecture() == "deepseek2");
    CHECK(f.alignment() == 32);
    CHECK(f.metadata().size() == k.n_kv);
    CHECK(f.tensors().size() == k.n_tensors);
    CHECK(f.data_offset() == k.data_offset);
    CHECK(f.get<std::uint32_t>("general.file_type") == k.file_type);
    CHECK(f.get<int>("deepseek2.block_count") == 3);
    CHECK(f.get<int>("deepseek2.expert_count") == 8);
    CHECK(f.at("tokenizer.ggml.tokens").size() == 2048);
    CHECK(f.at("tokenizer.ggml.tokens").array_type() == ValueType::STRING);
    std::map<GgmlType, int> types;
    for (const TensorInfo& t : f.tensors()) ++types[t.type];
    CHECK(types == k.types);
    const TensorInfo& last = f.tensors().back();
    CHECK(last.name == k.last_name);
    CHECK(last.type == k.last_type);
    CHECK(last.ne[0] == k.last_ne[0]);
    CHECK(last.ne[1] == k.last_ne[1]);
    CHECK(last.offset == k.last_offset);
    CHECK(fnv1a64(last.data) == k.last_fnv);
    CHECK(fnv1a64(f.tensor("blk.0.attn_norm.weight").data) == k.norm_fnv);
    CHECK(f.tensors().front().name == "output.weight");
    // What a DeepSeek runner would accept, and the message when a type is missing from that list.
    CHECK_NOTHROW(require_types(f, {F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K, Q5_0}));
    if (k.last_type == Q4_K) CHECK_THROWS_AS(require_types(f, {F32, BF16, Q8_0}), Error);
  }
}
