/// \file
/// \brief A fixed pool of worker threads with a blocking, statically split `parallel_for`.
///
/// The reference path splits work evenly (rows of a matrix, heads of attention); a static split keeps the
/// result independent of timing, so runs are bit-reproducible for a given thread count. Kernels that want
/// dynamic balance run one slice per thread and take tasks from a shared counter inside it.
///
/// `Wait::Spin`: between jobs a worker polls for a short while (`spin_for`, 200 µs unless told) before it sleeps on the condition
/// variable, and so does the caller waiting for the last slice. A MoE layer is five `parallel_for`s a few hundred
/// microseconds apart in decode, and waking sleeping threads through the kernel costs tens of microseconds each.
/// On a machine whose cores are busy with other work, polling steals their time, so `Wait::Block` (always
/// sleep) is the default; a pool with more threads than the machine has never polls.
///
/// `Pin::Cores` pins thread i to the i-th CPU this process may run on: expert weights streamed by a thread then
/// stay in that core's caches between phases, and the OS does not migrate a thread mid-kernel.
///
/// A pool built over a `NumaTopology` of several nodes has per-node workers, each pinned to its node's CPUs.
/// `parallel_for` works as on any pool; `run_per_node` hands each node's tasks to that node's workers only,
/// which is how the routed experts are sharded across nodes (docs/numa.md). The calling thread belongs to no
/// node there: it may be any thread (a GPU pipeline's), so it takes no per-node task.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "hmoe/cpu/numa.hpp"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace hmoe::cpu {

enum class Pin { None, Cores };
enum class Wait { Block, Spin };

class ThreadPool {
 public:
  /// `threads` counts the calling thread too; 0 means one per hardware thread. With Wait::Spin a thread polls
  /// for `spin_for` before it sleeps: long enough to cover the GPU's part of a layer in a hybrid decode step
  /// (a few hundred microseconds) keeps the workers awake from one MoE layer to the next.
  explicit ThreadPool(unsigned threads = 0, Pin pin = Pin::None, Wait wait = Wait::Block,
                      std::chrono::microseconds spin_for = std::chrono::microseconds(200))
      : spin_for_(spin_for) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    spin_ = wait == Wait::Spin && threads <= std::max(1u, std::thread::hardware_concurrency());
    node_.assign(threads, 0);
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
    if (pin == Pin::Cores) pin_threads();
  }

  /// A pool over the nodes of `topology`. `threads` counts the calling thread too, as above; 0 means one per
  /// CPU of the topology (at least one worker per node). The workers are split evenly over the nodes (node n
  /// gets consecutive indices), each pinned to all of its node's CPUs; more than a node has CPUs is allowed
  /// (they share them). With several nodes the calling thread belongs to none: it runs its parallel_for
  /// slices, but no `run_per_node` task. Throws where a node would get no worker, or where Linux refuses to
  /// pin a thread (placement by node would then be a guess).
  explicit ThreadPool(const NumaTopology& topology, unsigned threads = 0, Wait wait = Wait::Block,
                      std::chrono::microseconds spin_for = std::chrono::microseconds(200))
      : spin_for_(spin_for), nodes_(topology.size()) {
    const auto cpus = static_cast<unsigned>(topology.cpu_count());
    const auto nodes = static_cast<unsigned>(nodes_);
    const unsigned workers = threads == 0 ? std::max(cpus - 1, nodes) : threads - 1;
    if (workers < nodes)
      throw std::invalid_argument("hmoe::cpu::ThreadPool: " + std::to_string(threads) + " threads for " +
                                  std::to_string(nodes) + " NUMA nodes; each node needs a worker, and the "
                                  "calling thread counts as none (at least " + std::to_string(nodes + 1) + ")");
    spin_ = wait == Wait::Spin && workers + 1 <= cpus;
    node_.assign(1, nodes_ == 1 ? 0 : -1);
    for (unsigned n = 0; n < nodes; ++n)
      node_.insert(node_.end(), workers * (n + 1) / nodes - workers * n / nodes, static_cast<int>(n));
    for (unsigned i = 1; i < node_.size(); ++i) workers_.emplace_back([this, i] { work(i); });
#if defined(__linux__)
    // Workers only sleep until the first job, so pinning them here, before any job, is in time.
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      const auto& node = topology.nodes()[static_cast<std::size_t>(node_[i + 1])];
      cpu_set_t set;
      CPU_ZERO(&set);
      for (int c : node.cpus)
        if (c < CPU_SETSIZE) CPU_SET(c, &set);
      if (const int err = pthread_setaffinity_np(workers_[i].native_handle(), sizeof(set), &set); err != 0) {
        stop();
        throw std::system_error(err, std::generic_category(),
                                "hmoe::cpu::ThreadPool: cannot pin a worker to NUMA node " + std::to_string(node.id) +
                                    "'s CPUs (run without NUMA sharding: --numa off)");
      }
    }
