/// \file
/// \brief Byte-level BPE tokenizer for DeepSeek models, read from GGUF metadata (`tokenizer.ggml.*`, as
///        llama.cpp writes it) or from a Hugging Face `tokenizer.json`; and a streaming decoder.
///
/// Encoding, as HF tokenizers and llama.cpp do it:
///  1. Special and added tokens are cut out of the text first (leftmost-longest match). With parse_special off,
///     control/special tokens are not recognised (their text is encoded as ordinary text) while user-defined
///     (non-special added) tokens still are, which is what both llama.cpp and HF do.
///  2. Each remaining stretch is pre-tokenized (pre_tokenizer.hpp: PCRE2 regex splits).
///  3. Each piece is encoded by byte-level BPE (bpe.hpp); a cache remembers the ids of recent pieces.
/// No BOS is added: callers add bos() when add_bos() says so.
///
/// From GGUF, added tokens come from `tokenizer.ggml.token_type`: 3 (control) are special, 4 (user-defined)
/// and 2 (unknown) are added text; from tokenizer.json, `added_tokens` with their `special` flag, matched in
/// HF's two passes (first those with `normalized: false`, then the rest). Decoding maps ordinary tokens back
/// through the byte-level alphabet; special and added tokens give their text (control/special tokens give
/// nothing when decoding with special = false).
///
/// A Tokenizer is cheap to copy (copies share the immutable tables and the cache) and safe to use from several
/// threads at once.
///
/// Link target: hmoe::tokenizer (hmoe::hmoe plus PCRE2).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hmoe/io/gguf.hpp"
#include "hmoe/tokenizer/added_tokens.hpp"
#include "hmoe/tokenizer/bpe.hpp"
#include "hmoe/tokenizer/byte_level.hpp"
#include "hmoe/tokenizer/error.hpp"
#include "hmoe/tokenizer/json.hpp"
#include "hmoe/tokenizer/pre_tokenizer.hpp"
#include "hmoe/tokenizer/regex.hpp"
#include "hmoe/tokenizer/utf8.hpp"

namespace hmoe::tokenizer {

/// llama.cpp's token types (tokenizer.ggml.token_type).
enum class TokenType : std::int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

namespace detail {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Rust's char::is_whitespace (the White_Space property), for lstrip / rstrip.
constexpr bool is_white_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/// The code point that ends at s[end) (the last one before `end`), or nothing.
inline std::optional<std::pair<char32_t, std::size_t>> last_code_point(std::string_view s, std::size_t end) {
  if (end == 0) return std::nullopt;
  std::size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  const utf8::Step st = utf8::step(s, b);
  if (st.kind != utf8::Step::Valid || b + st.length != end) return std::nullopt;
  return std::pair{st.code_point, b};
}

/// Whether a character is a word character as HF decides it for single_word added tokens (the Rust regex
/// crate's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners).
inline bool is_word_char(std::string_view one_char) {
  static const Regex re("^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]");
  bool found = false;
  re.for_each_match(one_char, [&](std::size_t, std::size_t) { found = true; });
  return found;
}

}  // namespace detail

class Tokenizer {
 public:
  /// The default number of distinct pieces whose ids the encoder remembers.
  static constexpr std::size_t default_cache_capacity = 1 << 16;
  /// Pieces longer than this (bytes) are never cached.
  static constexpr std::size_t max_cached_piece = 256;

