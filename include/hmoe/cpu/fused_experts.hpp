/// \file
/// \brief The routed experts of one MoE layer on the CPU: tokens grouped by expert, gate and up in one pass,
/// SiLU·mul, down, and the router-weighted sum into the output.
///
/// Work is a list of equal tasks, (expert, block of output rows), taken by the pool's threads from a shared
/// counter (one per NUMA node), so an expert with many tokens and one with few balance out. Decode (one token, k experts) and
/// prefill (many tokens per expert) run the same code: with one token every thread works on slices of the k
/// selected experts, which is what streams their weights from RAM at full bandwidth.
///
/// Phases, each a barrier (a `parallel_for`):
///   1. quantize each input row once, copy it into each routed expert's group          (slots × act bytes)
///   2. gate and up for (expert, rows) tasks; h = silu(gate) · up                      (slots × ffn f32)
///   3. quantize h rows for the down matrices                                          (slots × act bytes)
///   4. down for (expert, rows) tasks                                                  (slots × hidden f32)
///   5. out[t] += Σ_j weight(t, j) · y(slot of t, j), in slot order, so results do not depend on timing
///
/// NUMA (docs/numa.md): on a pool over several nodes, expert e belongs to node `expert_node(e)` (contiguous
/// shards), the tasks of phases 2 and 4 run only on the owner node's threads, and `bind` packs (or copies) each
/// node's experts on that node's threads at load, which puts their pages in its memory. Each expert's weights are
/// then read by one node only, and held once. Phases 1, 3 and 5 touch only activations and run as before.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/cpu/expert_matrix.hpp"
#include "hmoe/cpu/thread_pool.hpp"

namespace hmoe::cpu {

/// The three matrices of every routed expert of one layer: gate, up (ffn × hidden) and down (hidden × ffn).
struct ExpertSet {
  std::int64_t hidden = 0, ffn = 0;
  std::vector<ExpertMatrix> gate, up, down;
};

/// One expert's three matrices, as `FusedExperts::bind` receives them.
struct ExpertMatrices {
  ExpertMatrix gate, up, down;
};

/// The node that owns expert e of `experts` sharded over `nodes`: contiguous shards, so node n owns experts
/// [first_expert(n), first_expert(n + 1)) and neighbouring experts (often routed together) share a node.
inline int expert_node(std::int64_t e, std::int64_t experts, int nodes) {
  return static_cast<int>(e * nodes / experts);
}
inline std::int64_t first_expert(int node, std::int64_t experts, int nodes) {
  return (node * experts + nodes - 1) / nodes;
}

/// While alive, routed experts loaded on this thread without a pool of their own (`Experts` built by a model's
/// load) are bound on `pool`'s threads, node by node (FusedExperts::bind). The examples open one around a model
/// load when NUMA sharding is on; the pool only needs the topology of the pool that will run the model.
class PlaceExpertsOn {
 public:
  explicit PlaceExpertsOn(ThreadPool& pool) : previous_(current_) { current_ = &pool; }
  ~PlaceExpertsOn() { current_ = previous_; }
  PlaceExpertsOn(const PlaceExpertsOn&) = delete;
  PlaceExpertsOn& operator=(const PlaceExpertsOn&) = delete;

  /// The innermost scope's pool on this thread, or null.
  static ThreadPool* pool() { return current_; }

 private:
  ThreadPool* previous_;
  static inline thread_local ThreadPool* current_ = nullptr;
};

class FusedExperts {
 public:
  /// `placed_on[e]`: the node whose thread bound expert e (empty: bound without placement), see placed_on().
  explicit FusedExperts(ExpertSet set, std::vector<int> placed_on = {})
      : set_(std::move(set)), placed_on_(std::move(placed_on)) {
    const auto n = set_.gate.size();
    if (n == 0 || set_.up.size() != n || set_.down.size() != n)
      throw std::invalid_argument("hmoe::cpu::FusedExperts: gate, up and down need one matrix per expert");
    if (!placed_on_.empty() && placed_on_.size() != n)
      throw std::invalid_argument("hmoe::cpu::FusedExperts: placed_on needs one node per expert");
    for (std::size_t e = 0; e < n; ++e) {
      // Gate and up read one quantized input; down reads one quantized h. Mixed formats inside a role would
      // need several copies of each input, and no converter writes such files.
      if (set_.gate[e].activation_format() != set_.gate[0].activation_format() ||
          set_.up[e].activation_format() != set_.gate[0].activation_format() ||
          set_.down[e].activation_format() != set_.down[0].activation_format())
        throw std::invalid_argument("hmoe::cpu::FusedExperts: expert " + std::to_string(e) +
                                    " mixes activation formats (gate " + set_.gate[e].kernel_name() + ", up " +
                                    set_.up[e].kernel_name() + ", down " + set_.down[e].kernel_name() + ")");
    }
    in_bytes_ = set_.gate[0].activation_row_bytes();
    h_bytes_ = set_.down[0].activation_row_bytes();
  }

