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
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

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
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
    if (pin == Pin::Cores) pin_threads();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  /// Calls `fn(begin, end)` on contiguous, near-equal slices of [0, n), one per thread; returns when all are done.
  /// The first exception thrown by any slice is rethrown here.
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

 private:
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