  /// Reads the tokenizer from a GGUF file's metadata. Throws std::runtime_error (gguf::Error or
  /// tokenizer::Error) naming the file and the key.
  static Tokenizer from_gguf(const gguf::File& f) {
    auto impl = std::make_shared<Impl>();
    impl->source = f.path().string();
    const std::string& path = impl->source;
    const auto fail = [&](const std::string& key, const std::string& msg) -> Error {
      return Error(path + ": " + key + ": " + msg);
    };

    const std::string model = f.get<std::string>("tokenizer.ggml.model");
    if (model != "gpt2")
      throw fail("tokenizer.ggml.model",
                 "is '" + model + "', but only byte-level BPE tokenizers ('gpt2', as DeepSeek models use) are supported");
    const std::string pre = f.get<std::string>("tokenizer.ggml.pre");
    try {
      impl->pre = PreTokenizer::preset(pre);
    } catch (const Error& e) {
      throw fail("tokenizer.ggml.pre", e.what());
    }

    const gguf::Value& tokens = f.at("tokenizer.ggml.tokens");
    const std::size_t n = tokens.size();
    if (n == 0) throw fail("tokenizer.ggml.tokens", "is empty");
    if (n > static_cast<std::size_t>(INT32_MAX)) throw fail("tokenizer.ggml.tokens", "has too many tokens");
    const gguf::Value* types = f.find("tokenizer.ggml.token_type");
    if (types && types->size() != n)
      throw fail("tokenizer.ggml.token_type",
                 "has " + std::to_string(types->size()) + " entries but tokenizer.ggml.tokens has " + std::to_string(n));

    impl->tokens.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      TokenInfo& t = impl->tokens[i];
      t.text = tokens.at<std::string_view>(i);
      const std::int32_t type = types ? types->at<std::int32_t>(i) : 1;
      if (type < 0 || type > 6)
        throw fail("tokenizer.ggml.token_type", "token " + std::to_string(i) + " has unknown type " + std::to_string(type));
      t.type = static_cast<TokenType>(type);
    }
    impl->finish_tokens();

    // Special and added tokens: control and unknown only when parsing special tokens, user-defined always.
    AddedTokenTrie with_special, without_special;
    for (std::size_t i = 0; i < n; ++i) {
      const TokenInfo& t = impl->tokens[i];
      const AddedTokenTrie::Entry e{static_cast<std::int32_t>(i)};
      if (t.type == TokenType::Control || t.type == TokenType::Unknown || t.type == TokenType::UserDefined)
        with_special.add(t.text, e);
      if (t.type == TokenType::UserDefined) without_special.add(t.text, e);
    }
    if (!with_special.empty()) impl->passes_special.push_back(std::move(with_special));
    if (!without_special.empty()) impl->passes_plain.push_back(std::move(without_special));

    const gguf::Value& merges = f.at("tokenizer.ggml.merges");
    impl->bpe.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const auto m = merges.at<std::string_view>(i);
      const auto sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (sp == std::string_view::npos)
        throw fail("tokenizer.ggml.merges", "merge " + std::to_string(i) + " " + json::quote(m) + " is not two tokens separated by a space");
      try {
        impl->add_merge(m.substr(0, sp), m.substr(sp + 1), static_cast<std::int32_t>(i), /*overwrite=*/false);
      } catch (const Error& e) {
        throw fail("tokenizer.ggml.merges", "merge " + std::to_string(i) + " " + json::quote(m) + ": " + e.what());
      }
    }

