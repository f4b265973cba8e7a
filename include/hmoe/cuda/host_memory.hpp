/// \file
/// \brief Page-locked host memory (so copies to and from the GPU run asynchronously at full PCIe speed), raw
/// asynchronous copies, host functions queued on a stream, and CUDA graphs captured from a stream.
///
/// Host-only header: no CUDA headers.
#pragma once

#include <cstddef>

namespace hmoe::cuda {

class Stream;

/// Pinned host memory (cudaHostAlloc).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const noexcept { return p_; }
  std::size_t bytes() const noexcept { return bytes_; }
  template <class T>
  T* as() const noexcept { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Queues a copy of `bytes` from src to dst on s; either side may be host or device memory (unified addressing).
void copy_async(void* dst, const void* src, std::size_t bytes, const Stream& s);

/// Queues fn(arg) on s: it runs on a CUDA-owned host thread once the work before it on s is done, and the work
/// after it waits for it to return. fn must not call CUDA. Capturable into a graph.
void launch_host_function(const Stream& s, void (*fn)(void*), void* arg);

/// A CUDA graph captured from the work queued on one stream between begin_capture and end_capture.
class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(Graph&& o) noexcept : exec_(o.exec_) { o.exec_ = nullptr; }
  Graph& operator=(Graph&& o) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// Starts capturing s (thread-local mode): the calls queued on s from now on are recorded, not run.
  static void begin_capture(const Stream& s);
  /// Ends the capture on s and instantiates the graph. Throws CudaError if something in between broke it.
  static Graph end_capture(const Stream& s);

  /// Queues one run of the whole graph on s.
  void launch(const Stream& s) const;
  bool empty() const noexcept { return exec_ == nullptr; }

 private:
  void* exec_ = nullptr;
};

}  // namespace hmoe::cuda
