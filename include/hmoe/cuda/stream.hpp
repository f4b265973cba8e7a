/// \file
/// \brief Stream and Event: RAII owners of a cudaStream_t / cudaEvent_t, seen by users as opaque handles.
///
/// Every launch in the unit takes a Stream&; the work is queued, not finished, when the call returns. The
/// native handles are exposed as void* so that code which does include CUDA can use them (static_cast to
/// cudaStream_t), while these headers stay free of cuda_runtime.h.
#pragma once

namespace hmoe::cuda {

class Stream {
 public:
  Stream();  ///< a new non-blocking stream on the current device
  ~Stream();
  Stream(Stream&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void synchronize() const;  ///< waits for the queued work; throws CudaError if any of it failed
  void* native() const noexcept { return s_; }

 private:
  void* s_;
};

/// A point in a stream: record() it, then wait on it (host or another stream) or time the span between two.
class Event {
 public:
  Event();  ///< timing enabled
  ~Event();
  Event(Event&& o) noexcept : e_(o.e_) { o.e_ = nullptr; }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void record(const Stream& s);  ///< during a capture of s: an event node, recorded by each launch of the graph
  void synchronize() const;
  bool ready() const;                      ///< true once the recorded work has finished
  void wait_in(const Stream& s) const;     ///< later work on s waits for this event
  float elapsed_ms_since(const Event& start) const;  ///< both recorded and finished
  void* native() const noexcept { return e_; }

 private:
  void* e_;
};

}  // namespace hmoe::cuda
