/// \file
/// \brief `Trace`: a timeline of what the CPU and the GPU did during forward passes, written as a Chrome trace
/// (JSON, opens in https://ui.perfetto.dev or chrome://tracing), to see whether the pipeline overlaps them.
///
/// Host spans are timed with the steady clock. GPU spans are pairs of CUDA events recorded on the stream and
/// placed on the host timeline after the pass: each pass records an anchor event on an idle stream at a known
/// host time, and a GPU mark's time is the anchor's plus the event's elapsed time since it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "hmoe/cuda/stream.hpp"

namespace hmoe::pipeline {

/// Timeline rows.
enum class Track : int { Gpu = 1, CpuExperts = 2, Host = 3 };

class Trace {
 public:
  using Clock = std::chrono::steady_clock;

  /// Starts a pass: `s` must be idle (the caller synchronized it).
  void begin_pass(const cuda::Stream& s) {
    resolve_pending();
    anchor_.record(s);
    anchor_.synchronize();
    anchor_us_ = now_us();
  }

  /// A GPU mark: an event recorded on s now; pass two marks to gpu_span.
  std::size_t mark(const cuda::Stream& s) {
    if (next_event_ == events_.size()) events_.emplace_back();
    events_[next_event_].record(s);
    return next_event_++;
  }
  void gpu_span(std::string name, std::size_t begin, std::size_t end, int layer, int micro_batch) {
    pending_.push_back({std::move(name), begin, end, layer, micro_batch});
  }

  void host_span(Track track, std::string name, double begin_us, double end_us, int layer, int micro_batch) {
    spans_.push_back({std::move(name), track, begin_us, end_us - begin_us, layer, micro_batch});
  }

  /// Places the pass's GPU spans on the timeline: call with the stream finished (after the pass synchronized).
  void end_pass() { resolve_pending(); }

  static double now_us() {
    return std::chrono::duration<double, std::micro>(Clock::now().time_since_epoch()).count();
  }

  std::size_t size() const { return spans_.size(); }

  /// Writes every span recorded so far (Chrome trace event format, times in microseconds).
  void write(const std::string& path) const {
    std::ofstream out(path);
    if (!out) throw std::runtime_error("hmoe: cannot write the trace file '" + path + "'");
    const double t0 = spans_.empty() ? 0.0 : first_us();
    out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
    out << R"({"name":"process_name","ph":"M","pid":1,"args":{"name":"hmoe"}},)" << '\n';
    for (auto [tid, name] : {std::pair{Track::Gpu, "GPU stream"}, std::pair{Track::CpuExperts, "CPU routed experts"},
                             std::pair{Track::Host, "host (orchestrator)"}})
      out << R"({"name":"thread_name","ph":"M","pid":1,"tid":)" << static_cast<int>(tid) << R"(,"args":{"name":")"
          << name << "\"}},\n";
    for (std::size_t i = 0; i < spans_.size(); ++i) {
      const auto& s = spans_[i];
      out << R"({"name":")" << s.name << R"(","ph":"X","pid":1,"tid":)" << static_cast<int>(s.track)
          << ",\"ts\":" << (s.begin_us - t0) << ",\"dur\":" << s.dur_us << R"(,"args":{"layer":)" << s.layer
          << ",\"micro_batch\":" << s.micro_batch << "}}" << (i + 1 < spans_.size() ? ",\n" : "\n");
    }
    out << "]}\n";
    if (!out) throw std::runtime_error("hmoe: writing the trace file '" + path + "' failed");
  }

 private:
  struct Span {
    std::string name;
    Track track;
    double begin_us, dur_us;
    int layer, micro_batch;
  };
  struct Pending {
    std::string name;
    std::size_t begin, end;
    int layer, micro_batch;
  };

  void resolve_pending() {
    for (const auto& p : pending_) {
      const double b = anchor_us_ + 1e3 * events_[p.begin].elapsed_ms_since(anchor_);
      const double e = anchor_us_ + 1e3 * events_[p.end].elapsed_ms_since(anchor_);
      spans_.push_back({p.name, Track::Gpu, b, e - b, p.layer, p.micro_batch});
    }
    pending_.clear();
    next_event_ = 0;
  }

  double first_us() const {
    double t = spans_.front().begin_us;
    for (const auto& s : spans_) t = std::min(t, s.begin_us);
    return t;
  }

  cuda::Event anchor_;
  double anchor_us_ = 0;
  std::deque<cuda::Event> events_;  // reused from pass to pass
  std::size_t next_event_ = 0;
  std::vector<Pending> pending_;
  std::vector<Span> spans_;
};

}  // namespace hmoe::pipeline
