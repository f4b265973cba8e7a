// Metadata conversions, lookups and require_types, on all_types.gguf (see tools/make_gguf_fixtures.py).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "gguf_test_support.hpp"

using namespace hmoe;
using namespace hmoe::gguf;
using namespace hmoe::gguf::test;

namespace {

const File& all_types() {
  static const File f = File::open(fixture_dir / "all_types.gguf");
  return f;
}

template <class F>
std::string error_from(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("no gguf::Error thrown");
  return {};
}

void check_has(const std::string& message, const std::string& part) {
  CHECK_MESSAGE(contains(message, part), "message: " << message << "\nlacks: " << part);
}

}  // namespace

TEST_CASE("integers convert when they fit, and only then") {
  const File& f = all_types();
  CHECK(f.get<std::uint8_t>("t.u8") == 255);
  CHECK(f.get<int>("t.u8") == 255);
  CHECK(f.get<std::int8_t>("t.i8") == -128);
  CHECK(f.get<std::int64_t>("t.i8") == -128);
  CHECK(f.get<std::uint16_t>("t.u16") == 65535);
  CHECK(f.get<std::int16_t>("t.i16") == -32768);
  CHECK(f.get<std::uint32_t>("t.u32") == 4294967295u);
  CHECK(f.get<std::int64_t>("t.u32") == 4294967295);
  CHECK(f.get<std::int32_t>("t.i32") == std::numeric_limits<std::int32_t>::min());
  CHECK(f.get<std::uint64_t>("t.u64") == std::numeric_limits<std::uint64_t>::max());
  CHECK(f.get<std::int64_t>("t.i64") == std::numeric_limits<std::int64_t>::min());
  CHECK(f.get<std::size_t>("t.small_u32") == 7);
  CHECK(f.get<std::uint8_t>("t.small_u32") == 7);
  CHECK(f.get<long>("t.neg_i32") == -7);

  const auto path = (fixture_dir / "all_types.gguf").string();
  const auto m = error_from([&] { (void)f.get<std::int8_t>("t.u8"); });
  check_has(m, path + ": byte ");
  check_has(m, "metadata key 't.u8' holds UINT8 255, which does not fit in int8");
  check_has(error_from([&] { (void)f.get<std::uint64_t>("t.neg_i32"); }),
            "metadata key 't.neg_i32' holds INT32 -7, which does not fit in uint64");
  check_has(error_from([&] { (void)f.get<std::int64_t>("t.u64"); }),
            "holds UINT64 18446744073709551615, which does not fit in int64");
  check_has(error_from([&] { (void)f.get<int>("t.f32"); }), "holds FLOAT32 3.4028235e+38, which cannot be read as int32");
  check_has(error_from([&] { (void)f.get<int>("t.bool_true"); }), "holds BOOL true, which cannot be read as int32");
  check_has(error_from([&] { (void)f.get<int>("t.string"); }), "holds STRING \"héllo wörld");
}

TEST_CASE("floating point, bool and strings") {
  const File& f = all_types();
  CHECK(f.get<float>("t.f32") == std::numeric_limits<float>::max());
  CHECK(f.get<double>("t.f64") == -2.5e-300);
  CHECK(std::isinf(f.get<float>("t.f32_inf")));
  CHECK(std::isnan(f.get<double>("t.f64_nan")));
  CHECK(std::signbit(f.get<float>("t.f32_neg_zero")));
  CHECK(f.get<double>("t.u64") == 18446744073709551615.0);  // integers widen to floating point
  CHECK(f.get<float>("t.neg_i32") == -7.0f);
  CHECK(f.get<bool>("t.bool_true"));
  CHECK_FALSE(f.get<bool>("t.bool_false"));
  CHECK(f.get<std::string>("t.string") == "héllo wörld — 日本語 🦙");
  CHECK(f.get<std::string_view>("general.name") == "all types");
  CHECK(f.architecture() == "deepseek2");
  check_has(error_from([&] { (void)f.get<bool>("t.u8"); }), "holds UINT8 255, which cannot be read as bool");
  check_has(error_from([&] { (void)f.get<std::string>("t.u8"); }), "holds UINT8 255, which cannot be read as string");
  check_has(error_from([&] { (void)f.at("t.arr_f64").at<float>(1); }),
            "metadata key 't.arr_f64' element 1 holds FLOAT64 -1e+300, which does not fit in float");
}

