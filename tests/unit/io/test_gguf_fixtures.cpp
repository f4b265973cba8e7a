// The reader against gguf-py: tests/data/gguf/*.gguf were written by GGUFWriter and expected.json records what
// GGUFReader reads from them (tools/make_gguf_fixtures.py). Every key, type, value, tensor and checksum must match.
#include <doctest/doctest.h>

#include <boost/json/src.hpp>  // header-only Boost.JSON, compiled into this test only

#include <bit>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>

#include "gguf_test_support.hpp"

namespace json = boost::json;
using namespace hmoe;
using namespace hmoe::gguf;
using namespace hmoe::gguf::test;

namespace {

json::object load_expected() {
  std::ifstream in(fixture_dir / "expected.json");
  REQUIRE_MESSAGE(in, "missing " << (fixture_dir / "expected.json") << "; run tools/make_gguf_fixtures.py");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str()).as_object();
}

ValueType type_named(std::string_view name) {
  for (std::uint32_t i = 0; i < value_type_names.size(); ++i)
    if (value_type_names[i] == name) return static_cast<ValueType>(i);
  FAIL("unknown value type name " << name);
  return ValueType::UINT8;
}

// Scalar i of an array, or the value itself when there is no index.
template <class T>
T scalar(const Value& v, std::optional<std::size_t> i) {
  return i ? v.at<T>(*i) : v.as<T>();
}

// Floats are stored in the JSON as float.hex() strings ("0x1.8p+0", "inf", "nan"), which strtod reads exactly.
double hex_float(const json::value& j) { return std::strtod(json::value_to<std::string>(j).c_str(), nullptr); }

void check_scalar(const Value& v, ValueType t, std::optional<std::size_t> i, const json::value& j) {
  switch (t) {
    case ValueType::UINT8: case ValueType::UINT16: case ValueType::UINT32: case ValueType::UINT64:
      CHECK(scalar<std::uint64_t>(v, i) == j.to_number<std::uint64_t>());
      break;
    case ValueType::INT8: case ValueType::INT16: case ValueType::INT32: case ValueType::INT64:
      CHECK(scalar<std::int64_t>(v, i) == j.to_number<std::int64_t>());
      break;
    case ValueType::FLOAT32: {
      const float want = static_cast<float>(hex_float(j));
      const float got = scalar<float>(v, i);
      if (std::isnan(want)) CHECK(std::isnan(got));
      else CHECK(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(want));  // -0.0 too
      break;
    }
    case ValueType::FLOAT64: {
      const double want = hex_float(j);
      const double got = scalar<double>(v, i);
      if (std::isnan(want)) CHECK(std::isnan(got));
      else CHECK(std::bit_cast<std::uint64_t>(got) == std::bit_cast<std::uint64_t>(want));
      break;
    }
    case ValueType::BOOL: CHECK(scalar<bool>(v, i) == j.as_bool()); break;
    case ValueType::STRING: CHECK(scalar<std::string_view>(v, i) == std::string_view(j.as_string())); break;
    case ValueType::ARRAY: FAIL("not a scalar type"); break;
  }
}

void check_value(const Value& v, ValueType t, const json::value& j) {
  REQUIRE(v.type() == t);
  if (t != ValueType::ARRAY) return check_scalar(v, t, std::nullopt, j);
  const auto& obj = j.as_object();
  const ValueType elem = type_named(std::string_view(obj.at("elem_type").as_string()));
  const auto& items = obj.at("items").as_array();
  CHECK(v.array_type() == elem);
  REQUIRE(v.size() == items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    CAPTURE(i);
    if (elem == ValueType::ARRAY) check_value(v.element(i), ValueType::ARRAY, items[i]);
    else check_scalar(v, elem, i, items[i]);
  }
}

void check_metadata(std::span<const Value> got, const json::array& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    const auto& w = want[k].as_object();
    const std::string key(w.at("key").as_string());
    CAPTURE(key);
    CHECK(got[k].key() == key);
    CHECK(got[k].offset() == w.at("offset").to_number<std::uint64_t>());
    const auto& types = w.at("types").as_array();
    check_value(got[k], type_named(std::string_view(types[0].as_string())), w.at("value"));
  }
}

