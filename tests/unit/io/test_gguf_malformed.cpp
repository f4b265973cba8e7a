// Damaged and hostile GGUF files: each class of damage must give a gguf::Error naming the file, the byte and
// the reason, and no damage may make the reader touch memory outside the mapping (run under HMOE_SANITIZE=ON).
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>

#include "gguf_test_support.hpp"

using namespace hmoe;
using namespace hmoe::gguf;
using namespace hmoe::gguf::test;
using detail::cat;

namespace {

/// A small valid file built field by field, remembering where each field is so tests can damage it.
struct Base {
  Builder b;
  std::uint64_t arch_key_len_at = 0, arch_type_at = 0, arch_value_len_at = 0;
  std::uint64_t align_type_at = 0, align_value_at = 0, flag_value_at = 0;
  std::uint64_t arr_elem_type_at = 0, arr_count_at = 0;
  struct Info {
    std::uint64_t start = 0, name_at = 0, n_dims_at = 0, dims_at = 0, type_at = 0, offset_at = 0;
  } a, q;
  std::uint64_t infos_end = 0, data_start = 0, data_end = 0;
};

Base make_base() {
  Base x;
  Builder& b = x.b;
  b.header(2, 4);
  x.arch_key_len_at = b.size();
  b.str("general.architecture");
  x.arch_type_at = b.size();
  b.u32(8);
  x.arch_value_len_at = b.size();
  b.str("deepseek2");
  b.str("general.alignment");
  x.align_type_at = b.size();
  b.u32(4);
  x.align_value_at = b.size();
  b.u32(32);
  b.str("test.flag").u32(7);
  x.flag_value_at = b.size();
  b.put<std::uint8_t>(1);
  b.str("test.arr").u32(9);
  x.arr_elem_type_at = b.size();
  b.u32(4);
  x.arr_count_at = b.size();
  b.u64(3).u32(1).u32(2).u32(3);
  const auto info = [&](Base::Info& i, std::string_view name, std::initializer_list<std::uint64_t> ne, GgmlType t,
                        std::uint64_t offset) {
    i.start = b.size();
    i.name_at = i.start + 8;
    i.n_dims_at = i.name_at + name.size();
    i.dims_at = i.n_dims_at + 4;
    i.type_at = i.dims_at + 8 * ne.size();
    i.offset_at = i.type_at + 4;
    b.tensor_info(name, ne, t, offset);
  };
  info(x.a, "a", {4, 2}, GgmlType::F32, 0);   // 32 bytes at 0
  info(x.q, "q", {32}, GgmlType::Q8_0, 32);    // 34 bytes at 32
  x.infos_end = b.size();
  b.pad_to(32);
  x.data_start = b.size();
  for (int i = 0; i < 66; ++i) b.put<std::uint8_t>(static_cast<std::uint8_t>(i));
  x.data_end = b.size();
  b.pad_to(32);
  return x;
}

/// Writes `b` as <tmp>/bad.gguf and returns the message of the Error opening it gives.
std::string error_of(const Builder& b, const TempDir& dir, const char* name = "bad.gguf") {
  b.write(dir / name);
  return open_error(dir / name);
}

void check_has(const std::string& message, const std::string& part) {
  CHECK_MESSAGE(contains(message, part), "message: " << message << "\nlacks: " << part);
}

}  // namespace

TEST_CASE("the hand-built base file is valid") {
  TempDir dir;
  const Base x = make_base();
  x.b.write(dir / "base.gguf");
  const File f = File::open(dir / "base.gguf");
  CHECK(f.data_offset() == x.data_start);
  CHECK(f.tensor("a").file_offset() == x.data_start);
  CHECK(f.tensor("q").n_bytes() == 34);
  CHECK(f.get<bool>("test.flag"));
  CHECK(f.at("test.arr").to_vector<int>() == std::vector<int>{1, 2, 3});
}