TEST_CASE("arrays") {
  const File& f = all_types();
  const Value& u8 = f.at("t.arr_u8");
  CHECK(u8.is_array());
  CHECK(u8.array_type() == ValueType::UINT8);
  CHECK(u8.size() == 3);
  CHECK(u8.to_vector<int>() == std::vector<int>{0, 1, 255});
  CHECK(f.at("t.arr_i8").to_vector<int>() == std::vector<int>{-128, 0, 127});
  CHECK(f.at("t.arr_u64").at<std::uint64_t>(1) == std::numeric_limits<std::uint64_t>::max());
  CHECK(f.at("t.arr_i64").at<std::int64_t>(0) == std::numeric_limits<std::int64_t>::min());
  CHECK(f.at("t.arr_f32").to_vector<float>() == std::vector<float>{0.5f, -1.25f, 1e-30f});
  CHECK(f.at("t.arr_bool").to_vector<bool>() == std::vector<bool>{true, false, true});
  const auto strings = f.at("t.arr_str").to_vector<std::string>();
  CHECK(strings == std::vector<std::string>{"", "a", "ünï", "𝄞 clef", "tab\tnew\nline"});
  CHECK(f.at("tokenizer.ggml.tokens").size() == 200);
  CHECK(f.at("tokenizer.ggml.scores").to_vector<float>().size() == 200);

  const Value& nested = f.at("t.arr_arr_i32");
  CHECK(nested.array_type() == ValueType::ARRAY);
  REQUIRE(nested.size() == 3);
  CHECK(nested.element(0).to_vector<int>() == std::vector<int>{1, 2, 3});
  CHECK(nested.element(1).to_vector<int>() == std::vector<int>{-4});
  CHECK(nested.element(0).key() == "t.arr_arr_i32");
  CHECK(f.at("t.arr_arr_str").element(0).at<std::string_view>(1) == "yé");
  CHECK(f.at("t.arr_arr_arr").element(1).element(0).to_vector<int>() == std::vector<int>{4, 5, 6});

  check_has(error_from([&] { (void)u8.at<int>(3); }), "index 3 is out of range for an array of 3 elements");
  check_has(error_from([&] { (void)u8.as<int>(); }), "holds ARRAY of 3 UINT8, not a single value");
  check_has(error_from([&] { (void)f.at("t.u8").size(); }), "holds UINT8 255, not an array");
  check_has(error_from([&] { (void)u8.element(0); }), "element() needs an array of arrays");
  check_has(error_from([&] { (void)nested.at<int>(0); }), "element 0 is an array, which cannot be read as int32 (use element())");
  check_has(error_from([&] { (void)f.at("t.arr_str").at<int>(2); }), "element 2 is the STRING \"ünï\", which cannot be read as int32");
  check_has(error_from([&] { (void)f.at("t.arr_i8").to_vector<std::uint8_t>(); }),
            "element 0 holds INT8 -128, which does not fit in uint8");
}

TEST_CASE("lookups") {
  const File& f = all_types();
  const auto path = (fixture_dir / "all_types.gguf").string();
  CHECK(f.find("nope") == nullptr);
  CHECK(error_from([&] { (void)f.at("nope"); }) == path + ": missing metadata key 'nope'");
  CHECK(error_from([&] { (void)f.get<int>("nope"); }) == path + ": missing metadata key 'nope'");
  CHECK_FALSE(f.get_optional<int>("nope").has_value());
  CHECK(f.get_optional<int>("t.small_u32") == 7);
  check_has(error_from([&] { (void)f.get_optional<int>("t.string"); }), "cannot be read as int32");  // present but wrong: an error
  CHECK(f.find_tensor("nope") == nullptr);
  CHECK(error_from([&] { (void)f.tensor("nope"); }) == path + ": no tensor named 'nope'");
  const TensorInfo& q = f.tensor("t.q8_0_3d");
  CHECK(q.type == GgmlType::Q8_0);
  CHECK(q.n_dims == 3);
  CHECK(q.ne == std::array<std::uint64_t, 4>{64, 3, 2, 1});
  CHECK(q.n_rows() == 6);
  CHECK(q.n_bytes() == 6 * 2 * 34);
  CHECK(f.tensor("t.q4_0_4d").ne == std::array<std::uint64_t, 4>{32, 2, 1, 2});
  CHECK(f.alignment() == 32);
  CHECK(File::open(fixture_dir / "aligned64.gguf").alignment() == 64);
  const File aligned = File::open(fixture_dir / "aligned64.gguf");
  for (const TensorInfo& t : aligned.tensors()) CHECK(t.offset % 64 == 0);
  const File no_tensors = File::open(fixture_dir / "no_tensors.gguf");
  CHECK(no_tensors.tensors().empty());
}

// What a File hands out by reference must not be taken from a temporary File.
template <class F>
concept TensorsOfTemporary = requires { std::declval<F&&>().tensors(); };
static_assert(!TensorsOfTemporary<File>);
static_assert(requires(const File& f) { f.tensors(); f.metadata(); f.at("k"); f.tensor("t"); });

TEST_CASE("a File stays valid when moved") {
  File a = File::open(fixture_dir / "small.gguf");
  const Value* name = &a.at("general.name");
  const auto data = a.tensor("w.f32").data;
  File b = std::move(a);
  CHECK(&b.at("general.name") == name);  // nothing was reallocated
  CHECK(b.get<std::string>("general.name") == "tiny ✓");
  CHECK(b.tensor("w.f32").data.data() == data.data());
  CHECK(b.tensor("w.f32").file() == (fixture_dir / "small.gguf").string());
}

TEST_CASE("require_types names the first tensor hmoe cannot run") {
  const File& f = all_types();
  const std::vector<GgmlType> all{GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_K,
                                  GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::I8,
                                  GgmlType::I16,  GgmlType::I32,  GgmlType::I64,  GgmlType::F64};
  CHECK_NOTHROW(require_types(f, all));
  const auto m = error_from([&] { require_types(f, {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_K}); });
  CHECK(m == (fixture_dir / "all_types.gguf").string() +
                 ": tensor t.q8_0_3d has type Q8_0 (8), which hmoe does not run; supported: F32, F16, BF16, Q4_K");
}
