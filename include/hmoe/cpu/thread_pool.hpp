/// \file
/// \brief A fixed pool of worker threads with a blocking, statically split `parallel_for`.
///
/// The reference path splits work evenly (rows of a matrix, heads of attention); a static split keeps the
/// result independent of timing, so runs are bit-reproducible for a given thread count. Kernels that want
/// dynamic balance run one slice per thread and take tasks from a shared counter inside it.
///
/// `Pin::Cores` pins thread i to the i-th CPU this process may run on: expert weights streamed by a thread then
/// stay in that core's caches between phases, and the OS does not migrate a thread mid-kernel.
#pragma once

#include <algorithm>
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

class ThreadPool {
 public:
  /// `threads` counts the calling thread too; 0 means one per hardware thread.
  explicit ThreadPool(unsigned threads = 0, Pin pin = Pin::None) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
    if (pin == Pin::Cores) pin_threads();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
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
    {
      std::lock_guard lock(mutex_);
      job_ = &fn;
      n_ = n;
      parts_ = parts;
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    run_slice(0);
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
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
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= parts_) continue;
      lock.unlock();
      run_slice(index);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
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

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t n_ = 0;
  unsigned parts_ = 0, pending_ = 0;
  std::uint64_t generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace hmoe::cpu