TEST_CASE("bad magic shows the bytes found") {
  TempDir dir;
  Base x = make_base();
  x.b.patch<std::uint8_t>(3, 'X');
  auto m = error_of(x.b, dir);
  check_has(m, "bad.gguf: byte 0: bad magic 'GGUX' (bytes 47 47 55 58)");
  check_has(m, "not a GGUF file");
  x.b.patch<std::uint32_t>(0, 0x00ff0a01);
  m = error_of(x.b, dir);
  check_has(m, "bad magic '....' (bytes 01 0a ff 00)");
}

TEST_CASE("only GGUF versions 2 and 3 are read") {
  TempDir dir;
  Base x = make_base();
  for (std::uint32_t v : {0u, 1u, 4u, 0xffffffffu}) {
    CAPTURE(v);
    x.b.patch<std::uint32_t>(4, v);
    check_has(error_of(x.b, dir), cat("byte 4: unsupported GGUF version ", v));
  }
  x.b.patch<std::uint32_t>(4, 2);
  x.b.write(dir / "v2.gguf");
  CHECK(File::open(dir / "v2.gguf").version() == 2);
}

TEST_CASE("big-endian files are refused clearly") {
  TempDir dir;
  Base x = make_base();
  x.b.patch<std::uint32_t>(4, 0x03000000);  // version 3 as a big-endian file stores it
  const auto m = error_of(x.b, dir);
  check_has(m, "byte 4: big-endian GGUF file");
  check_has(m, "little-endian GGUF files only");
}

TEST_CASE("truncation at every byte gives an Error naming where the data ran out") {
  TempDir dir;
  const Base x = make_base();
  const auto check_all_cuts = [&](std::span<const std::byte> whole, std::uint64_t infos_end, std::uint64_t data_end) {
    for (std::uint64_t cut = 0; cut < whole.size(); ++cut) {
      CAPTURE(cut);
      write_bytes(dir / "cut.gguf", whole.first(cut));
      if (cut >= data_end) {  // only the padding after the last tensor is gone: still a valid file
        CHECK_NOTHROW((void)File::open(dir / "cut.gguf"));
        continue;
      }
      const auto m = open_error(dir / "cut.gguf");
      if (cut < infos_end) {
        // Ran out inside the header: either a read found too few bytes, or a length/count claimed more bytes
        // than are left.
        const bool reported = contains(m, cat("truncated: the file ends at byte ", cut, " while reading ")) ||
                              contains(m, cat("are left in the file (", cut, " bytes)")) ||
                              contains(m, "cannot fit in the");
        CHECK_MESSAGE(reported, m);
      } else {
        check_has(m, cat("runs past the end of the file (", cut, " bytes)"));
      }
    }
  };
  SUBCASE("hand-built file") { check_all_cuts(x.b.bytes, x.infos_end, x.data_end); }
  SUBCASE("gguf-py's small.gguf") {
    const auto bytes = read_bytes(fixture_dir / "small.gguf");
    const File f = File::open(fixture_dir / "small.gguf");
    std::uint64_t data_end = 0;
    for (const auto& t : f.tensors()) data_end = std::max(data_end, t.file_offset() + t.n_bytes());
    // The infos end with the last tensor's: name, n_dims, ne[n_dims], type, offset.
    const TensorInfo& last = f.tensors().back();
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const std::uint64_t infos_end = text.rfind(last.name) + last.name.size() + 4 + 8 * last.n_dims + 4 + 8;
    REQUIRE(infos_end <= f.data_offset());
    check_all_cuts(bytes, infos_end, data_end);
  }
  SUBCASE("a few messages in full") {
    write_bytes(dir / "cut.gguf", std::span<const std::byte>{});
    CHECK(open_error(dir / "cut.gguf") ==
          (dir / "cut.gguf").string() +
              ": byte 0: truncated: the file ends at byte 0 while reading the magic of the header (needs 4 bytes, 0 left)");
    // Cut this early, the header's counts already cannot fit in what is left.
    write_bytes(dir / "cut.gguf", std::span(x.b.bytes).first(x.arch_type_at + 2));
    check_has(open_error(dir / "cut.gguf"), "byte 16: the header claims 4 metadata entries, which cannot fit in the "
                                            "30 bytes left (each needs at least 14)");
    write_bytes(dir / "cut.gguf", std::span(x.b.bytes).first(x.arr_count_at + 8 + 10));
    check_has(open_error(dir / "cut.gguf"), cat("byte ", x.arr_count_at, ": metadata key 'test.arr' claims an array "
                                                "of 3 UINT32 elements, which cannot fit in the 10 bytes left"));
    write_bytes(dir / "cut.gguf", std::span(x.b.bytes).first(x.q.dims_at + 5));
    check_has(open_error(dir / "cut.gguf"),
              cat("byte ", x.q.dims_at, ": truncated: the file ends at byte ", x.q.dims_at + 5,
                  " while reading dimension 0 of tensor q (needs 8 bytes, 5 left)"));
    write_bytes(dir / "cut.gguf", std::span(x.b.bytes).first(x.q.offset_at + 3));
    check_has(open_error(dir / "cut.gguf"),
              cat("byte ", x.q.offset_at, ": truncated: the file ends at byte ", x.q.offset_at + 3,
                  " while reading the data offset of tensor q (needs 8 bytes, 3 left)"));
  }
}

