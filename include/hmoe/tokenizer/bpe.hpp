/// \file
/// \brief The byte-level BPE merge loop: a word's bytes start as one symbol each and the adjacent pair with the
///        lowest merge rank (the leftmost of equals) is merged until no pair has a rank.
///
/// Symbols are a linked list over an array. Long words keep candidate merges in a binary heap ordered by
/// (rank, position), checked when they come out (as HF tokenizers' `Word::merge_all` does); short words, the
/// common case, just scan for the lowest rank. Merge ranks live in an open-addressing hash table keyed by the
/// two token ids.
#pragma once

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace hmoe::tokenizer {

/// (left id, right id) -> (rank, merged id), open addressing with linear probing.
class MergeTable {
 public:
  struct Entry {
    std::uint64_t key = empty_key;
    std::int32_t rank = 0;
    std::int32_t id = 0;
  };

  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap <= slots_.size()) return;
    std::vector<Entry> old = std::move(slots_);
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Entry& e : old)
      if (e.key != empty_key) place(e);
  }

  /// Adds the merge; when the pair is already there, replaces it only with `overwrite`. Returns whether the
  /// pair was new.
  bool insert(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t id, bool overwrite) {
    if ((size_ + 1) * 2 > slots_.size()) reserve(size_ + 1);
    const std::uint64_t k = key(left, right);
    for (std::size_t i = hash(k);; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.key == empty_key) {
        e = Entry{k, rank, id};
        ++size_;
        return true;
      }
      if (e.key == k) {
        if (overwrite) e = Entry{k, rank, id};
        return false;
      }
    }
  }

  /// The merge of (left, right), or nullptr. Both ids must be >= 0.
  const Entry* find(std::int32_t left, std::int32_t right) const noexcept {
    if (slots_.empty()) return nullptr;
    const std::uint64_t k = key(left, right);
    for (std::size_t i = hash(k);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == k) return &e;
      if (e.key == empty_key) return nullptr;
    }
  }

  std::size_t size() const noexcept { return size_; }

 private:
  static constexpr std::uint64_t empty_key = ~std::uint64_t{0};
  static std::uint64_t key(std::int32_t l, std::int32_t r) noexcept {
    return (std::uint64_t(std::uint32_t(l)) << 32) | std::uint32_t(r);
  }
  std::size_t hash(std::uint64_t k) const noexcept {
    k ^= k >> 29;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 32;
    return static_cast<std::size_t>(k) & mask_;
  }
  void place(const Entry& e) {
    for (std::size_t i = hash(e.key);; i = (i + 1) & mask_) {
      if (slots_[i].key == empty_key) {
        slots_[i] = e;
        ++size_;
        return;
      }
    }
  }

  std::vector<Entry> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

/// Reusable buffers for Bpe::encode_word (one per encode call, so concurrent calls never share them).
struct BpeScratch {
  struct Symbol {
    std::int32_t id;
    std::int32_t prev;
    std::int32_t next;
    bool alive;
  };
  struct Candidate {
    std::int32_t rank;
    std::int32_t pos;
    std::int32_t left, right;  // the pair when it was queued
    std::int32_t id;
    // The heap keeps the smallest (rank, pos) on top.
    friend bool operator<(const Candidate& a, const Candidate& b) noexcept {
      return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    }
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

class Bpe {
 public:
  /// Words up to this many bytes are merged by scanning for the lowest rank (no heap).
  static constexpr std::int32_t small_word = 48;

  /// byte_ids[b]: the token of the single byte b (-1 where the vocabulary has none: such bytes are dropped,
  /// as HF does for characters missing from a vocabulary without an unknown token).
  std::array<std::int32_t, 256> byte_ids{};
  MergeTable merges;

  Bpe() { byte_ids.fill(-1); }

