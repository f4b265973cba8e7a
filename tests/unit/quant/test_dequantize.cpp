/// \file
/// \brief dequantize_row and the per-block decoders against gguf-py's reference dequantization, bit for bit;
/// row_bytes; the supported-type list; error messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "hmoe/quant/dequantize.hpp"

using namespace hmoe;
using namespace hmoe::quant;

namespace {

std::string fixture_name(GgmlType t) { return "dequant_" + std::string(ggml_type_name(t)) + ".bin"; }

void check_values(const std::vector<float>& want, const std::vector<float>& got) {
  REQUIRE(got.size() == want.size());
  const auto i = test::first_mismatch(want, got.data());
  if (i >= 0) {
    FAIL("first mismatch at value " << i << ": want " << test::hex32(bits_of(want[i])) << " (" << want[i] << "), got "
                                    << test::hex32(bits_of(got[i])) << " (" << got[i] << ")");
  }
}

/// Runs the per-block decoder of B over the fixture's blocks.
template <QuantBlock B>
std::vector<float> decode_blocks(const test::Fixture& f) {
  const std::size_t nb = f.bytes.size() / sizeof(B);
  auto out = test::poisoned(nb * B::block_elems);
  for (std::size_t i = 0; i < nb; ++i) {
    B block;
    std::memcpy(&block, f.bytes.data() + i * sizeof(B), sizeof(B));
    dequantize(block, out.data() + i * B::block_elems);
  }
  return out;
}

std::vector<float> decode_blocks(const test::Fixture& f) {
  switch (f.type) {
    case GgmlType::Q4_0: return decode_blocks<BlockQ4_0>(f);
    case GgmlType::Q4_1: return decode_blocks<BlockQ4_1>(f);
    case GgmlType::Q5_0: return decode_blocks<BlockQ5_0>(f);
    case GgmlType::Q5_1: return decode_blocks<BlockQ5_1>(f);
    case GgmlType::Q8_0: return decode_blocks<BlockQ8_0>(f);
    case GgmlType::Q2_K: return decode_blocks<BlockQ2_K>(f);
    case GgmlType::Q3_K: return decode_blocks<BlockQ3_K>(f);
    case GgmlType::Q4_K: return decode_blocks<BlockQ4_K>(f);
    case GgmlType::Q5_K: return decode_blocks<BlockQ5_K>(f);
    case GgmlType::Q6_K: return decode_blocks<BlockQ6_K>(f);
    case GgmlType::Q8_K: return decode_blocks<BlockQ8_K>(f);
    default: return {};
  }
}

template <class F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<nothing thrown>";
}

}  // namespace

TEST_CASE("the dequantizable types are exactly F32, F16, BF16 and the legacy and K quants") {
  const std::vector<GgmlType> want{GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                   GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                                   GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};
  const auto list = dequantizable_types();
  CHECK(std::vector<GgmlType>(list.begin(), list.end()) == want);
  for (const auto& info : ggml_types) {
    CAPTURE(info.name);
    CHECK(can_dequantize(info.type) == (std::find(want.begin(), want.end(), info.type) != want.end()));
  }
  CHECK_FALSE(can_dequantize(static_cast<GgmlType>(4)));
  static_assert(can_dequantize(GgmlType::Q6_K) && !can_dequantize(GgmlType::IQ4_XS));
}

TEST_CASE("dequantize_row is bit-exact with gguf.quants.dequantize for every type") {
  for (GgmlType t : dequantizable_types()) {
    const auto name = fixture_name(t);
    CAPTURE(name);
    const auto f = test::load_fixture(name);
    REQUIRE(f.kind == 0);
    REQUIRE(f.type == t);
    const auto n = static_cast<std::int64_t>(f.values.size());
    REQUIRE(row_bytes(t, n) == f.bytes.size());

    SUBCASE("whole buffer as one row") {
      auto got = test::poisoned(f.values.size());
      dequantize_row(t, f.bytes.data(), got.data(), n);
      check_values(f.values, got);
    }
    SUBCASE("as rows of 2 blocks, at row_bytes offsets, from a misaligned copy") {
      const std::int64_t per_row = 2 * ggml_type_info(t).block_elems;
      REQUIRE(n % per_row == 0);
      std::vector<unsigned char> shifted(f.bytes.size() + 1);
      std::memcpy(shifted.data() + 1, f.bytes.data(), f.bytes.size());
      auto got = test::poisoned(f.values.size());
      for (std::int64_t r = 0; r < n / per_row; ++r)
        dequantize_row(t, shifted.data() + 1 + r * row_bytes(t, per_row), got.data() + r * per_row, per_row);
      check_values(f.values, got);
    }
    SUBCASE("per-block decoders") {
      if (t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16) check_values(f.values, decode_blocks(f));
    }
  }
}

