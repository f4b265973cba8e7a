/// \file
/// \brief Opens a GGUF model file (or a llama.cpp split set of them): validated metadata and tensor views
///        into a read-only mapping.
///
/// GGUF versions 2 and 3, little-endian only. The layout (all little-endian):
///   "GGUF", uint32 version, uint64 tensor count, uint64 metadata count,
///   metadata entries: string key, uint32 value type, value,
///   tensor infos: string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml type, uint64 data offset,
///   padding to general.alignment (default 32), then the data section that tensor offsets are relative to.
/// Strings are a uint64 byte count followed by UTF-8 bytes.
///
/// Nothing in the file is trusted: every count, length, offset and shape is checked (with overflow-safe
/// arithmetic) before it is used, so a damaged file gives a gguf::Error naming the file, the byte, the key or
/// tensor and the reason, never a read outside the mapping. Once open() returns, every TensorInfo::data is
/// inside its file, correctly sized for its type and shape, aligned, and disjoint from every other tensor.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hmoe/io/byte_cursor.hpp"
#include "hmoe/io/checked_arith.hpp"
#include "hmoe/io/gguf_error.hpp"
#include "hmoe/io/gguf_value.hpp"
#include "hmoe/io/mapped_file.hpp"
#include "hmoe/quant/ggml_type.hpp"

namespace hmoe::gguf {

/// The metadata keys that tie the parts of a split model together (written by llama.cpp's gguf-split and by
/// gguf-py's GGUFWriter): split.no is 0-based, split.tensors.count is the total over all parts.
inline constexpr std::string_view split_no_key = "split.no";
inline constexpr std::string_view split_count_key = "split.count";
inline constexpr std::string_view split_tensors_count_key = "split.tensors.count";
inline constexpr std::size_t default_alignment = 32;
inline constexpr int max_dims = 4;  // GGML_MAX_DIMS
/// The most entries reserved up front from a count read from a file.
inline constexpr std::uint64_t max_reserve = std::uint64_t{1} << 16;

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  int n_dims = 0;
  /// ggml order: ne[0] is the contiguous (row) dimension; unused dimensions are 1.
  std::array<std::uint64_t, 4> ne{1, 1, 1, 1};
  /// Where the data starts, relative to the data section of its file.
  std::uint64_t offset = 0;
  /// The tensor's bytes, inside the mapping.
  std::span<const std::byte> data;

  std::uint64_t n_elements() const noexcept { return ne[0] * ne[1] * ne[2] * ne[3]; }
  std::uint64_t n_rows() const noexcept { return n_elements() / ne[0]; }
  std::uint64_t n_bytes() const noexcept { return data.size(); }
  /// Path of the (split) file holding the tensor.
  std::string_view file() const noexcept { return file_; }
  /// Where the data starts, from the beginning of its file.
  std::uint64_t file_offset() const noexcept { return file_offset_; }

 private:
  friend class File;
  std::string_view file_;
  std::uint64_t file_offset_ = 0;
};

/// The parts of a split file name "<prefix>-<no>-of-<count>.gguf" (5-digit, 1-based numbers, as llama.cpp
/// writes them), or nothing for other names.
struct SplitName {
  std::string prefix;
  std::uint32_t no = 0;
  std::uint32_t count = 0;

  static std::optional<SplitName> parse(std::string_view filename) {
    constexpr std::string_view ext = ".gguf";
    constexpr std::size_t tail = 1 + 5 + 4 + 5;  // "-NNNNN-of-MMMMM"
    if (filename.size() < tail + ext.size() || !filename.ends_with(ext)) return std::nullopt;
    const auto stem = filename.substr(0, filename.size() - ext.size());
    const auto t = stem.substr(stem.size() - tail);
    if (t[0] != '-' || t.substr(6, 4) != "-of-") return std::nullopt;
    const auto number = [](std::string_view digits) -> std::optional<std::uint32_t> {
      std::uint32_t n = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<std::uint32_t>(c - '0');
      }
      return n;
    };
    const auto no = number(t.substr(1, 5));
    const auto count = number(t.substr(10, 5));
    if (!no || !count || *no == 0 || *no > *count) return std::nullopt;
    return SplitName{std::string(stem.substr(0, stem.size() - tail)), *no, *count};
  }

  /// The file name of part `no` (1-based) of this set.
  std::string filename(std::uint32_t part) const {
    const auto five = [](std::uint32_t n) {
      std::string s = detail::cat(n);
      return std::string(s.size() < 5 ? 5 - s.size() : 0, '0') + s;
    };
    return prefix + "-" + five(part) + "-of-" + five(count) + ".gguf";
  }
};