  /// Appends the tokens of one pre-tokenized word (raw bytes).
  ///
  /// Every order of applying "merge the lowest-ranked adjacent pair, leftmost first" gives the same result, so
  /// short words use a plain scan and long ones a heap. (A queued candidate is stale exactly when its pair has
  /// changed: a symbol only grows by absorbing its whole right neighbour, so the same span at the same position
  /// cannot be split differently later. HF's check, "does the pair there now merge to the same token", is
  /// therefore the same as "is the pair there still the same".)
  void encode_word(std::string_view word, std::vector<std::int32_t>& out, BpeScratch& s) const {
    const auto n = static_cast<std::int32_t>(word.size());
    if (n == 0) return;
    if (n == 1) {
      const std::int32_t id = byte_ids[static_cast<unsigned char>(word[0])];
      if (id >= 0) out.push_back(id);
      return;
    }
    if (n <= small_word)
      encode_small(word, out);
    else
      encode_long(word, out, s);
  }

 private:
  static constexpr std::int32_t no_rank = INT32_MAX;

  void rank_of(std::int32_t l, std::int32_t r, std::int32_t& rank, std::int32_t& id) const {
    const MergeTable::Entry* m = l >= 0 && r >= 0 ? merges.find(l, r) : nullptr;
    rank = m ? m->rank : no_rank;
    id = m ? m->id : -1;
  }

  void encode_small(std::string_view word, std::vector<std::int32_t>& out) const {
    const auto n = static_cast<std::int32_t>(word.size());
    std::int32_t id[small_word], next[small_word], prev[small_word], rank[small_word], merged[small_word];
    for (std::int32_t i = 0; i < n; ++i) {
      id[i] = byte_ids[static_cast<unsigned char>(word[i])];
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    for (std::int32_t i = 0; i + 1 < n; ++i) rank_of(id[i], id[i + 1], rank[i], merged[i]);
    rank[n - 1] = no_rank;
    while (true) {
      std::int32_t best = no_rank, at = -1;
      for (std::int32_t i = 0; i >= 0; i = next[i])
        if (rank[i] < best) {
          best = rank[i];
          at = i;
        }
      if (at < 0) break;
      const std::int32_t gone = next[at];
      id[at] = merged[at];
      next[at] = next[gone];
      if (next[at] >= 0) {
        prev[next[at]] = at;
        rank_of(id[at], id[next[at]], rank[at], merged[at]);
      } else {
        rank[at] = no_rank;
      }
      if (prev[at] >= 0) rank_of(id[prev[at]], id[at], rank[prev[at]], merged[prev[at]]);
    }
    for (std::int32_t i = 0; i >= 0; i = next[i])
      if (id[i] >= 0) out.push_back(id[i]);
  }

  void encode_long(std::string_view word, std::vector<std::int32_t>& out, BpeScratch& s) const {
    const auto n = static_cast<std::int32_t>(word.size());
    auto& sym = s.symbols;
    auto& heap = s.heap;
    sym.resize(static_cast<std::size_t>(n));
    heap.clear();
    for (std::int32_t i = 0; i < n; ++i)
      sym[i] = {byte_ids[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
    for (std::int32_t i = 0; i + 1 < n; ++i) push(sym[i].id, sym[i + 1].id, i, heap);
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const BpeScratch::Candidate c = heap.back();
      heap.pop_back();
      auto& left = sym[c.pos];
      if (!left.alive || left.next < 0 || left.id != c.left) continue;
      auto& right = sym[left.next];
      if (right.id != c.right) continue;
      // Merge the right symbol into the left one.
      left.id = c.id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) sym[right.next].prev = c.pos;
      if (left.prev >= 0 && push(sym[left.prev].id, left.id, left.prev, heap))
        std::push_heap(heap.begin(), heap.end());
      if (left.next >= 0 && push(left.id, sym[left.next].id, c.pos, heap))
        std::push_heap(heap.begin(), heap.end());
    }
    for (std::int32_t i = 0; i >= 0; i = sym[i].next)
      if (sym[i].id >= 0) out.push_back(sym[i].id);
  }

  bool push(std::int32_t l, std::int32_t r, std::int32_t pos, std::vector<BpeScratch::Candidate>& heap) const {
    if (l < 0 || r < 0) return false;
    const MergeTable::Entry* m = merges.find(l, r);
    if (!m) return false;
    heap.push_back({m->rank, pos, l, r, m->id});
    return true;
  }
};

}  // namespace hmoe::tokenizer