    const auto special_id = [&](const char* key) -> std::int32_t {
      const auto v = f.get_optional<std::int64_t>(key);
      if (!v) return -1;
      if (*v < 0 || *v >= static_cast<std::int64_t>(n))
        throw fail(key, "is " + std::to_string(*v) + ", outside the vocabulary of " + std::to_string(n) + " tokens");
      return static_cast<std::int32_t>(*v);
    };
    impl->bos = special_id("tokenizer.ggml.bos_token_id");
    impl->eos = special_id("tokenizer.ggml.eos_token_id");
    impl->add_bos = f.get_optional<bool>("tokenizer.ggml.add_bos_token").value_or(false);
    return Tokenizer(std::move(impl));
  }

  /// Reads a Hugging Face tokenizer.json (model BPE, byte-level). BOS/EOS and add_bos_token come from a
  /// tokenizer_config.json in the same directory when there is one. Throws Error naming the file and the part
  /// that is missing or unsupported.
  static Tokenizer from_json(const std::filesystem::path& tokenizer_json) {
    auto impl = std::make_shared<Impl>();
    impl->source = tokenizer_json.string();
    const std::string& path = impl->source;
    const auto fail = [&](const std::string& where, const std::string& msg) -> Error {
      return Error(path + ": " + where + ": " + msg);
    };
    const json::Value doc = read_json(tokenizer_json);
    if (!doc.is_object()) throw Error(path + ": not a JSON object");

    // model
    const json::Value* model = doc.find("model");
    if (!model || !model->is_object()) throw fail("model", "missing");
    const json::Value* type = model->find("type");
    if (type && !(type->is_string() && type->as_string() == "BPE"))
      throw fail("model.type", "is " + describe(*type) + ", but only \"BPE\" is supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json::Value* v = model->find(key);
      if (v && !v->is_null() && !(v->is_string() && v->as_string().empty()))
        throw fail(std::string("model.") + key, "is set, which byte-level BPE does not use (unsupported)");
    }
    if (const json::Value* v = model->find("dropout"); v && !v->is_null() && v->as_double() != 0)
      throw fail("model.dropout", "BPE dropout is not supported");
    if (const json::Value* v = model->find("byte_fallback"); v && v->is_bool() && v->as_bool())
      throw fail("model.byte_fallback", "byte fallback is not supported (the tokenizer must be byte-level)");
    if (const json::Value* v = model->find("ignore_merges"); v && v->is_bool()) impl->ignore_merges = v->as_bool();

    const json::Value* vocab = model->find("vocab");
    if (!vocab || !vocab->is_object()) throw fail("model.vocab", "missing or not an object");
    std::int64_t max_id = -1;
    for (const auto& [text, id] : vocab->members()) {
      if (!id.is_integer() || id.as_int() < 0 || id.as_int() >= INT32_MAX)
        throw fail("model.vocab", json::quote(text) + " has id " + describe(id) + ", not a non-negative integer");
      max_id = std::max(max_id, id.as_int());
    }
    const json::Value* added = doc.find("added_tokens");
    if (added && !added->is_array()) throw fail("added_tokens", "not an array");
    if (added) {
      for (std::size_t k = 0; k < added->items().size(); ++k) {
        const json::Value* id = added->items()[k].find("id");
        if (!id || !id->is_integer() || id->as_int() < 0 || id->as_int() >= INT32_MAX)
          throw fail("added_tokens[" + std::to_string(k) + "].id", "missing or not a non-negative integer");
        max_id = std::max(max_id, id->as_int());
      }
    }
    if (max_id < 0) throw fail("model.vocab", "is empty");
    impl->tokens.resize(static_cast<std::size_t>(max_id + 1));
    for (auto& t : impl->tokens) t.type = TokenType::Unused;  // ids that nothing names
    for (const auto& [text, id] : vocab->members()) {
      TokenInfo& t = impl->tokens[static_cast<std::size_t>(id.as_int())];
      if (t.type != TokenType::Unused)
        throw fail("model.vocab", json::quote(text) + " and " + json::quote(t.text) + " both have id " + std::to_string(id.as_int()));
      t.text = text;
      t.type = TokenType::Normal;
    }

    // Added tokens: HF matches those with normalized=false first, then the others (after the normalizer,
    // which must be the identity here). Special ones are left as text when special tokens are not parsed.
    struct Added {
      std::string content;
      AddedTokenTrie::Entry entry;
      bool special, normalized;
    };
    std::vector<Added> added_tokens;
    if (added) {
      for (std::size_t k = 0; k < added->items().size(); ++k) {
        const json::Value& a = added->items()[k];
        const std::string where = "added_tokens[" + std::to_string(k) + "]";
        const json::Value* content = a.find("content");
        if (!content || !content->is_string()) throw fail(where + ".content", "missing or not a string");
        const auto flag = [&](const char* key, bool dflt) {
          const json::Value* v = a.find(key);
          return v && v->is_bool() ? v->as_bool() : dflt;
        };
        Added x;
        x.content = content->as_string();
        x.special = flag("special", false);
        x.normalized = flag("normalized", !x.special);
        x.entry.id = static_cast<std::int32_t>(a.find("id")->as_int());
        x.entry.lstrip = flag("lstrip", false);
        x.entry.rstrip = flag("rstrip", false);
        x.entry.single_word = flag("single_word", false);
        TokenInfo& t = impl->tokens[static_cast<std::size_t>(x.entry.id)];
        t.text = x.content;
        t.type = x.special ? TokenType::Control : TokenType::UserDefined;
        added_tokens.push_back(std::move(x));
      }
    }
    impl->finish_tokens();
    for (bool normalized : {false, true}) {
      AddedTokenTrie with_special, without_special;
      for (const Added& a : added_tokens) {
        if (a.normalized != normalized) continue;
        with_special.add(a.content, a.entry);
        AddedTokenTrie::Entry e = a.entry;
        e.as_text = a.special;
        without_special.add(a.content, e);
      }
      if (!with_special.empty()) impl->passes_special.push_back(std::move(with_special));
      if (!without_special.empty()) impl->passes_plain.push_back(std::move(without_special));
    }

    // merges: "a b" strings or [a, b] pairs. A repeated pair keeps its last rank, as HF's map does.
    const json::Value* merges = model->find("merges");
    if (!merges || !merges->is_array()) throw fail("model.merges", "missing or not an array");
    impl->bpe.merges.reserve(merges->items().size());
    for (std::size_t i = 0; i < merges->items().size(); ++i) {
      const json::Value& m = merges->items()[i];
      const std::string where = "model.merges[" + std::to_string(i) + "]";
      std::string_view l, r;
      if (m.is_string()) {
        const std::string_view s = m.as_string();
        const auto sp = s.find(' ');
        if (sp == std::string_view::npos || s.find(' ', sp + 1) != std::string_view::npos)
          throw fail(where, json::quote(s) + " is not two tokens separated by one space");
        l = s.substr(0, sp);
        r = s.substr(sp + 1);
      } else if (m.is_array() && m.items().size() == 2 && m.items()[0].is_string() && m.items()[1].is_string()) {
        l = m.items()[0].as_string();
        r = m.items()[1].as_string();
      } else {
        throw fail(where, "is " + describe(m) + ", not \"a b\" or [\"a\", \"b\"]");
      }
      try {
        impl->add_merge(l, r, static_cast<std::int32_t>(i), /*overwrite=*/true);
      } catch (const Error& e) {
        throw fail(where, e.what());
      }
    }

    if (const json::Value* norm = doc.find("normalizer"); norm && !norm->is_null()) {
      const json::Value* t = norm->find("type");
      const json::Value* list = norm->find("normalizers");
      const bool identity = t && t->is_string() && t->as_string() == "Sequence" && list && list->is_array() &&
                            list->items().empty();
      if (!identity)
        throw fail("normalizer", (t && t->is_string() ? "type " + json::quote(t->as_string()) : describe(*norm)) +
                                     " is not supported (only none or an empty Sequence)");
    }
    if (const json::Value* dec = doc.find("decoder"); dec && !dec->is_null()) {
      const json::Value* t = dec->find("type");
      if (!t || !t->is_string() || t->as_string() != "ByteLevel")
        throw fail("decoder", (t && t->is_string() ? "type " + json::quote(t->as_string()) : describe(*dec)) +
                                  " is not supported (only ByteLevel)");
    }
    if (const json::Value* pre = doc.find("pre_tokenizer"); pre && !pre->is_null()) {
      add_pre_tokenizer(impl->pre, *pre, "pre_tokenizer", fail);
      impl->pre.set_name(recognise_preset(impl->pre));
    }
    read_tokenizer_config(*impl, tokenizer_json.parent_path() / "tokenizer_config.json");
    return Tokenizer(std::move(impl));
  }

  /// The ids of `text` (no BOS). With parse_special, special/control tokens written in the text become their
  /// ids; without, they are encoded as plain text (user-defined added tokens are recognised either way).
  std::vector<std::int32_t> encode(std::string_view text, bool parse_special = true) const {
    std::vector<std::int32_t> out;
    out.reserve(text.size() / 3 + 4);
    Context ctx{out, parse_special ? impl_->passes_special : impl_->passes_plain, {}};
    encode_added(0, text, ctx);
    return out;
  }

  /// The bytes of `ids` concatenated (which need not be valid UTF-8 when the ids cut a character). Control
  /// (special) tokens give their text, or nothing with special = false. Throws Error for an id outside the
  /// vocabulary.
  std::string decode(std::span<const std::int32_t> ids, bool special = true) const {
    std::string out;
    for (const std::int32_t id : ids) out += piece(id, special);
    return out;
  }

  /// The bytes one token decodes to (see decode()).
  std::string_view piece(std::int32_t id, bool special = true) const {
    const TokenInfo& t = info(id);
    if (t.type == TokenType::Control && !special) return {};
    return t.bytes;
  }

  /// The token's text as the vocabulary stores it (byte-level form for ordinary tokens, e.g. "Ġthe").
  std::string_view token_text(std::int32_t id) const { return info(id).text; }
  TokenType token_type(std::int32_t id) const { return info(id).type; }
  /// The id of a vocabulary text or added token, exactly as stored (byte-level form for ordinary tokens).
  std::optional<std::int32_t> token_id(std::string_view text) const {
    const auto it = impl_->text_to_id.find(text);
    if (it == impl_->text_to_id.end()) return std::nullopt;
    return it->second;
  }

  /// BOS / EOS ids, -1 when the file names none.
  std::int32_t bos() const noexcept { return impl_->bos; }
  std::int32_t eos() const noexcept { return impl_->eos; }
  bool add_bos() const noexcept { return impl_->add_bos; }
  /// One more than the largest id.
  std::int32_t vocab_size() const noexcept { return static_cast<std::int32_t>(impl_->tokens.size()); }
  /// The pre-tokenizer: a preset name ("deepseek-v3", "deepseek-llm", "deepseek-coder") or "custom" for a
  /// tokenizer.json whose regexes are none of them.
  std::string_view pre() const noexcept { return impl_->pre.name(); }
  const PreTokenizer& pre_tokenizer() const noexcept { return impl_->pre; }
  /// The file the tokenizer was read from.
  const std::string& source() const noexcept { return impl_->source; }

  /// How many distinct pieces the encoder remembers (0 turns the cache off). Shared by copies.
  void set_cache_capacity(std::size_t pieces) const { impl_->cache.set_capacity(pieces); }

 private:
  struct TokenInfo {
    std::string text;   // as stored
    std::string bytes;  // what it decodes to
    TokenType type = TokenType::Normal;
  };

  /// Piece -> ids, in shards with a lock each so that threads encoding at once rarely meet. A full shard is
  /// emptied and starts over.
  struct WordCache {
    static constexpr std::size_t n_shards = 16;
    struct Shard {
      std::mutex mutex;
      std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>, detail::StringHash, std::equal_to<>>
          map;
      std::vector<std::int32_t> ids;
      void clear() {
        map.clear();
        ids.clear();
      }
    };
    std::array<Shard, n_shards> shards;
    std::atomic<std::size_t> shard_capacity{default_cache_capacity / n_shards};

    Shard& shard_of(std::string_view piece) noexcept {
      // Not the low bits: the map buckets by those.
      return shards[(detail::StringHash{}(piece) >> 20) % n_shards];
    }
    void set_capacity(std::size_t pieces) {
      shard_capacity = pieces == 0 ? 0 : std::max<std::size_t>(1, pieces / n_shards);
      for (auto& sh : shards) {
        std::lock_guard lock(sh.mutex);
        sh.clear();
      }
    }
  };

  struct Impl {
    std::string source;
    PreTokenizer pre;
    Bpe bpe;
    std::vector<TokenInfo> tokens;
    std::unordered_map<std::string_view, std::int32_t> text_to_id;            // views into tokens
    std::unordered_map<std::string_view, std::int32_t> normal_text_to_id;     // ordinary tokens only
    std::unordered_map<std::string, std::int32_t, detail::StringHash, std::equal_to<>> bytes_to_id;  // ignore_merges
    std::vector<AddedTokenTrie> passes_special, passes_plain;
    std::int32_t bos = -1, eos = -1;
    bool add_bos = false;
    bool ignore_merges = false;
    mutable WordCache cache;

    /// Fills in bytes, the text maps and the byte tokens once texts and types are known.
    void finish_tokens() {
      text_to_id.reserve(tokens.size());
      normal_text_to_id.reserve(tokens.size());
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        TokenInfo& t = tokens[i];
        const auto id = static_cast<std::int32_t>(i);
        switch (t.type) {
          case TokenType::Normal:
          case TokenType::Undefined: {
            // A text outside the byte-level alphabet decodes to itself (as HF's ByteLevel decoder does).
            auto raw = byte_level::decode(t.text);
            t.bytes = raw ? std::move(*raw) : t.text;
            break;
          }
          case TokenType::Byte: {
            // "<0xAB>"
            unsigned v = 0;
            if (t.text.size() == 6 && t.text.starts_with("<0x") && t.text.back() == '>' &&
                std::sscanf(t.text.c_str() + 3, "%2x", &v) == 1)
              t.bytes = std::string(1, static_cast<char>(v));
            else
              t.bytes = t.text;
            break;
          }
          case TokenType::Unused: t.bytes.clear(); break;
          default: t.bytes = t.text; break;
        }
        if (t.type != TokenType::Unused || !t.text.empty()) text_to_id[t.text] = id;
        if (t.type == TokenType::Normal || t.type == TokenType::Undefined) normal_text_to_id.emplace(t.text, id);
      }
      for (unsigned b = 0; b < 256; ++b) {
        const auto it = normal_text_to_id.find(byte_level::encode(std::string(1, static_cast<char>(b))));
        bpe.byte_ids[b] = it == normal_text_to_id.end() ? -1 : it->second;
      }
      // For the ignore_merges shortcut: raw bytes -> id of each ordinary token.
      if (ignore_merges)
        for (std::size_t i = 0; i < tokens.size(); ++i)
          if (tokens[i].type == TokenType::Normal) bytes_to_id.emplace(tokens[i].bytes, static_cast<std::int32_t>(i));
    }

    std::int32_t normal_id(std::string_view text) const {
      const auto it = normal_text_to_id.find(text);
      if (it == normal_text_to_id.end()) throw Error("token " + json::quote(text) + " is not in the vocabulary");
      return it->second;
    }

    void add_merge(std::string_view l, std::string_view r, std::int32_t rank, bool overwrite) {
      const std::int32_t a = normal_id(l), b = normal_id(r);
      std::string joined;
      joined.reserve(l.size() + r.size());
      joined.append(l).append(r);
      const std::int32_t c = normal_id(joined);
      bpe.merges.insert(a, b, rank, c, overwrite);
    }
  };

  struct Context {
    std::vector<std::int32_t>& out;
    const std::vector<AddedTokenTrie>& passes;
    BpeScratch scratch;
  };

  explicit Tokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

  const TokenInfo& info(std::int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(vocab_size() - 1) + ")");
    return impl_->tokens[static_cast<std::size_t>(id)];
  }

  /// Added-token pass `pass` over `text`; what no pass claims goes to the pre-tokenizer and BPE.
  void encode_added(std::size_t pass, std::string_view text, Context& ctx) const {
    if (text.empty()) return;
    if (pass == ctx.passes.size()) {
      impl_->pre.split(text, [&](std::string_view piece) { encode_piece(piece, ctx); });
      return;
    }
    const AddedTokenTrie& trie = ctx.passes[pass];
    std::size_t text_start = 0, search = 0;
    while (auto m = trie.find(text, search)) {
      std::size_t b = m->begin, e = m->end;
      search = e;
      const AddedTokenTrie::Entry& entry = *m->entry;
      if (entry.as_text) continue;
      if (entry.single_word) {
        const auto before = detail::last_code_point(text, b);
        const bool start_ok = !before || !detail::is_word_char(text.substr(before->second, b - before->second));
        bool stop_ok = e == text.size();
        if (!stop_ok) {
          const utf8::Step st = utf8::step(text, e);
          stop_ok = !detail::is_word_char(text.substr(e, st.length));
        }
        if (!start_ok || !stop_ok) continue;
      }
      if (entry.lstrip) {
        while (auto cp = detail::last_code_point(text, b)) {
          if (!detail::is_white_space(cp->first) || cp->second < text_start) break;
          b = cp->second;
        }
      }
      if (entry.rstrip) {
        while (e < text.size()) {
          const utf8::Step st = utf8::step(text, e);
          if (st.kind != utf8::Step::Valid || !detail::is_white_space(st.code_point)) break;
          e += st.length;
        }
        search = e;
      }
      if (b > text_start) encode_added(pass + 1, text.substr(text_start, b - text_start), ctx);
      ctx.out.push_back(entry.id);
      text_start = e;
    }
    if (text_start < text.size()) encode_added(pass + 1, text.substr(text_start), ctx);
  }

  void encode_piece(std::string_view piece, Context& ctx) const {
    const Impl& im = *impl_;
    if (piece.size() <= 1) {
      im.bpe.encode_word(piece, ctx.out, ctx.scratch);
      return;
    }
    if (im.ignore_merges) {
      if (const auto it = im.bytes_to_id.find(piece); it != im.bytes_to_id.end()) {
        ctx.out.push_back(it->second);
        return;
      }
    }
    const std::size_t capacity = im.cache.shard_capacity.load(std::memory_order_relaxed);
    if (capacity == 0 || piece.size() > max_cached_piece) {
      im.bpe.encode_word(piece, ctx.out, ctx.scratch);
      return;
    }
    WordCache::Shard& shard = im.cache.shard_of(piece);
    {
      // Never wait for the cache: when another thread holds this shard, just do the work.
      std::unique_lock lock(shard.mutex, std::try_to_lock);
      if (lock.owns_lock()) {
        if (const auto it = shard.map.find(piece); it != shard.map.end()) {
          const auto [at, len] = it->second;
          ctx.out.insert(ctx.out.end(), shard.ids.begin() + at, shard.ids.begin() + at + len);
          return;
        }
      }
    }
    const std::size_t first = ctx.out.size();
    im.bpe.encode_word(piece, ctx.out, ctx.scratch);
    std::unique_lock lock(shard.mutex, std::try_to_lock);
    if (lock.owns_lock()) {
      if (shard.map.size() >= capacity) shard.clear();
      const auto at = static_cast<std::uint32_t>(shard.ids.size());
      shard.ids.insert(shard.ids.end(), ctx.out.begin() + static_cast<std::ptrdiff_t>(first), ctx.out.end());
      shard.map.emplace(std::string(piece), std::pair{at, static_cast<std::uint32_t>(ctx.out.size() - first)});
    }
  }

  // ---- tokenizer.json helpers ----

  static std::string describe(const json::Value& v) {
    switch (v.kind()) {
      case json::Value::Kind::String: return json::quote(v.as_string());
      case json::Value::Kind::Number:
        return v.is_integer() ? std::to_string(v.as_int()) : std::to_string(v.as_double());
      case json::Value::Kind::Bool: return v.as_bool() ? "true" : "false";
      default: return json::Value::kind_name(v.kind());
    }
  }

  static std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(p.string() + ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(p.string() + ": cannot read");
    return std::move(ss).str();
  }

  static json::Value read_json(const std::filesystem::path& p) {
    const std::string text = read_file(p);
    try {
      return json::parse(text);
    } catch (const json::ParseError& e) {
      throw Error(p.string() + ": invalid JSON: " + e.what());
    }
  }

  template <class Fail>
  static void add_pre_tokenizer(PreTokenizer& pre, const json::Value& v, const std::string& where, const Fail& fail) {
    const json::Value* type = v.find("type");
    if (!type || !type->is_string()) throw fail(where, "has no type");
    const std::string& t = type->as_string();
    const auto flag = [&](const char* key, bool dflt) {
      const json::Value* f = v.find(key);
      return f && f->is_bool() ? f->as_bool() : dflt;
    };
    if (t == "Sequence") {
      const json::Value* list = v.find("pretokenizers");
      if (!list || !list->is_array()) throw fail(where + ".pretokenizers", "missing or not an array");
      for (std::size_t i = 0; i < list->items().size(); ++i)
        add_pre_tokenizer(pre, list->items()[i], where + ".pretokenizers[" + std::to_string(i) + "]", fail);
    } else if (t == "Split") {
      const json::Value* pattern = v.find("pattern");
      const json::Value* regex = pattern ? pattern->find("Regex") : nullptr;
      const json::Value* literal = pattern ? pattern->find("String") : nullptr;
      if (!(regex && regex->is_string()) && !(literal && literal->is_string()))
        throw fail(where + ".pattern", "needs a \"Regex\" or \"String\"");
      const json::Value* behavior = v.find("behavior");
      if (!behavior || !behavior->is_string()) throw fail(where + ".behavior", "missing");
      static constexpr std::pair<std::string_view, SplitBehavior> names[] = {
          {"Isolated", SplitBehavior::Isolated},
          {"Removed", SplitBehavior::Removed},
          {"MergedWithPrevious", SplitBehavior::MergedWithPrevious},
          {"MergedWithNext", SplitBehavior::MergedWithNext},
          {"Contiguous", SplitBehavior::Contiguous}};
      const auto it = std::find_if(std::begin(names), std::end(names),
                                   [&](const auto& n) { return n.first == behavior->as_string(); });
      if (it == std::end(names)) throw fail(where + ".behavior", json::quote(behavior->as_string()) + " is unknown");
      try {
        pre.add_split(regex ? Regex(regex->as_string()) : Regex(literal->as_string(), /*literal=*/true), it->second,
                      flag("invert", false));
      } catch (const Error& e) {
        throw fail(where + ".pattern", e.what());
      }
    } else if (t == "ByteLevel") {
      // The byte-to-character mapping is implicit (BPE works on raw bytes here); add_prefix_space and the
      // GPT-2 regex (use_regex, on by default) are steps of their own.
      if (flag("add_prefix_space", false)) pre.add_prefix_space();
      if (flag("use_regex", true))
        pre.add_split(Regex("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
                      SplitBehavior::Isolated, false);
    } else if (t == "Digits") {
      pre.add_split(Regex(flag("individual_digits", false) ? "\\p{N}" : "\\p{N}+"), SplitBehavior::Isolated, false);
    } else {
      throw fail(where, "pre-tokenizer type " + json::quote(t) +
                            " is not supported (supported: Sequence, Split, ByteLevel, Digits)");
    }
  }

  /// The preset whose regexes the pre-tokenizer has (all Isolated splits), or "custom".
  static std::string recognise_preset(const PreTokenizer& pre) {
    for (const auto& p : presets::all) {
      if (p.patterns.size() != pre.steps().size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < p.patterns.size() && same; ++i) {
        const auto& s = pre.steps()[i];
        same = s.kind == PreTokenizer::Step::Kind::Split && s.behavior == SplitBehavior::Isolated &&
               normalize_pattern(s.regex.pattern()) == p.patterns[i];
      }
      if (same) return std::string(p.name);
    }
    return "custom";
  }

  /// BOS / EOS / add_bos_token from tokenizer_config.json, when it exists.
  static void read_tokenizer_config(Impl& impl, const std::filesystem::path& p) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) return;
    const json::Value cfg = read_json(p);
    const auto token = [&](const char* key) -> std::int32_t {
      const json::Value* v = cfg.find(key);
      if (v && v->is_object()) v = v->find("content");
      if (!v || !v->is_string()) return -1;
      const auto it = impl.text_to_id.find(v->as_string());
      if (it == impl.text_to_id.end())
        throw Error(p.string() + ": " + key + " " + json::quote(v->as_string()) + " is not a token of " + impl.source);
      return it->second;
    };
    impl.bos = token("bos_token");
    impl.eos = token("eos_token");
    if (const json::Value* v = cfg.find("add_bos_token"); v && v->is_bool()) impl.add_bos = v->as_bool();
  }

  std::shared_ptr<Impl> impl_;
};

/// Turns ids into text one at a time for streaming output: push() returns only complete UTF-8 characters and
/// holds back the bytes of a character that the next token may complete. Bytes that can never form a valid
/// character come out as U+FFFD, so the output is always valid UTF-8.
class StreamDecoder {
 public:
  /// `special`: whether control tokens give their text (see Tokenizer::decode). The tokenizer must outlive this.
  explicit StreamDecoder(const Tokenizer& tok, bool special = true) : tok_(&tok), special_(special) {}

  /// The text that `id` completes (possibly empty).
  std::string push(std::int32_t id) {
    pending_ += tok_->piece(id, special_);
    std::size_t tail = 0;
    std::string out = utf8::sanitize(pending_, &tail);
    pending_.erase(0, pending_.size() - tail);
    return out;
  }

  /// What is still held back (an unfinished character, as U+FFFD), and a reset.
  std::string flush() {
    std::string out = utf8::sanitize(pending_);
    pending_.clear();
    return out;
  }

  /// Bytes held back so far.
  std::size_t pending() const noexcept { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool special_;
};

}  // namespace hmoe::tokenizer