class File {
 public:
  /// Maps and validates `path`. A name of the form X-00001-of-0000N.gguf opens all N parts of the split set
  /// (from the same directory), checking their split.no / split.count / split.tensors.count; the metadata is
  /// the first part's, the tensors are those of all parts in order.
  static File open(const std::filesystem::path& path) {
    auto state = std::make_unique<State>();
    state->parts.push_back(parse_part(path));
    Part& first = *state->parts.front();
    const auto name = SplitName::parse(path.filename().string());
    const Value* count_value = first.find(split_count_key);
    const std::uint64_t declared = count_value ? count_value->as<std::uint64_t>() : 1;
    if (declared == 0) detail::fail_at(first.path_str, count_value->offset(), "split.count is 0");

    if (name && name->no != 1)
      throw Error(detail::cat(first.path_str, ": this is part ", name->no, " of ", name->count,
                              " of a split model; open its first part, ", name->filename(1)));
    if (name && count_value && declared != name->count)
      detail::fail_at(first.path_str, count_value->offset(),
                      detail::cat("split.count is ", declared, " but the file name says ", name->count, " parts"));
    if (name && !count_value && name->count != 1)
      throw Error(detail::cat(first.path_str, ": the file name says part 1 of ", name->count,
                              " of a split model, but the file has no split.count key"));
    if (!name && declared != 1)
      detail::fail_at(first.path_str, count_value->offset(),
                      detail::cat("split.count is ", declared, " but the file name is not of the form ",
                                  SplitName{"<name>", 1, static_cast<std::uint32_t>(std::min<std::uint64_t>(declared, 99999))}
                                      .filename(1),
                                  ", so the other parts cannot be found"));
    check_split_no(first, 0);

    if (name && name->count > 1) {
      for (std::uint32_t k = 2; k <= name->count; ++k) {
        const auto part_path = path.parent_path() / name->filename(k);
        std::error_code ec;
        if (!std::filesystem::exists(part_path, ec))
          throw Error(detail::cat(part_path.string(), ": split part ", k, " of ", name->count,
                                  " is missing (needed by ", first.path_str, ")"));
        state->parts.push_back(parse_part(part_path));
        Part& part = *state->parts.back();
        const Value* c = part.find(split_count_key);
        if (!c)
          throw Error(detail::cat(part.path_str, ": split part ", k, " of ", name->count,
                                  " has no split.count key"));
        if (c->as<std::uint64_t>() != name->count)
          detail::fail_at(part.path_str, c->offset(),
                          detail::cat("split.count is ", c->as<std::uint64_t>(), " but ", first.path_str, " says ",
                                      name->count, " parts"));
        check_split_no(part, k - 1);
      }
    }

    // Gather the tensors of all parts, refusing a name that two parts both define.
    std::size_t total = 0;
    for (const auto& p : state->parts) total += p->tensors.size();
    for (const auto& p : state->parts) {
      if (const Value* tc = p->find(split_tensors_count_key); tc && tc->as<std::uint64_t>() != total)
        detail::fail_at(p->path_str, tc->offset(),
                        detail::cat("split.tensors.count is ", tc->as<std::uint64_t>(), " but the ",
                                    state->parts.size(), " part(s) hold ", total, " tensors"));
    }
    // Reserved in full, so the merged tensors never move and the index can view their names.
    state->tensors.reserve(total);
    for (const auto& p : state->parts) {
      for (std::size_t i = 0; i < p->tensors.size(); ++i) {
        const TensorInfo& t = state->tensors.emplace_back(std::move(p->tensors[i]));
        const auto [it, fresh] = state->tensor_index.emplace(t.name, state->tensors.size() - 1);
        if (!fresh)
          detail::fail_at(p->path_str, p->tensor_info_offsets[i],
                          detail::cat("duplicate tensor name ", t.name, " (also in ",
                                      state->tensors[it->second].file(), ")"));
      }
      p->tensors.clear();
    }
    return File(std::move(state));
  }

  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;
  ~File() = default;  // the parts' MappedFiles unmap

