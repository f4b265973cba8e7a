/// \file
/// \brief One GGUF metadata value (scalar, string, or array of scalars, strings or arrays) and its
///        checked conversions to C++ types.
///
/// A Value does not copy the file: scalars, strings and arrays of fixed-size scalars are views into the
/// mapping and are decoded on access. Only arrays of strings keep an index (one string_view per element, found
/// while validating them) and arrays of arrays keep their elements as child Values. Values therefore live only
/// as long as the gguf::File they came from.
///
/// Conversions never truncate silently: an integer is handed out only if it fits the requested type, and a
/// failed conversion throws an Error naming the file, key and stored value.
#pragma once

#include <array>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "hmoe/io/byte_cursor.hpp"
#include "hmoe/io/checked_arith.hpp"
#include "hmoe/io/gguf_error.hpp"

namespace hmoe::gguf {

/// The value type ids of the GGUF format.
enum class ValueType : std::uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

inline constexpr std::array<std::string_view, 13> value_type_names{
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};

constexpr std::string_view value_type_name(ValueType t) noexcept {
  const auto i = static_cast<std::uint32_t>(t);
  return i < value_type_names.size() ? value_type_names[i] : std::string_view("?");
}

/// The type for a raw id read from a file, or nothing when GGUF has no such type.
constexpr std::optional<ValueType> value_type_from_id(std::uint32_t id) noexcept {
  if (id >= value_type_names.size()) return std::nullopt;
  return static_cast<ValueType>(id);
}

/// Bytes of one value of a fixed-size type; 0 for STRING and ARRAY.
constexpr std::uint64_t value_type_size(ValueType t) noexcept {
  switch (t) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    case ValueType::STRING: case ValueType::ARRAY: return 0;
  }
  return 0;
}

/// The fewest bytes any value of type `t` occupies: what bounds an array's element count by the bytes left.
constexpr std::uint64_t value_min_encoded_size(ValueType t) noexcept {
  if (t == ValueType::STRING) return 8;       // the length
  if (t == ValueType::ARRAY) return 4 + 8;    // element type and count
  return value_type_size(t);
}

/// C++ types a metadata value converts to.
/// C++ types a metadata value converts to: bool, the signed and unsigned integer types (not the character
/// types), floating point, std::string and std::string_view.
template <class T>
concept MetadataType =
    std::same_as<T, bool> || std::floating_point<T> || std::same_as<T, std::string> ||
    std::same_as<T, std::string_view> ||
    (std::integral<T> && !std::same_as<T, char> && !std::same_as<T, wchar_t> && !std::same_as<T, char8_t> &&
     !std::same_as<T, char16_t> && !std::same_as<T, char32_t>);

namespace detail {

/// The name of a conversion target, for messages.
template <MetadataType T>
constexpr std::string_view target_name() {
  if constexpr (std::same_as<T, bool>) return "bool";
  else if constexpr (std::same_as<T, std::string> || std::same_as<T, std::string_view>) return "string";
  else if constexpr (std::same_as<T, float>) return "float";
  else if constexpr (std::same_as<T, double>) return "double";
  else if constexpr (std::floating_point<T>) return "long double";
  else {
    constexpr std::array<std::string_view, 9> u{"", "uint8", "uint16", "", "uint32", "", "", "", "uint64"};
    constexpr std::array<std::string_view, 9> s{"", "int8", "int16", "", "int32", "", "", "", "int64"};
    return std::is_signed_v<T> ? s[sizeof(T)] : u[sizeof(T)];
  }
}

/// A decoded fixed-size value: integers widened to 64 bits keeping their sign, floats to double.
struct Scalar {
  ValueType type;
  std::uint64_t u = 0;   // UINT*, BOOL
  std::int64_t i = 0;    // INT*
  double f = 0;          // FLOAT*