TEST_CASE("string lengths that cannot fit in the file") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("key") {
    x.b.patch<std::uint64_t>(x.arch_key_len_at, ~std::uint64_t{0});
    const auto m = error_of(x.b, dir);
    check_has(m, cat("byte ", x.arch_key_len_at, ": the key of metadata entry #0 claims 18446744073709551615 bytes"));
  }
  SUBCASE("string value") {
    x.b.patch<std::uint64_t>(x.arch_value_len_at, 5000);
    const auto m = error_of(x.b, dir);
    check_has(m, cat("byte ", x.arch_value_len_at,
                     ": the string value of metadata key 'general.architecture' claims 5000 bytes but only"));
  }
  SUBCASE("tensor name") {
    x.b.patch<std::uint64_t>(x.q.start, std::uint64_t{1} << 63);
    const auto m = error_of(x.b, dir);
    check_has(m, cat("byte ", x.q.start, ": the tensor name of tensor info #1 claims 9223372036854775808 bytes"));
  }
  SUBCASE("empty key") {
    x.b.patch<std::uint64_t>(x.arch_key_len_at, 0);
    check_has(error_of(x.b, dir), cat("byte ", x.arch_key_len_at, ": metadata entry #0 has an empty key"));
  }
}

TEST_CASE("array counts that cannot fit, with overflow-safe arithmetic") {
  TempDir dir;
  Base x = make_base();
  for (std::uint64_t count : {std::uint64_t{1000}, std::uint64_t{1} << 62, ~std::uint64_t{0}}) {
    CAPTURE(count);
    x.b.patch<std::uint64_t>(x.arr_count_at, count);
    const auto m = error_of(x.b, dir);
    check_has(m, cat("byte ", x.arr_count_at, ": metadata key 'test.arr' claims an array of ", count,
                     " UINT32 elements, which cannot fit in the"));
  }
  SUBCASE("an array of strings") {
    // 3 UINT32 = 12 bytes read as one string of length 0x0000000200000001: cannot fit.
    x.b.patch<std::uint32_t>(x.arr_elem_type_at, 8);
    x.b.patch<std::uint64_t>(x.arr_count_at, 1);
    check_has(error_of(x.b, dir), "string element 0 of metadata key 'test.arr' claims 8589934593 bytes");
  }
}