#endif
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { stop(); }

  /// Threads, the calling one included: the slices of a parallel_for.
  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  /// NUMA nodes the workers are spread over (1 for a pool built without a topology).
  int nodes() const { return nodes_; }

  /// The node of thread i (0: the calling thread, i ≥ 1: worker i), -1 for the calling thread of a pool over
  /// several nodes. A pool over one node counts every thread as that node's.
  int node_of(unsigned thread) const { return node_.at(thread); }

  /// Calls `fn(begin, end)` on contiguous, near-equal slices of [0, n), one per thread; returns when all are done.
  /// With n == size(), slice [i, i + 1) runs on thread i (0: the caller, i ≥ 1: worker i), so `fn` may look up
  /// `node_of(begin)`. The first exception thrown by any slice is rethrown here.
  void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
    if (n <= 0) return;
    const unsigned parts = static_cast<unsigned>(std::min<std::int64_t>(size(), n));
    if (parts == 1) return fn(0, n);
    job_ = &fn;
    n_ = n;
    parts_ = parts;
    error_ = nullptr;
    // Every worker reports back, also those without a slice, so none can still be reading this job's
    // parameters when the next call overwrites them.
    pending_.store(size() - 1, std::memory_order_relaxed);
    {
      std::lock_guard lock(mutex_);  // a worker about to sleep either sees the new generation or is woken
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_slice(0);
    if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  /// fn(node, i) for every node and every i in [0, tasks[node]), run only by that node's threads, which take
  /// their node's tasks from a counter of its own (so they balance among themselves, and a slow node is not
  /// helped by another one). `tasks` has one entry per node. A one-node pool runs everything on all threads.
  void run_per_node(std::span<const std::int64_t> tasks, const std::function<void(int, std::int64_t)>& fn) {
    if (tasks.size() != static_cast<std::size_t>(nodes_))
      throw std::invalid_argument("hmoe::cpu::ThreadPool::run_per_node: " + std::to_string(tasks.size()) +
                                  " task counts for " + std::to_string(nodes_) + " nodes");
    struct alignas(64) Counter {  // one cache line each: a node's threads never write another node's line
      std::atomic<std::int64_t> next{0};
    };
    std::vector<Counter> next(tasks.size());
    parallel_for(size(), [&](std::int64_t thread, std::int64_t) {
      const int node = node_of(static_cast<unsigned>(thread));
      if (node < 0) return;
      const auto n = static_cast<std::size_t>(node);
      for (std::int64_t i; (i = next[n].next.fetch_add(1, std::memory_order_relaxed)) < tasks[n];) fn(node, i);
    });
  }

 private:
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_)
      if (w.joinable()) w.join();
  }

  /// Polls `ready` for up to spin_for_, yielding the core between polls so that an oversubscribed machine (more
  /// threads than cores) still runs the threads that have work; a pool larger than the machine never spins.
  template <class Ready>
  bool spin_until(Ready&& ready) const {
    if (!spin_) return ready();
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 1;; ++i) {
      if (ready()) return true;
      if (i % 16 == 0) {
        if (std::chrono::steady_clock::now() - start > spin_for_) return ready();
        std::this_thread::yield();
      }
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  }

  void run_slice(unsigned part) {
    const std::int64_t begin = n_ * part / parts_, end = n_ * (part + 1) / parts_;
    try {
      (*job_)(begin, end);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void work(unsigned index) {
    std::uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] { return stop_.load(std::memory_order_acquire) ||
                                generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(fresh)) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, fresh);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = generation_.load(std::memory_order_acquire);
      if (index < parts_) run_slice(index);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);  // the caller checks pending_ under this mutex before it sleeps
        done_.notify_one();
      }
    }
  }

  /// Best effort: a CPU set that forbids it (a container's cgroup, gVisor) leaves the threads unpinned.
  void pin_threads() {
#if defined(__linux__)
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    if (cpus.empty()) return;
    auto pin = [&](pthread_t t, std::size_t i) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[i % cpus.size()], &one);
      pthread_setaffinity_np(t, sizeof(one), &one);
    };
    pin(pthread_self(), 0);
    for (std::size_t i = 0; i < workers_.size(); ++i) pin(workers_[i].native_handle(), i + 1);
#endif
  }

  std::chrono::microseconds spin_for_;
  int nodes_ = 1;
  std::vector<int> node_;  ///< node_of(i)
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  // The job: written by the caller before generation_ is bumped (release), read by workers after they see it.
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t n_ = 0;
  unsigned parts_ = 0;
  std::exception_ptr error_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<unsigned> pending_{0};
  std::atomic<bool> stop_{false};
  bool spin_ = false;
};

}  // namespace hmoe::cpu