  /// `experts` experts, expert e's matrices from bind_one(e, rows) (what `bind_expert_matrix` returns). With a
  /// `placer` pool over several nodes, each node's threads bind the experts that node owns: the packed formats
  /// allocate and write their panels there, and `rows` is Rows::Copied so that rows read from the file are copied
  /// there too. Linux puts a page on the node of the thread that touches it first (its default policy), so this
  /// is what places each expert's weights in its owner node's memory. Without one (or over one node) every
  /// expert is bound on the calling thread, in order, with Rows::Mapped.
  template <class Bind>
  static FusedExperts bind(std::int64_t experts, std::int64_t hidden, std::int64_t ffn, ThreadPool* placer,
                           Bind&& bind_one) {
    ExpertSet set{hidden, ffn, {}, {}, {}};
    auto add = [&](ExpertMatrices m) {
      set.gate.push_back(std::move(m.gate));
      set.up.push_back(std::move(m.up));
      set.down.push_back(std::move(m.down));
    };
    if (placer == nullptr || placer->nodes() < 2) {
      for (std::int64_t e = 0; e < experts; ++e) add(bind_one(e, Rows::Mapped));
      return FusedExperts(std::move(set));
    }
    const int nodes = placer->nodes();
    std::vector<std::optional<ExpertMatrices>> bound(static_cast<std::size_t>(experts));
    std::vector<int> placed_on(bound.size(), -1);
    std::vector<std::int64_t> tasks(static_cast<std::size_t>(nodes));
    for (int n = 0; n < nodes; ++n)
      tasks[static_cast<std::size_t>(n)] = first_expert(n + 1, experts, nodes) - first_expert(n, experts, nodes);
    placer->run_per_node(tasks, [&](int node, std::int64_t i) {
      const auto e = first_expert(node, experts, nodes) + i;
      bound[static_cast<std::size_t>(e)].emplace(bind_one(e, Rows::Copied));
      placed_on[static_cast<std::size_t>(e)] = node;
    });
    for (auto& m : bound) add(std::move(*m));
    return FusedExperts(std::move(set), std::move(placed_on));
  }

  std::int64_t experts() const { return static_cast<std::int64_t>(set_.gate.size()); }
  const ExpertSet& matrices() const { return set_; }

  /// The NUMA node whose thread bound expert e (packed its panels or copied its rows, so first touched them),
  /// -1 where the experts were bound without a placer pool over several nodes.
  int placed_on(std::int64_t e) const { return placed_on_.empty() ? -1 : placed_on_.at(static_cast<std::size_t>(e)); }

  /// Test hook: how many times threads of `node` ran expert e's first block of rows (so 2 per forward that
  /// routes a token to e: gate/up and down), since the last reset or the last forward on a pool with another
  /// node count. All blocks of an expert come from its owner node's counter, so the first stands for them all;
  /// counting only it costs one relaxed atomic add per expert and phase, so the hook stays on.
  std::int64_t expert_runs(int node, std::int64_t e) const {
    const auto i = static_cast<std::size_t>(node) * static_cast<std::size_t>(experts()) + static_cast<std::size_t>(e);
    return node >= 0 && i < expert_runs_.size() ? std::atomic_ref(expert_runs_[i]).load(std::memory_order_relaxed) : 0;
  }
  void reset_expert_runs() const { std::fill(expert_runs_.begin(), expert_runs_.end(), 0); }