TEST_CASE("metadata and tensor counts that cannot fit") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("metadata") {
    for (std::uint64_t n : {std::uint64_t{1} << 60, ~std::uint64_t{0}, std::uint64_t{100}}) {
      x.b.patch<std::uint64_t>(16, n);
      check_has(error_of(x.b, dir), cat("byte 16: the header claims ", n, " metadata entries, which cannot fit"));
    }
  }
  SUBCASE("tensors") {
    for (std::uint64_t n : {std::uint64_t{1} << 59, ~std::uint64_t{0}, std::uint64_t{50}}) {
      x.b.patch<std::uint64_t>(8, n);
      check_has(error_of(x.b, dir), cat("byte 8: the header claims ", n, " tensors, whose infos cannot fit"));
    }
  }
  SUBCASE("one metadata entry too many reads the tensor infos as metadata and fails there") {
    x.b.patch<std::uint64_t>(16, 5);
    (void)error_of(x.b, dir);
  }
}

TEST_CASE("unknown value types") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("value") {
    x.b.patch<std::uint32_t>(x.arch_type_at, 13);
    check_has(error_of(x.b, dir),
              cat("byte ", x.arch_type_at, ": metadata key 'general.architecture' has unknown value type 13"));
  }
  SUBCASE("array element") {
    x.b.patch<std::uint32_t>(x.arr_elem_type_at, 99);
    check_has(error_of(x.b, dir),
              cat("byte ", x.arr_elem_type_at, ": metadata key 'test.arr' has an array of unknown value type 99"));
  }
}

TEST_CASE("BOOL bytes must be 0 or 1") {
  TempDir dir;
  Base x = make_base();
  x.b.patch<std::uint8_t>(x.flag_value_at, 2);
  check_has(error_of(x.b, dir),
            cat("byte ", x.flag_value_at, ": metadata key 'test.flag': BOOL byte 2 is neither 0 nor 1"));
}

TEST_CASE("arrays nested too deep") {
  TempDir dir;
  const auto nested = [](int levels) {
    Builder b;
    b.header(0, 1).str("deep").u32(9);
    for (int i = 1; i < levels; ++i) b.u32(9).u64(1);  // an array holding one array ...
    b.u32(4).u64(1).u32(7);                            // ... holding one UINT32
    return b;
  };
  const Builder ok = nested(Value::max_array_depth);
  ok.write(dir / "ok.gguf");
  const File f = File::open(dir / "ok.gguf");
  const Value* v = &f.at("deep");
  for (int i = 1; i < Value::max_array_depth; ++i) v = &v->element(0);
  CHECK(v->at<int>(0) == 7);
  check_has(error_of(nested(Value::max_array_depth + 1), dir), "metadata key 'deep' nests arrays more than 16 deep");
}

TEST_CASE("duplicate metadata keys") {
  TempDir dir;
  Builder b;
  b.header(0, 3).kv_str("general.architecture", "deepseek2");
  const auto first = b.size();
  b.kv_u32("x", 1);
  const auto second = b.size();
  b.kv_u32("x", 2);
  check_has(error_of(b, dir), cat("byte ", second, ": duplicate metadata key 'x' (first at byte ", first, ")"));
}

