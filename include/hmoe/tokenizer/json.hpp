/// \file
/// \brief A minimal JSON reader (RFC 8259) producing a small document tree: enough for HF tokenizer.json and
///        tokenizer_config.json. Objects keep their members in file order.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hmoe/tokenizer/json_string.hpp"

namespace hmoe::tokenizer::json {

class Value {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Kind kind() const noexcept { return kind_; }
  bool is_null() const noexcept { return kind_ == Kind::Null; }
  bool is_bool() const noexcept { return kind_ == Kind::Bool; }
  bool is_number() const noexcept { return kind_ == Kind::Number; }
  bool is_string() const noexcept { return kind_ == Kind::String; }
  bool is_array() const noexcept { return kind_ == Kind::Array; }
  bool is_object() const noexcept { return kind_ == Kind::Object; }
  /// Whether the number is an integer that fits int64 (written without fraction or exponent).
  bool is_integer() const noexcept { return kind_ == Kind::Number && integral_; }

  bool as_bool() const noexcept { return b_; }
  double as_double() const noexcept { return num_; }
  std::int64_t as_int() const noexcept { return int_; }
  const std::string& as_string() const noexcept { return str_; }
  const std::vector<Value>& items() const noexcept { return arr_; }
  const std::vector<std::pair<std::string, Value>>& members() const noexcept { return obj_; }

  /// The member named `key` of an object (the first, if repeated), or nullptr (also for non-objects).
  const Value* find(std::string_view key) const noexcept {
    if (kind_ != Kind::Object) return nullptr;
    for (const auto& [k, v] : obj_)
      if (k == key) return &v;
    return nullptr;
  }

  static const char* kind_name(Kind k) noexcept {
    switch (k) {
      case Kind::Null: return "null";
      case Kind::Bool: return "a boolean";
      case Kind::Number: return "a number";
      case Kind::String: return "a string";
      case Kind::Array: return "an array";
      case Kind::Object: return "an object";
    }
    return "?";
  }

 private:
  friend class Parser;
  Kind kind_ = Kind::Null;
  bool b_ = false;
  bool integral_ = false;
  double num_ = 0;
  std::int64_t int_ = 0;
  std::string str_;
  std::vector<Value> arr_;
  std::vector<std::pair<std::string, Value>> obj_;
};

class Parser {
 public:
  static constexpr int max_depth = 256;

  /// Parses a whole document. Throws ParseError ("byte N: ...").
  static Value parse(std::string_view text) {
    Parser p(text);
    // A UTF-8 byte order mark is tolerated.
    if (text.substr(0, 3) == "\xEF\xBB\xBF") p.pos_ = 3;
    Value v = p.value(0);
    skip_ws(p.in_, p.pos_);
    if (p.pos_ != p.in_.size()) detail::fail(p.pos_, "unexpected text after the JSON value");
    return v;
  }

 private:
  explicit Parser(std::string_view in) : in_(in) {}

  Value value(int depth) {
    if (depth > max_depth) detail::fail(pos_, "nesting too deep");
    skip_ws(in_, pos_);
    if (pos_ >= in_.size()) detail::fail(pos_, "unexpected end of input");
    Value v;
    const char c = in_[pos_];
    if (c == '"') {
      v.kind_ = Value::Kind::String;
      read_string(in_, pos_, v.str_);
    } else if (c == '{') {
      v.kind_ = Value::Kind::Object;
      ++pos_;
      skip_ws(in_, pos_);
      if (pos_ < in_.size() && in_[pos_] == '}') {
        ++pos_;
        return v;
      }
      while (true) {
        skip_ws(in_, pos_);
        std::string key = read_string(in_, pos_);
        skip_ws(in_, pos_);
        if (pos_ >= in_.size() || in_[pos_] != ':') detail::fail(pos_, "expected ':'");
        ++pos_;
        v.obj_.emplace_back(std::move(key), value(depth + 1));
        skip_ws(in_, pos_);
        if (pos_ < in_.size() && in_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < in_.size() && in_[pos_] == '}') {
          ++pos_;
          break;
        }
        detail::fail(pos_, "expected ',' or '}'");
      }
    } else if (c == '[') {
      v.kind_ = Value::Kind::Array;
      ++pos_;
      skip_ws(in_, pos_);
      if (pos_ < in_.size() && in_[pos_] == ']') {
        ++pos_;
        return v;
      }
      while (true) {
        v.arr_.push_back(value(depth + 1));
        skip_ws(in_, pos_);
        if (pos_ < in_.size() && in_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < in_.size() && in_[pos_] == ']') {
          ++pos_;
          break;
        }
        detail::fail(pos_, "expected ',' or ']'");
      }
    } else if (literal("true")) {
      v.kind_ = Value::Kind::Bool;
      v.b_ = true;
    } else if (literal("false")) {
      v.kind_ = Value::Kind::Bool;
    } else if (literal("null")) {
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number(v);
    } else {
      detail::fail(pos_, std::string("unexpected character '") + c + "'");
    }
    return v;
  }

  bool literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  void number(Value& v) {
    // Validate the JSON number grammar, then convert.
    const std::size_t start = pos_;
    std::size_t i = pos_;
    bool integral = true;
    if (in_[i] == '-') ++i;
    if (i >= in_.size() || !(in_[i] >= '0' && in_[i] <= '9')) detail::fail(i, "bad number");
    if (in_[i] == '0') {
      ++i;
    } else {
      while (i < in_.size() && in_[i] >= '0' && in_[i] <= '9') ++i;
    }
    if (i < in_.size() && in_[i] == '.') {
      integral = false;
      ++i;
      if (i >= in_.size() || !(in_[i] >= '0' && in_[i] <= '9')) detail::fail(i, "bad number");
      while (i < in_.size() && in_[i] >= '0' && in_[i] <= '9') ++i;
    }
    if (i < in_.size() && (in_[i] == 'e' || in_[i] == 'E')) {
      integral = false;
      ++i;
      if (i < in_.size() && (in_[i] == '+' || in_[i] == '-')) ++i;
      if (i >= in_.size() || !(in_[i] >= '0' && in_[i] <= '9')) detail::fail(i, "bad number");
      while (i < in_.size() && in_[i] >= '0' && in_[i] <= '9') ++i;
    }
    const char* b = in_.data() + start;
    const char* e = in_.data() + i;
    v.kind_ = Value::Kind::Number;
    if (integral) {
      const auto r = std::from_chars(b, e, v.int_);
      v.integral_ = r.ec == std::errc() && r.ptr == e;
    }
    if (v.integral_) {
      v.num_ = static_cast<double>(v.int_);
    } else {
      const auto r = std::from_chars(b, e, v.num_);
      if (r.ec != std::errc() && r.ec != std::errc::result_out_of_range) detail::fail(start, "bad number");
    }
    pos_ = i;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

/// Parses a whole JSON document. Throws ParseError.
inline Value parse(std::string_view text) { return Parser::parse(text); }

}  // namespace hmoe::tokenizer::json
