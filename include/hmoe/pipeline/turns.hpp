/// \file
/// \brief `Turns`: tickets that make coroutines enqueue in a fixed order. Micro-batch b's attention at layer l
/// reads the cache rows micro-batch b - 1 writes at that layer, so on the one in-order GPU stream it must be
/// queued after them: ticket l × micro_batches + b.
#pragma once

#include <cstdint>
#include <map>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/any_completion_handler.hpp>

namespace hmoe::pipeline {

class Turns {
 public:
  /// Parked coroutines resume through `ex` (the executor all the coroutines run on).
  explicit Turns(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

  /// Completes when `ticket` is the current turn.
  template <class CompletionToken>
  auto wait(std::int64_t ticket, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void()>(
        [this, ticket](auto handler) {
          if (ticket == current_) {
            resume(boost::asio::any_completion_handler<void()>(std::move(handler)));
          } else {
            waiting_.emplace(ticket, boost::asio::any_completion_handler<void()>(std::move(handler)));
          }
        },
        token);
  }

  /// Ends the current turn; the holder of the next ticket, if it waits, resumes.
  void advance() {
    ++current_;
    if (auto it = waiting_.find(current_); it != waiting_.end()) {
      auto h = std::move(it->second);
      waiting_.erase(it);
      resume(std::move(h));
    }
  }

  std::int64_t current() const { return current_; }

 private:
  void resume(boost::asio::any_completion_handler<void()> h) {
    boost::asio::post(ex_, [h = std::move(h)]() mutable { std::move(h)(); });
  }

  boost::asio::any_io_executor ex_;
  std::int64_t current_ = 0;
  std::map<std::int64_t, boost::asio::any_completion_handler<void()>> waiting_;
};

}  // namespace hmoe::pipeline