TEST_CASE("tensor shapes") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("more than 4 dimensions") {
    x.b.patch<std::uint32_t>(x.a.n_dims_at, 5);
    check_has(error_of(x.b, dir),
              cat("byte ", x.a.n_dims_at, ": tensor a has 5 dimensions; GGUF allows at most 4"));
  }
  SUBCASE("a dimension of 0") {
    x.b.patch<std::uint64_t>(x.a.dims_at + 8, 0);
    check_has(error_of(x.b, dir), cat("byte ", x.a.dims_at + 8, ": tensor a has size 0 in dimension 1"));
  }
  SUBCASE("element count overflowing 64 bits") {
    x.b.patch<std::uint64_t>(x.a.dims_at, std::uint64_t{1} << 32);
    x.b.patch<std::uint64_t>(x.a.dims_at + 8, std::uint64_t{1} << 32);
    check_has(error_of(x.b, dir),
              cat("byte ", x.a.n_dims_at, ": tensor a has shape [4294967296, 4294967296], whose element count "
                                          "overflows 64 bits"));
  }
  SUBCASE("byte size overflowing 64 bits") {
    x.b.patch<std::uint64_t>(x.a.dims_at, std::uint64_t{1} << 31);
    x.b.patch<std::uint64_t>(x.a.dims_at + 8, std::uint64_t{1} << 31);  // 2^62 F32 = 2^64 bytes
    check_has(error_of(x.b, dir), "tensor a of shape [2147483648, 2147483648] and type F32 has a byte size that "
                                  "overflows 64 bits");
  }
  SUBCASE("huge but representable: runs past the end") {
    x.b.patch<std::uint64_t>(x.a.dims_at + 8, std::uint64_t{1} << 40);
    check_has(error_of(x.b, dir), "the data of tensor a (17592186044416 bytes at data offset 0");
  }
  SUBCASE("0 dimensions is a scalar") {
    Builder b;
    b.header(1, 1).kv_str("general.architecture", "deepseek2");
    b.str("s").u32(0).u32(0).u64(0).pad_to(32).u32(0x3f800000);
    b.write(dir / "scalar.gguf");
    const File f = File::open(dir / "scalar.gguf");
    CHECK(f.tensor("s").n_dims == 0);
    CHECK(f.tensor("s").n_elements() == 1);
    CHECK(f.tensor("s").n_bytes() == 4);
  }
}

TEST_CASE("tensor types") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("unknown ggml type id") {
    x.b.patch<std::uint32_t>(x.a.type_at, 77);
    check_has(error_of(x.b, dir), cat("byte ", x.a.type_at, ": tensor a has unknown ggml type id 77"));
    x.b.patch<std::uint32_t>(x.a.type_at, 4);  // Q4_2, retired by ggml
    check_has(error_of(x.b, dir), "tensor a has unknown ggml type id 4");
  }
  SUBCASE("rows not a whole number of blocks") {
    x.b.patch<std::uint64_t>(x.q.dims_at, 40);
    check_has(error_of(x.b, dir), cat("byte ", x.q.n_dims_at, ": tensor q has type Q8_0, whose blocks hold 32 "
                                                                "values, but its rows (ne[0]) have 40"));
  }
}

TEST_CASE("alignment") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("not a power of two") {
    for (std::uint32_t a : {0u, 48u, 3u}) {
      x.b.patch<std::uint32_t>(x.align_value_at, a);
      check_has(error_of(x.b, dir), cat(": general.alignment is ", a, ", not a nonzero power of two"));
    }
  }
  SUBCASE("not a UINT32") {
    x.b.patch<std::uint32_t>(x.align_type_at, 5);
    const std::uint64_t entry = x.align_type_at - std::string_view("general.alignment").size() - 8;
    check_has(error_of(x.b, dir), cat("byte ", entry, ": general.alignment must be a UINT32, not INT32 32"));
  }
  SUBCASE("misaligned tensor offset") {
    x.b.patch<std::uint64_t>(x.q.offset_at, 48);
    check_has(error_of(x.b, dir),
              cat("byte ", x.q.offset_at, ": tensor q has data offset 48, not a multiple of the alignment 32"));
  }
  SUBCASE("alignment 64 makes the offset 32 misaligned") {
    x.b.patch<std::uint32_t>(x.align_value_at, 64);
    check_has(error_of(x.b, dir), "tensor q has data offset 32, not a multiple of the alignment 64");
  }
  SUBCASE("alignment 1 starts the data right after the infos") {
    x.b.patch<std::uint32_t>(x.align_value_at, 1);
    x.b.write(dir / "a1.gguf");
    const File f = File::open(dir / "a1.gguf");
    CHECK(f.alignment() == 1);
    CHECK(f.data_offset() == x.infos_end);
  }
}