  static Scalar decode(ValueType t, const std::byte* p) noexcept {
    Scalar s{t};
    switch (t) {
      case ValueType::UINT8: case ValueType::BOOL: s.u = load_le<std::uint8_t>(p); break;
      case ValueType::UINT16: s.u = load_le<std::uint16_t>(p); break;
      case ValueType::UINT32: s.u = load_le<std::uint32_t>(p); break;
      case ValueType::UINT64: s.u = load_le<std::uint64_t>(p); break;
      case ValueType::INT8: s.i = load_le<std::int8_t>(p); break;
      case ValueType::INT16: s.i = load_le<std::int16_t>(p); break;
      case ValueType::INT32: s.i = load_le<std::int32_t>(p); break;
      case ValueType::INT64: s.i = load_le<std::int64_t>(p); break;
      case ValueType::FLOAT32: s.f = load_le<float>(p); break;
      case ValueType::FLOAT64: s.f = load_le<double>(p); break;
      case ValueType::STRING: case ValueType::ARRAY: break;
    }
    return s;
  }

  bool is_unsigned() const noexcept {
    return type == ValueType::UINT8 || type == ValueType::UINT16 || type == ValueType::UINT32 ||
           type == ValueType::UINT64;
  }
  bool is_signed() const noexcept {
    return type == ValueType::INT8 || type == ValueType::INT16 || type == ValueType::INT32 ||
           type == ValueType::INT64;
  }
  bool is_float() const noexcept { return type == ValueType::FLOAT32 || type == ValueType::FLOAT64; }

  /// The value as T, or nothing when it is of another kind or does not fit.
  template <MetadataType T>
  std::optional<T> to() const noexcept {
    if constexpr (std::same_as<T, bool>) {
      if (type == ValueType::BOOL) return u != 0;
    } else if constexpr (std::integral<T>) {
      if (is_unsigned() && std::in_range<T>(u)) return static_cast<T>(u);
      if (is_signed() && std::in_range<T>(i)) return static_cast<T>(i);
    } else if constexpr (std::floating_point<T>) {
      if (is_unsigned()) return static_cast<T>(u);
      if (is_signed()) return static_cast<T>(i);
      // Narrowing a FLOAT64 to float loses precision (accepted) but must not turn a finite value into inf.
      if (is_float() && (!std::isfinite(f) || std::fabs(f) <= static_cast<double>(std::numeric_limits<T>::max())))
        return static_cast<T>(f);
    }
    return std::nullopt;
  }

  std::string to_string() const {
    if (type == ValueType::BOOL) return u ? "true" : "false";
    if (is_unsigned()) return cat(u);
    if (is_signed()) return cat(i);
    char buf[32];
    // A FLOAT32 is shown as the shortest float that reads back the same, not as its (longer) double expansion.
    const auto r = type == ValueType::FLOAT32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(f))
                                              : std::to_chars(buf, buf + sizeof buf, f);
    return std::string(buf, r.ptr);
  }
};

}  // namespace detail

class Value {
 public:
  /// Arrays may hold arrays; deeper nesting than this is refused (it would only serve to exhaust the stack).
  static constexpr int max_array_depth = 16;
  /// The most elements reserved up front from an array count read from a file (larger arrays grow as their
  /// elements are actually read), so a hostile count cannot make the reader allocate far more than the file.
  static constexpr std::uint64_t max_reserve = std::uint64_t{1} << 16;

  Value() = default;

  ValueType type() const noexcept { return type_; }
  bool is_array() const noexcept { return type_ == ValueType::ARRAY; }
  /// The key this value is stored under (for elements of arrays: the key of the outermost array).
  std::string_view key() const noexcept { return key_; }
  /// The file holding the value, and the byte where its entry starts (for arrays nested in arrays: where the
  /// element's type field starts).
  std::string_view file() const noexcept { return file_; }
  std::uint64_t offset() const noexcept { return offset_; }

  /// The element type of an array; an Error for other values.
  ValueType array_type() const {
    require_array();
    return elem_type_;
  }
  /// The element count of an array; an Error for other values.
  std::size_t size() const {
    require_array();
    return static_cast<std::size_t>(count_);
  }