// Checks `got` tensors against the JSON tensors of one file whose data section starts at `data_offset`.
void check_tensors(std::span<const TensorInfo> got, const json::array& want, const std::filesystem::path& file,
                   std::uint64_t data_offset) {
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    const auto& w = want[k].as_object();
    const TensorInfo& t = got[k];
    CAPTURE(t.name);
    CHECK(t.name == std::string_view(w.at("name").as_string()));
    CHECK(static_cast<std::uint32_t>(t.type) == w.at("type_id").to_number<std::uint32_t>());
    CHECK(ggml_type_name(t.type) == std::string_view(w.at("type").as_string()));
    const auto& ne = w.at("ne").as_array();
    REQUIRE(t.n_dims == static_cast<int>(ne.size()));
    for (std::size_t d = 0; d < 4; ++d)
      CHECK(t.ne[d] == (d < ne.size() ? ne[d].to_number<std::uint64_t>() : 1u));
    CHECK(t.offset == w.at("offset").to_number<std::uint64_t>());
    CHECK(t.file_offset() == data_offset + t.offset);
    CHECK(t.n_bytes() == w.at("n_bytes").to_number<std::uint64_t>());
    const auto info = ggml_type_info(t.type);
    CHECK(t.n_bytes() == t.n_elements() / info.block_elems * info.block_bytes);
    CHECK(t.n_rows() * t.ne[0] == t.n_elements());
    std::ostringstream hash;
    hash << std::hex << std::setw(16) << std::setfill('0') << fnv1a64(t.data);
    CHECK(hash.str() == std::string_view(w.at("fnv1a64").as_string()));
    CHECK(t.file() == file.string());
  }
}

}  // namespace

TEST_CASE("every fixture reads as gguf-py's GGUFReader reads it") {
  const auto expected = load_expected();
  const auto& files = expected.at("files").as_object();
  REQUIRE(files.size() >= 8);
  for (const auto& [name_sv, entry] : files) {
    const std::string name(name_sv);
    const auto& want = entry.as_object();
    if (name.starts_with("split-")) continue;  // checked as one set below
    {
      CAPTURE(name);
      const auto path = fixture_dir / name;
      const File f = File::open(path);
      CHECK(f.path() == path);
      CHECK(f.version() == want.at("version").to_number<std::uint32_t>());
      CHECK(f.alignment() == want.at("alignment").to_number<std::size_t>());
      CHECK(f.data_offset() == want.at("data_offset").to_number<std::uint64_t>());
      CHECK(f.architecture() == "deepseek2");
      check_metadata(f.metadata(), want.at("metadata").as_array());
      check_tensors(f.tensors(), want.at("tensors").as_array(), path, f.data_offset());
      for (const Value& v : f.metadata()) CHECK(f.find(v.key()) == &v);
      for (const TensorInfo& t : f.tensors()) CHECK(f.find_tensor(t.name) == &t);
    }
  }
}

TEST_CASE("a 3-part split set opens as one model") {
  const auto expected = load_expected();
  const auto& files = expected.at("files").as_object();
  const auto path = fixture_dir / "split-00001-of-00003.gguf";
  const File f = File::open(path);
  CHECK(f.path() == path);
  REQUIRE(f.part_paths().size() == 3);
  CHECK(f.part_paths()[2] == fixture_dir / "split-00003-of-00003.gguf");
  // The metadata is the first part's; the tensors are all parts' in order.
  check_metadata(f.metadata(), files.at("split-00001-of-00003.gguf").as_object().at("metadata").as_array());
  CHECK(f.get<std::uint32_t>("split.count") == 3);
  CHECK(f.get<int>("split.tensors.count") == 5);
  REQUIRE(f.tensors().size() == 5);
  std::size_t first = 0;
  for (int k = 1; k <= 3; ++k) {
    const std::string part = "split-0000" + std::to_string(k) + "-of-00003.gguf";
    CAPTURE(part);
    const auto& want = files.at(part).as_object();
    const auto& tensors = want.at("tensors").as_array();
    check_tensors(f.tensors().subspan(first, tensors.size()), tensors, fixture_dir / part,
                  want.at("data_offset").to_number<std::uint64_t>());
    first += tensors.size();
  }
  CHECK(f.tensor("output_norm.weight").file() == (fixture_dir / "split-00003-of-00003.gguf").string());
  CHECK(f.tensor("blk.1.ffn_down.weight").type == GgmlType::Q4_K);
}

TEST_CASE("GGUF v2 is read like v3") {
  const File v2 = File::open(fixture_dir / "v2.gguf");
  const File v3 = File::open(fixture_dir / "small.gguf");
  CHECK(v2.version() == 2);
  CHECK(v3.version() == 3);
  REQUIRE(v2.metadata().size() == v3.metadata().size());
  REQUIRE(v2.tensors().size() == v3.tensors().size());
  for (std::size_t i = 0; i < v2.tensors().size(); ++i) {
    CHECK(v2.tensors()[i].name == v3.tensors()[i].name);
    CHECK(fnv1a64(v2.tensors()[i].data) == fnv1a64(v3.tensors()[i].data));
  }
}