TEST_CASE("tensor data outside the file or overlapping") {
  TempDir dir;
  Base x = make_base();
  SUBCASE("past the end") {
    x.b.patch<std::uint64_t>(x.q.offset_at, 64);
    check_has(error_of(x.b, dir),
              cat("byte ", x.q.offset_at, ": the data of tensor q (34 bytes at data offset 64, i.e. file bytes ",
                  x.data_start, " + 64 ...) runs past the end of the file (", x.b.size(), " bytes)"));
  }
  SUBCASE("offset near 2^64") {
    x.b.patch<std::uint64_t>(x.q.offset_at, ~std::uint64_t{31});
    check_has(error_of(x.b, dir), "runs past the end of the file");
  }
  SUBCASE("overlap") {
    x.b.patch<std::uint64_t>(x.q.offset_at, 0);
    const auto m = error_of(x.b, dir);
    check_has(m, "overlaps the data of tensor");
    check_has(m, "tensor a");
    check_has(m, "tensor q");
  }
  SUBCASE("duplicate names") {
    x.b.patch<std::uint8_t>(x.q.name_at, 'a');
    check_has(error_of(x.b, dir), cat("byte ", x.q.start, ": duplicate tensor name a (first at byte ", x.a.start, ")"));
  }
}

TEST_CASE("files that are not there or not files") {
  TempDir dir;
  check_has(open_error(dir / "nope.gguf"), ": cannot open: No such file or directory");
  std::filesystem::create_directory(dir / "d.gguf");
  check_has(open_error(dir / "d.gguf"), ": cannot open: ");
}

namespace {

std::uint64_t value_offset_of(std::span<const std::byte> bytes, std::string_view key) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const auto pos = text.find(key);
  REQUIRE(pos != std::string_view::npos);
  return pos + key.size() + 4;  // after the key and the uint32 value type
}

}  // namespace

TEST_CASE("split sets") {
  TempDir dir;
  const std::array<std::string, 3> names{"split-00001-of-00003.gguf", "split-00002-of-00003.gguf",
                                         "split-00003-of-00003.gguf"};
  std::array<Builder, 3> parts;
  for (std::size_t i = 0; i < 3; ++i) parts[i].bytes = read_bytes(fixture_dir / names[i]);
  const auto write_all = [&] {
    for (std::size_t i = 0; i < 3; ++i) parts[i].write(dir / names[i]);
  };
  const auto first = dir / names[0];

  SUBCASE("a missing part") {
    parts[0].write(dir / names[0]);
    parts[1].write(dir / names[1]);
    const auto m = open_error(first, dir / names[2]);
    check_has(m, cat((dir / names[2]).string(), ": split part 3 of 3 is missing (needed by ", first.string(), ")"));
  }
  SUBCASE("opening a later part") {
    write_all();
    check_has(open_error(dir / names[1]), "this is part 2 of 3 of a split model; open its first part, "
                                          "split-00001-of-00003.gguf");
  }
  SUBCASE("inconsistent split.count") {
    parts[1].patch<std::uint16_t>(value_offset_of(parts[1].bytes, "split.count"), 4);
    write_all();
    check_has(open_error(first, dir / names[1]), cat((dir / names[1]).string(), ": byte ", value_offset_of(parts[1].bytes, "split.count") - 4 - 11 - 8,
                                     ": split.count is 4 but ", first.string(), " says 3 parts"));
  }
  SUBCASE("split.count in the first part disagrees with its name") {
    parts[0].patch<std::uint16_t>(value_offset_of(parts[0].bytes, "split.count"), 2);
    write_all();
    check_has(open_error(first), "split.count is 2 but the file name says 3 parts");
  }
  SUBCASE("wrong split.no") {
    parts[2].patch<std::uint16_t>(value_offset_of(parts[2].bytes, "split.no"), 1);
    write_all();
    check_has(open_error(first, dir / names[2]), "split-00003-of-00003.gguf: byte 24: split.no is 1 but the file name makes this "
                                 "part 2 (split.no counts from 0)");
  }
  SUBCASE("wrong split.tensors.count") {
    parts[0].patch<std::int32_t>(value_offset_of(parts[0].bytes, "split.tensors.count"), 6);
    write_all();
    check_has(open_error(first), "split.tensors.count is 6 but the 3 part(s) hold 5 tensors");
  }
  SUBCASE("a split part renamed to a plain name") {
    parts[0].write(dir / "renamed.gguf");
    check_has(open_error(dir / "renamed.gguf"),
              "split.count is 3 but the file name is not of the form <name>-00001-of-00003.gguf");
  }
  SUBCASE("a split name without split keys") {
    Builder small;
    small.bytes = read_bytes(fixture_dir / "small.gguf");
    small.write(dir / "m-00001-of-00002.gguf");
    check_has(open_error(dir / "m-00001-of-00002.gguf"),
              "the file name says part 1 of 2 of a split model, but the file has no split.count key");
    small.write(dir / "one-00001-of-00001.gguf");  // a "set" of one needs no split keys
    const File one = File::open(dir / "one-00001-of-00001.gguf");
    CHECK(one.tensors().size() == 3);
  }
  SUBCASE("the same tensor in two parts") {
    for (int k = 0; k < 2; ++k) {
      Builder b;
      b.header(1, k == 0 ? 4 : 3);
      if (k == 0) b.kv_str("general.architecture", "deepseek2");
      b.kv_u16("split.no", static_cast<std::uint16_t>(k)).kv_u16("split.count", 2).kv_i32("split.tensors.count", 2);
      b.tensor_info("t", {8}, GgmlType::F32, 0).pad_to(32).zeros(32);
      b.write(dir / cat("dup-0000", k + 1, "-of-00002.gguf"));
    }
    check_has(open_error(dir / "dup-00001-of-00002.gguf", dir / "dup-00002-of-00002.gguf"),
              cat("byte 106: duplicate tensor name t (also in ", (dir / "dup-00001-of-00002.gguf").string(), ")"));
  }
}