  /// The value as T: integers of any stored integer type that fit T; floating point from FLOAT32/FLOAT64 or
  /// any integer; bool from BOOL; std::string / std::string_view (a view into the mapping) from STRING.
  template <MetadataType T>
  T as() const {
    if (is_array()) fail(cat("holds ", describe(), ", not a single value (wanted ", detail::target_name<T>(), ")"));
    return convert<T>(type_, bytes_.data(), std::nullopt);
  }

  /// Element `i` of an array of scalars or strings, with the conversions of as().
  template <MetadataType T>
  T at(std::size_t i) const {
    require_array();
    if (i >= count_) fail(cat("index ", i, " is out of range for an array of ", count_, " elements"));
    if (elem_type_ == ValueType::STRING) {
      if constexpr (std::same_as<T, std::string> || std::same_as<T, std::string_view>)
        return T(strings_[i]);
      else
        fail(cat("element ", i, " is the STRING ", detail::quoted(strings_[i]), ", which cannot be read as ",
                 detail::target_name<T>()));
    }
    if (elem_type_ == ValueType::ARRAY)
      fail(cat("element ", i, " is an array, which cannot be read as ", detail::target_name<T>(),
               " (use element())"));
    return convert<T>(elem_type_, bytes_.data() + i * value_type_size(elem_type_), i);
  }