  /// out (tokens × hidden) += Σ_j weight[t·k + j] · expert_{id[t·k + j]}(x_t), over the pairs whose id is ≥ 0:
  /// an id < 0 marks an expert that runs elsewhere (a GPU-resident one) and is skipped. Not reentrant: one call
  /// at a time per object (the scratch buffers are reused between calls).
  void forward(ThreadPool& pool, const float* x, std::int64_t tokens, const std::int32_t* id, const float* weight,
               std::int64_t k, float* out) const {
    const std::int64_t hidden = set_.hidden, ffn = set_.ffn;
    if (tokens * k == 0) return;
    PhaseClock clock(phase_seconds_);
    if (expert_runs_.size() != static_cast<std::size_t>(pool.nodes() * experts()))
      expert_runs_.assign(static_cast<std::size_t>(pool.nodes() * experts()), 0);
    group_by_expert(tokens, id, k);
    const std::int64_t slots = offset_.back();  // pairs with an expert id < 0 run elsewhere (on the GPU)
    if (slots == 0) return;

    // 1. Inputs, quantized once per token, then copied into each routed expert's contiguous group.
    tok_q_.resize(static_cast<std::size_t>(tokens) * in_bytes_);
    in_q_.resize(static_cast<std::size_t>(slots) * in_bytes_);
    const auto& quantizer = set_.gate[static_cast<std::size_t>(active_.front())];
    for_rows(pool, tokens, hidden, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t t = b; t < e; ++t)
        quantizer.quantize_activation(x + t * hidden, tok_q_.data() + static_cast<std::size_t>(t) * in_bytes_);
    });
    for_rows(pool, slots, hidden / 8, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t s = b; s < e; ++s)
        std::memcpy(in_q_.data() + static_cast<std::size_t>(s) * in_bytes_,
                    tok_q_.data() + static_cast<std::size_t>(slot_token_[static_cast<std::size_t>(s)]) * in_bytes_,
                    in_bytes_);
    });

    clock.next();
    // 2. Gate and up, then h = silu(gate) · up in place of up.
    gate_.resize(static_cast<std::size_t>(slots * ffn));
    h_.resize(gate_.size());
    run_tasks(pool, ffn, [&](std::int64_t expert, std::int64_t r0, std::int64_t r1) {
      const auto first = offset_[static_cast<std::size_t>(expert)];
      const auto n = offset_[static_cast<std::size_t>(expert) + 1] - first;
      const auto* act = in_q_.data() + static_cast<std::size_t>(first) * in_bytes_;
      float* g = gate_.data() + first * ffn;
      float* u = h_.data() + first * ffn;
      set_.gate[static_cast<std::size_t>(expert)].matmul(r0, r1, act, in_bytes_, n, g, ffn);
      set_.up[static_cast<std::size_t>(expert)].matmul(r0, r1, act, in_bytes_, n, u, ffn);
      for (std::int64_t t = 0; t < n; ++t)
        for (std::int64_t r = r0; r < r1; ++r) {
          const float gv = g[t * ffn + r];
          u[t * ffn + r] *= gv / (1.0f + std::exp(-gv));
        }
    });

    clock.next();
    // 3. h quantized for the down matrices.
    h_q_.resize(static_cast<std::size_t>(slots) * h_bytes_);
    const auto& h_quantizer = set_.down[static_cast<std::size_t>(active_.front())];
    for_rows(pool, slots, ffn, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t s = b; s < e; ++s)
        h_quantizer.quantize_activation(h_.data() + s * ffn, h_q_.data() + static_cast<std::size_t>(s) * h_bytes_);
    });

    clock.next();
    // 4. Down.
    y_.resize(static_cast<std::size_t>(slots * hidden));
    run_tasks(pool, hidden, [&](std::int64_t expert, std::int64_t r0, std::int64_t r1) {
      const auto first = offset_[static_cast<std::size_t>(expert)];
      const auto n = offset_[static_cast<std::size_t>(expert) + 1] - first;
      set_.down[static_cast<std::size_t>(expert)].matmul(r0, r1, h_q_.data() + static_cast<std::size_t>(first) * h_bytes_,
                                                         h_bytes_, n, y_.data() + first * hidden, hidden);
    });

    clock.next();
    // 5. Weighted sum, slot order fixed.
    for_rows(pool, tokens, k * hidden / 4, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t t = b; t < e; ++t)
        for (std::int64_t j = 0; j < k; ++j) {
          const auto slot = slot_of_[static_cast<std::size_t>(t * k + j)];
          if (slot < 0) continue;
          const float w = weight[t * k + j];
          const float* y = y_.data() + slot * hidden;
          float* o = out + t * hidden;
          for (std::int64_t c = 0; c < hidden; ++c) o[c] += w * y[c];
        }
    });
    clock.next();
  }

  /// Seconds spent in each phase (1 grouping and input quantization, 2 gate/up/SiLU, 3 h quantization, 4 down,
  /// 5 weighted sum), summed over calls since the last reset: what a profile of a layer needs, at the cost of six
  /// clock reads per call.
  const std::array<double, 5>& phase_seconds() const { return phase_seconds_; }
  void reset_phase_seconds() { phase_seconds_ = {}; }

 private:
  /// Adds the time since the previous mark to the next phase's total.
  class PhaseClock {
   public:
    explicit PhaseClock(std::array<double, 5>& totals) : totals_(totals) {}
    void next() {
      const auto now = std::chrono::steady_clock::now();
      if (phase_ < totals_.size()) totals_[phase_++] += std::chrono::duration<double>(now - last_).count();
      last_ = now;
    }

   private:
    std::array<double, 5>& totals_;
    std::size_t phase_ = 0;
    std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  };

  /// Counting sort of the (token, j) pairs by expert: offset_[e] .. offset_[e+1] are expert e's slots, in
  /// token order; slot_of_[t·k + j] says where pair (t, j) went (-1: skipped, its id is < 0).
  void group_by_expert(std::int64_t tokens, const std::int32_t* id, std::int64_t k) const {
    const auto n = experts();
    offset_.assign(static_cast<std::size_t>(n) + 1, 0);
    for (std::int64_t i = 0; i < tokens * k; ++i) {
      if (id[i] >= n)
        throw std::out_of_range("hmoe::cpu::FusedExperts: expert id " + std::to_string(id[i]) + " outside [0, " +
                                std::to_string(n) + ")");
      if (id[i] >= 0) ++offset_[static_cast<std::size_t>(id[i]) + 1];
    }
    active_.clear();
    for (std::int64_t e = 0; e < n; ++e) {
      if (offset_[static_cast<std::size_t>(e) + 1] > 0) active_.push_back(e);
      offset_[static_cast<std::size_t>(e) + 1] += offset_[static_cast<std::size_t>(e)];
    }
    fill_.assign(offset_.begin(), offset_.end() - 1);
    slot_of_.resize(static_cast<std::size_t>(tokens * k));
    slot_token_.resize(static_cast<std::size_t>(offset_.back()));
    for (std::int64_t i = 0; i < tokens * k; ++i) {
      if (id[i] < 0) {
        slot_of_[static_cast<std::size_t>(i)] = -1;
        continue;
      }
      const auto s = fill_[static_cast<std::size_t>(id[i])]++;
      slot_of_[static_cast<std::size_t>(i)] = s;
      slot_token_[static_cast<std::size_t>(s)] = i / k;
    }
  }

  /// fn(begin, end) over [0, rows): on the calling thread when the phase is small (decode), since waking the
  /// pool costs more than the work then; else split over the pool. `cost` is the work per row in element ops.
  template <class Fn>
  static void for_rows(ThreadPool& pool, std::int64_t rows, std::int64_t cost, Fn&& fn) {
    if (rows * cost <= (std::int64_t{1} << 16)) fn(0, rows);
    else pool.parallel_for(rows, fn);
  }

  /// Runs fn(expert, r0, r1) over blocks of `rows` output rows of every active expert, blocks taken from a
  /// counter per node (one on a pool without NUMA nodes), each node's threads taking only blocks of the experts
  /// it owns. Blocks are a multiple of 16 rows (the AMX panel) and small enough for several per thread,
  /// so the last ones to finish are short: 32 per thread when few tokens are routed (decode streams weights,
  /// and a phase ends with the slowest thread's last block), 8 otherwise (each block then carries real work).
  template <class Fn>
  void run_tasks(ThreadPool& pool, std::int64_t rows, Fn&& fn) const {
    const auto active = static_cast<std::int64_t>(active_.size());
    const auto slots = offset_.back();
    const std::int64_t want = (slots <= 4 * active ? 32 : 8) * static_cast<std::int64_t>(pool.size());
    std::int64_t block = (active * rows + want - 1) / want;
    block = std::clamp<std::int64_t>((block + 15) / 16 * 16, 16, 512);
    const std::int64_t per_expert = (rows + block - 1) / block;
    // active_ is sorted and shards are contiguous, so node n's active experts are active_[first[n] .. first[n+1]).
    const int nodes = pool.nodes();
    auto& first = node_first_;  // scratch: no allocation per phase once sized
    auto& tasks = node_tasks_;
    first.resize(static_cast<std::size_t>(nodes) + 1);
    tasks.resize(static_cast<std::size_t>(nodes));
    for (int n = 0; n <= nodes; ++n)
      first[static_cast<std::size_t>(n)] =
          std::lower_bound(active_.begin(), active_.end(), first_expert(n, experts(), nodes)) - active_.begin();
    for (std::size_t n = 0; n < tasks.size(); ++n) tasks[n] = (first[n + 1] - first[n]) * per_expert;
    pool.run_per_node(tasks, [&](int node, std::int64_t i) {
      const auto expert = active_[static_cast<std::size_t>(first[static_cast<std::size_t>(node)] + i / per_expert)];
      const auto r0 = (i % per_expert) * block;
      if (r0 == 0)
        std::atomic_ref(expert_runs_[static_cast<std::size_t>(node * experts() + expert)]).fetch_add(1, std::memory_order_relaxed);
      fn(expert, r0, std::min(rows, r0 + block));
    });
  }

  ExpertSet set_;
  std::vector<int> placed_on_;
  std::size_t in_bytes_ = 0, h_bytes_ = 0;
  mutable std::vector<std::int64_t> expert_runs_;  // [node · experts + expert], the test hook
  // Scratch reused between calls (grown, never shrunk).
  mutable std::vector<std::int64_t> offset_, fill_, slot_of_, slot_token_, active_, node_first_, node_tasks_;
  mutable std::vector<std::byte> tok_q_, in_q_, h_q_;
  mutable std::vector<float> gate_, h_, y_;
  mutable std::array<double, 5> phase_seconds_{};
};

}  // namespace hmoe::cpu
