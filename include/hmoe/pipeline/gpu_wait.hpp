/// \file
/// \brief `async_ready(event, token)`: a CUDA event as a Boost.Asio asynchronous operation, so a coroutine can
/// `co_await` GPU work without blocking the thread that runs the other coroutines.
///
/// Completion is found by polling `cudaEventQuery` from the executor: the orchestrating thread has nothing else
/// to do while it waits (the CPU experts of other micro-batches run inline on it), and a poll answers within a
/// microsecond of the GPU finishing, where a host callback (`cudaLaunchHostFunc`) costs two thread hand-offs.
#pragma once

#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include "hmoe/cuda/stream.hpp"

namespace hmoe::pipeline {

namespace detail {
template <class Executor, class Handler>
void poll_event(const Executor& ex, const cuda::Event& e, Handler&& handler) {
  boost::asio::post(ex, [ex, &e, h = std::forward<Handler>(handler)]() mutable {
    if (e.ready()) std::move(h)();
    else poll_event(ex, e, std::move(h));
  });
}
}  // namespace detail

/// Completes (with no arguments) once the work recorded before `e` has finished. `e` must outlive the wait.
template <class CompletionToken>
auto async_ready(const cuda::Event& e, CompletionToken&& token) {
  return boost::asio::async_initiate<CompletionToken, void()>(
      [&e](auto handler) {
        const auto ex = boost::asio::get_associated_executor(handler);
        detail::poll_event(ex, e, std::move(handler));
      },
      token);
}

}  // namespace hmoe::pipeline