  /// The GGUF version of the (first) file: 2 or 3.
  std::uint32_t version() const noexcept { return first().version; }
  /// The path given to open().
  const std::filesystem::path& path() const noexcept { return first().path; }
  /// The paths of all parts (one for an unsplit file).
  std::vector<std::filesystem::path> part_paths() const {
    std::vector<std::filesystem::path> out;
    for (const auto& p : s_->parts) out.push_back(p->path);
    return out;
  }

  // The accessors returning references, pointers or spans into the File are deleted on temporaries: in
  // `for (auto& t : File::open(p).tensors())` the File would be unmapped before the loop body runs.

  const Value* find(std::string_view key) const& { return first().find(key); }
  const Value* find(std::string_view key) const&& = delete;
  const Value& at(std::string_view key) const& {
    if (const Value* v = find(key)) return *v;
    throw Error(detail::cat(first().path_str, ": missing metadata key '", key, "'"));
  }
  const Value& at(std::string_view key) const&& = delete;
  /// at(key).as<T>(). (A std::string_view result views the mapping: keep the File alive while using it.)
  template <MetadataType T>
  T get(std::string_view key) const {
    return at(key).as<T>();
  }
  /// Nothing when the key is absent; an Error when it is present but does not convert.
  template <MetadataType T>
  std::optional<T> get_optional(std::string_view key) const {
    if (const Value* v = find(key)) return v->as<T>();
    return std::nullopt;
  }
  /// The metadata of the (first) file, in file order.
  std::span<const Value> metadata() const& noexcept { return first().metadata; }
  std::span<const Value> metadata() const&& = delete;

  /// All tensors, in file order, part after part.
  std::span<const TensorInfo> tensors() const& noexcept { return s_->tensors; }
  std::span<const TensorInfo> tensors() const&& = delete;
  const TensorInfo* find_tensor(std::string_view name) const& {
    const auto it = s_->tensor_index.find(name);
    return it == s_->tensor_index.end() ? nullptr : &s_->tensors[it->second];
  }
  const TensorInfo* find_tensor(std::string_view name) const&& = delete;
  const TensorInfo& tensor(std::string_view name) const& {
    if (const TensorInfo* t = find_tensor(name)) return *t;
    throw Error(detail::cat(first().path_str, ": no tensor named '", name, "'"));
  }
  const TensorInfo& tensor(std::string_view name) const&& = delete;

  std::string architecture() const { return get<std::string>("general.architecture"); }
  /// general.alignment of the (first) file, 32 when absent.
  std::size_t alignment() const noexcept { return first().alignment; }
  /// Where the data section of the (first) file starts.
  std::uint64_t data_offset() const noexcept { return first().data_offset; }

 private:
  /// One mapped and validated file of a (possibly split) model. Held by pointer so that the string_views into
  /// it (path, keys, names) stay valid when the File moves.
  struct Part {
    io::MappedFile map;
    std::filesystem::path path;
    std::string path_str;
    std::uint32_t version = 0;
    std::size_t alignment = default_alignment;
    std::uint64_t data_offset = 0;
    std::vector<Value> metadata;
    std::unordered_map<std::string_view, std::size_t> key_index;
    std::vector<TensorInfo> tensors;
    std::vector<std::uint64_t> tensor_info_offsets;  // where each tensor's info starts, for messages

    const Value* find(std::string_view key) const {
      const auto it = key_index.find(key);
      return it == key_index.end() ? nullptr : &metadata[it->second];
    }
  };