TEST_CASE("random damage never crashes: it opens or throws gguf::Error") {
  TempDir dir;
  const auto original = read_bytes(fixture_dir / "small.gguf");
  const File clean = File::open(fixture_dir / "small.gguf");
  const std::uint64_t header_end = clean.data_offset();
  std::mt19937_64 rng(12345);
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bytes = original;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly damage the header, where the structure is; sometimes anywhere.
      const std::uint64_t limit = rng() % 8 == 0 ? bytes.size() : header_end;
      const auto at = rng() % limit;
      switch (rng() % 3) {
        case 0: bytes[at] ^= std::byte{static_cast<unsigned char>(1u << (rng() % 8))}; break;
        case 1: bytes[at] = std::byte{static_cast<unsigned char>(rng())}; break;
        default: bytes[at] = (rng() % 2) ? std::byte{0xff} : std::byte{0}; break;
      }
    }
    if (rng() % 5 == 0) bytes.resize(rng() % bytes.size());
    write_bytes(dir / "fuzz.gguf", bytes);
    try {
      const File f = File::open(dir / "fuzz.gguf");
      ++opened;
      // Whatever was accepted must be safe to use.
      for (const Value& v : f.metadata()) {
        (void)v.describe();
        if (v.is_array() && v.array_type() != ValueType::ARRAY)
          for (std::size_t i = 0; i < v.size(); ++i) {
            try {
              (void)v.at<double>(i);
            } catch (const Error&) {
            }
          }
      }
      std::uint64_t sum = 0;
      for (const auto& t : f.tensors()) sum += fnv1a64(t.data);
      (void)sum;
    } catch (const Error& e) {
      ++refused;
      CHECK(std::string_view(e.what()).starts_with((dir / "fuzz.gguf").string() + ": "));
    }
  }
  MESSAGE("random damage: " << opened << " files still valid, " << refused << " refused");
  CHECK(refused > 1000);
}
