/// \file
/// \brief `run_lanes`: runs one coroutine per micro-batch on the calling thread, sharing one `Turns`, until all
/// have finished. The first exception stops the others (they are destroyed where they wait) and is rethrown.
#pragma once

#include <cstdint>
#include <exception>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "hmoe/pipeline/turns.hpp"

namespace hmoe::pipeline {

/// `make(lane, turns)` returns lane's `boost::asio::awaitable<void>`. Returns the turns taken in all.
template <class Make>
std::int64_t run_lanes(int lanes, Make&& make) {
  boost::asio::io_context io(1);
  Turns turns(io.get_executor());  // declared after io: destroyed first, with any coroutine parked in it
  std::exception_ptr error;
  for (int b = 0; b < lanes; ++b)
    boost::asio::co_spawn(io, make(b, turns), [&](std::exception_ptr e) {
      if (e && !error) {
        error = e;
        io.stop();  // a lane waiting for the failed one's turn would otherwise wait for ever
      }
    });
  io.run();
  if (error) std::rethrow_exception(error);
  return turns.current();
}

}  // namespace hmoe::pipeline