TEST_CASE("the fixtures exercise what they claim") {
  // Non-finite scales (last blocks) give NaN somewhere, zero scales give zeros, and values are not all equal.
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const auto f = test::load_fixture(fixture_name(t));
    CAPTURE(ggml_type_name(t));
    CHECK(std::any_of(f.values.begin(), f.values.end(), [](float v) { return std::isnan(v); }));
    CHECK(std::count(f.values.begin(), f.values.end(), 0.0f) > 0);
    CHECK(std::adjacent_find(f.values.begin(), f.values.end(), std::not_equal_to<>()) != f.values.end());
  }
}

TEST_CASE("row_bytes") {
  CHECK(row_bytes(GgmlType::F32, 10) == 40);
  CHECK(row_bytes(GgmlType::BF16, 7) == 14);
  CHECK(row_bytes(GgmlType::Q4_0, 64) == 36);
  CHECK(row_bytes(GgmlType::Q4_K, 7168) == 28 * 144);
  CHECK(row_bytes(GgmlType::Q8_K, 256) == 292);
  CHECK(row_bytes(GgmlType::IQ2_XXS, 512) == 132);  // geometry is known even where decoding is not
  CHECK(row_bytes(GgmlType::Q6_K, 0) == 0);

  const auto msg = thrown_message([] { (void)row_bytes(GgmlType::Q4_K, 100); });
  CHECK(msg.find("row_bytes") != std::string::npos);
  CHECK(msg.find("Q4_K") != std::string::npos);
  CHECK(msg.find("100") != std::string::npos);
  CHECK(msg.find("256") != std::string::npos);
  CHECK(thrown_message([] { (void)row_bytes(GgmlType::Q8_0, -32); }).find("negative") != std::string::npos);
  CHECK(thrown_message([] { (void)row_bytes(static_cast<GgmlType>(4), 32); }).find("unknown ggml type id 4") !=
        std::string::npos);
}

TEST_CASE("dequantize_row rejects unsupported types and partial blocks by name, writing nothing") {
  std::vector<unsigned char> src(4096, 0x11);
  for (const auto& info : ggml_types) {
    if (can_dequantize(info.type)) continue;
    CAPTURE(info.name);
    auto out = test::poisoned(info.block_elems);
    const auto msg = thrown_message([&] { dequantize_row(info.type, src.data(), out.data(), info.block_elems); });
    CHECK(msg.find("dequantize_row") != std::string::npos);
    CHECK(msg.find("cannot dequantize type " + std::string(info.name)) != std::string::npos);
    CHECK(bits_of(out[0]) == test::poison_bits);
  }
  auto out = test::poisoned(512);
  auto msg = thrown_message([&] { dequantize_row(GgmlType::Q5_K, src.data(), out.data(), 300); });
  CHECK(msg.find("Q5_K") != std::string::npos);
  CHECK(msg.find("300") != std::string::npos);
  msg = thrown_message([&] { dequantize_row(GgmlType::Q8_0, src.data(), out.data(), 33); });
  CHECK(msg.find("Q8_0") != std::string::npos);
  CHECK(msg.find("32") != std::string::npos);
  msg = thrown_message([&] { dequantize_row(static_cast<GgmlType>(99), src.data(), out.data(), 32); });
  CHECK(msg.find("unknown ggml type id 99") != std::string::npos);
  CHECK(bits_of(out[0]) == test::poison_bits);
  CHECK_NOTHROW(dequantize_row(GgmlType::Q4_K, nullptr, nullptr, 0));
}