  /// The whole array, converted as at() does.
  template <MetadataType T>
  std::vector<T> to_vector() const {
    require_array();
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(count_));
    for (std::size_t i = 0; i < count_; ++i) out.push_back(at<T>(i));
    return out;
  }

  /// Element `i` of an array of arrays.
  const Value& element(std::size_t i) const {
    require_array();
    if (elem_type_ != ValueType::ARRAY)
      fail(cat("element() needs an array of arrays, but this is ", describe()));
    if (i >= count_) fail(cat("index ", i, " is out of range for an array of ", count_, " elements"));
    return children_[i];
  }

  /// "UINT32 7", "STRING \"abc\"", "ARRAY of 3 INT32": the value for messages.
  std::string describe() const {
    if (type_ == ValueType::STRING) return cat("STRING ", detail::quoted(string_view()));
    if (type_ == ValueType::ARRAY) return cat("ARRAY of ", count_, " ", value_type_name(elem_type_));
    return cat(value_type_name(type_), " ", detail::Scalar::decode(type_, bytes_.data()).to_string());
  }

  /// Reads a value of type `type` at the cursor and validates it: every length and count is checked against
  /// the bytes left before anything is reserved or read, and BOOLs must be 0 or 1. `entry_offset` is where the
  /// key-value entry began. Used by gguf::File.
  static Value read(ByteCursor& c, ValueType type, std::string_view key, std::uint64_t entry_offset,
                    int depth = 0) {
    Value v;
    v.file_ = c.file();
    v.key_ = key;
    v.offset_ = entry_offset;
    v.type_ = type;
    if (type == ValueType::STRING) {
      const auto s = c.read_string("the string value");
      v.bytes_ = std::as_bytes(std::span(s.data(), s.size()));
      return v;
    }
    if (type != ValueType::ARRAY) {
      const std::uint64_t at = c.offset();
      v.bytes_ = c.take(value_type_size(type), [&] { return cat("the ", value_type_name(type), " value"); });
      if (type == ValueType::BOOL) check_bools(c, v.bytes_, at);
      return v;
    }

    if (depth >= max_array_depth)
      c.fail_at(c.offset(), cat("metadata key '", key, "' nests arrays more than ", max_array_depth, " deep"));
    const std::uint64_t type_at = c.offset();
    const auto raw_elem = c.read<std::uint32_t>("the array element type");
    const auto elem = value_type_from_id(raw_elem);
    if (!elem) c.fail_at(type_at, cat("metadata key '", key, "' has an array of unknown value type ", raw_elem));
    v.elem_type_ = *elem;
    const std::uint64_t count_at = c.offset();
    v.count_ = c.read<std::uint64_t>("the array length");
    // Bound the count by the bytes left before trusting it with a reservation or a loop.
    const auto min_bytes = io::checked_mul(v.count_, value_min_encoded_size(v.elem_type_));
    if (!min_bytes || *min_bytes > c.remaining())
      c.fail_at(count_at, cat("metadata key '", key, "' claims an array of ", v.count_, " ",
                              value_type_name(v.elem_type_), " elements, which cannot fit in the ",
                              c.remaining(), " bytes left in the file"));

    if (v.elem_type_ == ValueType::STRING) {
      // Capped: see gguf::max_reserve; an array of empty strings holds 8 file bytes per 16-byte view.
      v.strings_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(v.count_, max_reserve)));
      for (std::uint64_t i = 0; i < v.count_; ++i)
        v.strings_.push_back(c.read_string([i] { return cat("string element ", i); }));
    } else if (v.elem_type_ == ValueType::ARRAY) {
      v.children_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(v.count_, max_reserve)));
      for (std::uint64_t i = 0; i < v.count_; ++i)
        v.children_.push_back(read(c, ValueType::ARRAY, key, c.offset(), depth + 1));
    } else {
      const std::uint64_t at = c.offset();
      v.bytes_ = c.take(*min_bytes, "the array elements");
      if (v.elem_type_ == ValueType::BOOL) check_bools(c, v.bytes_, at);
    }
    return v;
  }

 private:
  static void check_bools(const ByteCursor& c, std::span<const std::byte> bytes, std::uint64_t at) {
    for (std::size_t i = 0; i < bytes.size(); ++i)
      if (std::to_integer<unsigned>(bytes[i]) > 1)
        c.fail_at(at + i, cat(c.subject(), ": BOOL byte ", std::to_integer<unsigned>(bytes[i]),
                              " is neither 0 nor 1"));
  }

  static std::string cat(const auto&... args) { return detail::cat(args...); }

  std::string_view string_view() const noexcept {
    return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
  }

  void require_array() const {
    if (!is_array()) fail(cat("holds ", describe(), ", not an array"));
  }

  [[noreturn]] void fail(std::string_view reason) const {
    detail::fail_at(file_, offset_, cat("metadata key '", key_, "' ", reason));
  }

  template <MetadataType T>
  T convert(ValueType t, const std::byte* p, std::optional<std::size_t> index) const {
    const std::string where = index ? cat("element ", *index, " ") : std::string();
    if constexpr (std::same_as<T, std::string> || std::same_as<T, std::string_view>) {
      if (t != ValueType::STRING) fail(cat(where, "holds ", describe_at(t, p), ", which cannot be read as string"));
      return T(string_view());
    } else {
      if (t == ValueType::STRING)
        fail(cat(where, "holds ", describe_at(t, p), ", which cannot be read as ", detail::target_name<T>()));
      const auto s = detail::Scalar::decode(t, p);
      if (const auto r = s.template to<T>()) return *r;
      const bool same_kind = std::same_as<T, bool> ? t == ValueType::BOOL
                             : std::floating_point<T> ? !(t == ValueType::BOOL)
                                                      : s.is_unsigned() || s.is_signed();
      fail(cat(where, "holds ", describe_at(t, p),
               same_kind ? ", which does not fit in " : ", which cannot be read as ", detail::target_name<T>()));
    }
  }

  std::string describe_at(ValueType t, const std::byte* p) const {
    if (t == ValueType::STRING) return describe();
    return cat(value_type_name(t), " ", detail::Scalar::decode(t, p).to_string());
  }

  std::string_view file_;
  std::string_view key_;
  std::uint64_t offset_ = 0;
  ValueType type_ = ValueType::UINT8;
  ValueType elem_type_ = ValueType::UINT8;
  std::uint64_t count_ = 0;
  std::span<const std::byte> bytes_;        // scalar, string bytes, or the elements of a fixed-size array
  std::vector<std::string_view> strings_;   // elements of an array of strings
  std::vector<Value> children_;             // elements of an array of arrays
};

}  // namespace hmoe::gguf
