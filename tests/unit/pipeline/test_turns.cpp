// pipeline::Turns: coroutines that reach their turns in a scrambled order still enqueue in ticket order — what
// keeps micro-batch b's attention behind micro-batch b - 1's on the GPU stream.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <hmoe/pipeline/run_lanes.hpp>
#include <hmoe/pipeline/turns.hpp>
#include <hmoe/policy/pipeline.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace hmoe;
namespace asio = boost::asio;

namespace {

/// Lane `b` of `lanes`: for each of `rounds` layers, a random number of unrelated suspensions, then its turn.
asio::awaitable<void> lane(pipeline::Turns& turns, std::vector<int>& log, int b, int lanes, int rounds,
                           std::vector<int> delays) {
  for (int l = 0; l < rounds; ++l) {
    for (int i = 0; i < delays[static_cast<std::size_t>(l)]; ++i) co_await asio::post(asio::use_awaitable);
    co_await turns.wait(static_cast<std::int64_t>(l) * lanes + b, asio::use_awaitable);
    log.push_back(l * lanes + b);
    turns.advance();
  }
}

}  // namespace

TEST_CASE("turns run in ticket order whatever order the coroutines arrive in") {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 50; ++trial) {
    const int lanes = 1 + static_cast<int>(rng() % 6), rounds = 1 + static_cast<int>(rng() % 9);
    asio::io_context io;
    pipeline::Turns turns(io.get_executor());
    std::vector<int> log, order(static_cast<std::size_t>(lanes));
    for (int b = 0; b < lanes; ++b) order[static_cast<std::size_t>(b)] = b;
    std::shuffle(order.begin(), order.end(), rng);  // spawned in a random order
    for (const int b : order) {
      std::vector<int> delays(static_cast<std::size_t>(rounds));
      for (auto& d : delays) d = static_cast<int>(rng() % 5);
      asio::co_spawn(io, lane(turns, log, b, lanes, rounds, delays), asio::detached);
    }
    io.run();
    REQUIRE(log.size() == static_cast<std::size_t>(lanes * rounds));
    for (std::size_t i = 0; i < log.size(); ++i) CHECK(log[i] == static_cast<int>(i));
    CHECK(turns.current() == lanes * rounds);
  }
}

TEST_CASE("run_lanes: a lane that throws stops the lanes waiting for its turn, and the error comes out") {
  for (int lanes = 1; lanes <= 4; ++lanes)
    for (int failing = 0; failing < lanes; ++failing) {
      std::vector<int> log;
      bool threw = false;
      try {
        (void)pipeline::run_lanes(lanes, [&](int b, pipeline::Turns& turns) -> asio::awaitable<void> {
          return [](pipeline::Turns& t, std::vector<int>& log, int b, int lanes, int failing) -> asio::awaitable<void> {
            for (int l = 0; l < 3; ++l) {
              co_await t.wait(static_cast<std::int64_t>(l) * lanes + b, asio::use_awaitable);
              if (l == 1 && b == failing) throw std::runtime_error("lane " + std::to_string(b) + " failed");
              log.push_back(l * lanes + b);
              t.advance();
            }
          }(turns, log, b, lanes, failing);
        });
      } catch (const std::runtime_error& e) {
        threw = true;
        CHECK(std::string(e.what()) == "lane " + std::to_string(failing) + " failed");
      }
      CHECK(threw);
      REQUIRE(log.size() == static_cast<std::size_t>(lanes + failing));  // layer 0, then layer 1 up to the failure
      for (std::size_t i = 0; i < log.size(); ++i) CHECK(log[i] == static_cast<int>(i));
    }
  const auto taken = pipeline::run_lanes(3, [](int b, pipeline::Turns& turns) -> asio::awaitable<void> {
    return [](pipeline::Turns& t, int b) -> asio::awaitable<void> {
      co_await t.wait(b, asio::use_awaitable);
      t.advance();
    }(turns, b);
  });
  CHECK(taken == 3);
}

TEST_CASE("pipeline policies") {
  static_assert(pipeline_policy<Pipeline<Sequential>> && pipeline_policy<Pipeline<CpuGpuOverlap<4>>>);
  static_assert(!pipeline_policy<Sequential> && !pipeline_policy<int>);
  static_assert(CpuGpuOverlap<3>::micro_batches == 3 && CpuGpuOverlap<3>::overlap && !Sequential::overlap);
  CHECK(CpuGpuOverlap<2>::name() == "overlap x2");
}
