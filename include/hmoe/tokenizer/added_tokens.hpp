/// \file
/// \brief Finding special and added tokens in text before BPE: a byte trie searched leftmost-longest (at the
///        first position where any token starts, the longest token that starts there), which is what HF
///        tokenizers' Aho-Corasick automaton (MatchKind::LeftmostLongest) finds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hmoe::tokenizer {

class AddedTokenTrie {
 public:
  struct Entry {
    std::int32_t id = -1;
    /// Found (so nothing shorter inside it matches) but left in the text, as HF does for special tokens when
    /// they are not to be parsed.
    bool as_text = false;
    bool lstrip = false;       // swallow whitespace before the token
    bool rstrip = false;       // swallow whitespace after the token
    bool single_word = false;  // only match when not inside a word
  };
  struct Match {
    std::size_t begin, end;
    const Entry* entry;
  };

  AddedTokenTrie() { first_.fill(false); }

  /// Adds `content` (ignored when empty). A content added twice keeps the later entry.
  void add(std::string_view content, const Entry& e) {
    if (content.empty()) return;
    if (nodes_.empty()) nodes_.push_back(-1);
    std::uint32_t node = 0;
    for (char ch : content) {
      const auto b = static_cast<unsigned char>(ch);
      const std::uint64_t k = (std::uint64_t(node) << 8) | b;
      auto it = next_.find(k);
      if (it == next_.end()) {
        it = next_.emplace(k, static_cast<std::uint32_t>(nodes_.size())).first;
        nodes_.push_back(-1);
      }
      node = it->second;
    }
    if (nodes_[node] >= 0) {
      entries_[static_cast<std::size_t>(nodes_[node])] = e;
    } else {
      nodes_[node] = static_cast<std::int32_t>(entries_.size());
      entries_.push_back(e);
    }
    const auto b0 = static_cast<unsigned char>(content[0]);
    if (!first_[b0]) ++n_first_;
    first_[b0] = true;
    single_first_ = static_cast<char>(b0);
  }

  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }

  /// The leftmost-longest match starting at or after `from`, or nothing.
  std::optional<Match> find(std::string_view text, std::size_t from) const {
    if (entries_.empty()) return std::nullopt;
    std::size_t i = from;
    while (i < text.size()) {
      // Skip to the next byte that can start a token.
      if (n_first_ == 1) {
        const void* p = std::memchr(text.data() + i, single_first_, text.size() - i);
        if (!p) return std::nullopt;
        i = static_cast<std::size_t>(static_cast<const char*>(p) - text.data());
      } else {
        while (i < text.size() && !first_[static_cast<unsigned char>(text[i])]) ++i;
        if (i >= text.size()) return std::nullopt;
      }
      std::uint32_t node = 0;
      std::int32_t best = -1;
      std::size_t best_end = 0;
      for (std::size_t j = i; j < text.size(); ++j) {
        const auto it = next_.find((std::uint64_t(node) << 8) | static_cast<unsigned char>(text[j]));
        if (it == next_.end()) break;
        node = it->second;
        if (nodes_[node] >= 0) {
          best = nodes_[node];
          best_end = j + 1;
        }
      }
      if (best >= 0) return Match{i, best_end, &entries_[static_cast<std::size_t>(best)]};
      ++i;
    }
    return std::nullopt;
  }

 private:
  std::vector<std::int32_t> nodes_;  // per node: index into entries_, or -1
  std::unordered_map<std::uint64_t, std::uint32_t> next_;  // (node << 8 | byte) -> child node
  std::vector<Entry> entries_;
  std::array<bool, 256> first_;
  int n_first_ = 0;
  char single_first_ = 0;
};

}  // namespace hmoe::tokenizer