  struct State {
    std::vector<std::unique_ptr<Part>> parts;
    std::vector<TensorInfo> tensors;
    std::unordered_map<std::string_view, std::size_t> tensor_index;
  };

  explicit File(std::unique_ptr<State> s) : s_(std::move(s)) {}
  const Part& first() const noexcept { return *s_->parts.front(); }

  static void check_split_no(const Part& part, std::uint64_t expected) {
    const Value* v = part.find(split_no_key);
    if (!v) return;
    if (const auto no = v->as<std::uint64_t>(); no != expected)
      detail::fail_at(part.path_str, v->offset(),
                      detail::cat("split.no is ", no, " but the file name makes this part ", expected,
                                  " (split.no counts from 0)"));
  }

  static std::unique_ptr<Part> parse_part(const std::filesystem::path& path) {
    using detail::cat;
    auto part = std::make_unique<Part>();
    part->path = path;
    part->path_str = path.string();
    const std::string_view file = part->path_str;
    try {
      part->map = io::MappedFile(path);
    } catch (const std::system_error& e) {
      throw Error(cat(file, ": cannot open: ", e.code().message()));
    }
    ByteCursor c(part->map.bytes(), file);

    // Header.
    c.set_subject("the header");
    const auto magic = c.take(4, "the magic");
    if (detail::hex_bytes(magic) != "47 47 55 46") {
      std::string shown;
      for (std::byte b : magic) {
        const auto ch = std::to_integer<unsigned char>(b);
        shown += (ch >= 0x20 && ch < 0x7f) ? static_cast<char>(ch) : '.';
      }
      c.fail_at(0, cat("bad magic '", shown, "' (bytes ", detail::hex_bytes(magic),
                       "), expected 'GGUF' (47 47 55 46): not a GGUF file"));
    }
    part->version = c.read<std::uint32_t>("the version");
    if (part->version != 2 && part->version != 3) {
      // A big-endian file stores the version 3 as bytes 00 00 00 03, which reads as 0x03000000 here.
      const auto swapped = detail::byteswap(part->version);
      if ((part->version & 0xffffu) == 0 && swapped >= 1 && swapped <= 3)
        c.fail_at(4, cat("big-endian GGUF file (version field reads 0x", hex32(part->version), " = version ",
                         swapped, " byte-swapped); hmoe reads little-endian GGUF files only"));
      c.fail_at(4, cat("unsupported GGUF version ", part->version, " (hmoe reads versions 2 and 3)"));
    }
    const auto n_tensors = c.read<std::uint64_t>("the tensor count");
    const auto n_kv = c.read<std::uint64_t>("the metadata entry count");
    // Each entry needs at least: key length + 1 key byte + type + 1 value byte.
    constexpr std::uint64_t min_kv_bytes = 8 + 1 + 4 + 1;
    // Each tensor info needs at least: name length + 1 name byte + n_dims + ggml type + offset.
    constexpr std::uint64_t min_info_bytes = 8 + 1 + 4 + 4 + 8;
    const auto kv_bytes = io::checked_mul(n_kv, min_kv_bytes);
    if (!kv_bytes || *kv_bytes > c.remaining())
      c.fail_at(16, cat("the header claims ", n_kv, " metadata entries, which cannot fit in the ", c.remaining(),
                        " bytes left (each needs at least ", min_kv_bytes, ")"));
    const auto info_bytes = io::checked_mul(n_tensors, min_info_bytes);
    if (!info_bytes || *info_bytes > c.remaining() - *kv_bytes)
      c.fail_at(8, cat("the header claims ", n_tensors, " tensors, whose infos cannot fit in the ",
                       c.remaining() - *kv_bytes, " bytes left after the metadata (each needs at least ",
                       min_info_bytes, ")"));

    // Metadata.
    // Reservations are capped: a count only bounds what the file can hold, and the vectors hold more bytes
    // per entry than the file does, so reserving a hostile count in full could exhaust memory before the
    // entries themselves are found missing.
    part->metadata.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n_kv, max_reserve)));
    std::vector<std::uint64_t> kv_offsets;
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::uint64_t start = c.offset();
      c.set_subject(cat("metadata entry #", i));
      const auto key = c.read_string("the key");
      if (key.empty()) c.fail_at(start, cat("metadata entry #", i, " has an empty key"));
      c.set_subject(cat("metadata key '", key, "'"));
      const std::uint64_t type_at = c.offset();
      const auto raw_type = c.read<std::uint32_t>("the value type");
      const auto type = value_type_from_id(raw_type);
      if (!type) c.fail_at(type_at, cat("metadata key '", key, "' has unknown value type ", raw_type));
      part->metadata.push_back(Value::read(c, *type, key, start));
      const auto [it, fresh] = part->key_index.emplace(key, part->metadata.size() - 1);
      if (!fresh)
        c.fail_at(start, cat("duplicate metadata key '", key, "' (first at byte ", kv_offsets[it->second], ")"));
      kv_offsets.push_back(start);
    }

    if (const Value* a = part->find("general.alignment")) {
      if (a->type() != ValueType::UINT32)
        c.fail_at(a->offset(), cat("general.alignment must be a UINT32, not ", a->describe()));
      const auto alignment = a->as<std::uint32_t>();
      if (!io::is_power_of_two(alignment))
        c.fail_at(a->offset(), cat("general.alignment is ", alignment, ", not a nonzero power of two"));
      part->alignment = alignment;
    }

    // Tensor infos.
    part->tensors.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(n_tensors, max_reserve)));
    std::vector<std::uint64_t> offset_field_at;
    std::vector<std::uint64_t> byte_counts;
    std::unordered_map<std::string_view, std::size_t> names;
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      const std::uint64_t start = c.offset();
      c.set_subject(cat("tensor info #", i));
      const auto name = c.read_string("the tensor name");
      if (name.empty()) c.fail_at(start, cat("tensor info #", i, " has an empty name"));
      c.set_subject(cat("tensor ", name));
      TensorInfo t;
      t.name = std::string(name);
      t.file_ = file;

      const std::uint64_t dims_at = c.offset();
      const auto n_dims = c.read<std::uint32_t>("the dimension count");
      if (n_dims > max_dims)
        c.fail_at(dims_at, cat("tensor ", name, " has ", n_dims, " dimensions; GGUF allows at most ", max_dims));
      t.n_dims = static_cast<int>(n_dims);
      std::uint64_t n_elements = 1;
      bool overflow = false;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        const std::uint64_t at = c.offset();
        t.ne[d] = c.read<std::uint64_t>([d] { return cat("dimension ", d); });
        if (t.ne[d] == 0) c.fail_at(at, cat("tensor ", name, " has size 0 in dimension ", d));
        const auto product = io::checked_mul(n_elements, t.ne[d]);
        overflow = overflow || !product;
        n_elements = product.value_or(0);
      }
      if (overflow)
        c.fail_at(dims_at, cat("tensor ", name, " has shape ", shape_string(t),
                               ", whose element count overflows 64 bits"));

      const std::uint64_t type_at = c.offset();
      const auto type_id = c.read<std::uint32_t>("the ggml type");
      const auto info = ggml_type_info(type_id);
      if (!info) c.fail_at(type_at, cat("tensor ", name, " has unknown ggml type id ", type_id));
      t.type = info->type;
      if (t.ne[0] % info->block_elems != 0)
        c.fail_at(dims_at, cat("tensor ", name, " has type ", info->name, ", whose blocks hold ", info->block_elems,
                               " values, but its rows (ne[0]) have ", t.ne[0]));
      const auto n_bytes = io::checked_mul(n_elements / info->block_elems, info->block_bytes);
      if (!n_bytes)
        c.fail_at(dims_at, cat("tensor ", name, " of shape ", shape_string(t), " and type ", info->name,
                               " has a byte size that overflows 64 bits"));

      const std::uint64_t offset_at = c.offset();
      t.offset = c.read<std::uint64_t>("the data offset");
      if (t.offset % part->alignment != 0)
        c.fail_at(offset_at, cat("tensor ", name, " has data offset ", t.offset, ", not a multiple of the alignment ",
                                 part->alignment));
      const auto [it, fresh] = names.emplace(name, part->tensors.size());
      if (!fresh)
        c.fail_at(start, cat("duplicate tensor name ", name, " (first at byte ",
                             part->tensor_info_offsets[it->second], ")"));
      part->tensors.push_back(std::move(t));
      byte_counts.push_back(*n_bytes);
      part->tensor_info_offsets.push_back(start);
      offset_field_at.push_back(offset_at);
    }

    // Data section: it starts at the next multiple of the alignment. A file without tensors may end before it.
    const auto data_start = io::align_up(c.offset(), part->alignment);
    if (!data_start) c.fail_at(c.offset(), "the data section start overflows 64 bits");
    part->data_offset = *data_start;
    const std::uint64_t size = c.size();
    for (std::size_t i = 0; i < part->tensors.size(); ++i) {
      TensorInfo& t = part->tensors[i];
      const std::uint64_t n_bytes = byte_counts[i];
      const auto begin = io::checked_add(*data_start, t.offset);
      const auto end = begin ? io::checked_add(*begin, n_bytes) : std::nullopt;
      if (!end || *end > size)
        c.fail_at(offset_field_at[i],
                  cat("the data of tensor ", t.name, " (", n_bytes, " bytes at data offset ", t.offset,
                      ", i.e. file bytes ", *data_start, " + ", t.offset, " ...) runs past the end of the file (",
                      size, " bytes)"));
      t.file_offset_ = *begin;
      t.data = c.bytes().subspan(static_cast<std::size_t>(*begin), static_cast<std::size_t>(n_bytes));
    }
    // No two tensors may share bytes: sorted by start, each must end before the next begins.
    std::vector<std::size_t> order(part->tensors.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return part->tensors[a].offset < part->tensors[b].offset; });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const TensorInfo& a = part->tensors[order[k - 1]];
      const TensorInfo& b = part->tensors[order[k]];
      if (a.file_offset() + a.n_bytes() > b.file_offset())
        c.fail_at(offset_field_at[order[k]],
                  cat("the data of tensor ", b.name, " (file bytes ", b.file_offset(), "..", b.file_offset() + b.n_bytes(),
                      ") overlaps the data of tensor ", a.name, " (file bytes ", a.file_offset(), "..",
                      a.file_offset() + a.n_bytes(), ")"));
    }
    return part;
  }

  static std::string hex32(std::uint32_t v) {
    std::string s(8, '0');
    for (int i = 7; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = "0123456789abcdef"[v & 15];
    return s;
  }

  static std::string shape_string(const TensorInfo& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += detail::cat(d ? ", " : "", t.ne[static_cast<std::size_t>(d)]);
    return s + "]";
  }

  std::unique_ptr<State> s_;
};

/// Refuses a file holding a tensor whose type is not in `runnable`, naming the first such tensor, its type and
/// what is supported, so an unsupported quantization fails at load time rather than deep inside a kernel.
inline void require_types(const File& f, std::span<const GgmlType> runnable) {
  for (const TensorInfo& t : f.tensors()) {
    if (std::find(runnable.begin(), runnable.end(), t.type) != runnable.end()) continue;
    std::string supported;
    for (GgmlType r : runnable) supported += detail::cat(supported.empty() ? "" : ", ", ggml_type_name(r));
    throw Error(detail::cat(t.file(), ": tensor ", t.name, " has type ", ggml_type_name(t.type), " (",
                            static_cast<std::uint32_t>(t.type), "), which hmoe does not run; supported: ",
                            supported.empty() ? std::string("none") : supported));
  }
}

inline void require_types(const File& f, std::initializer_list<GgmlType> runnable) {
  require_types(f, std::span<const GgmlType>(runnable.begin(), runnable.size()));
}

}  // namespace hmoe::gguf
