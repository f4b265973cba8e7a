/// \file
/// \brief host_memory.hpp: pinned buffers round-tripped through copy_async, a host function queued on a stream, and
/// a graph (a kernel plus a host function) captured once and launched three times. Results are exact (copies,
/// additions of small integers).
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <numeric>
#include <utility>

#include "gpu_support.hpp"
#include "hmoe/cuda/host_memory.hpp"
#include "hmoe/cuda/rows.hpp"
#include "hmoe/cuda/stream.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
void increment(void* counter) { static_cast<std::atomic<int>*>(counter)->fetch_add(1); }
}  // namespace

TEST_CASE("PinnedBuffer round-trips through the device with copy_async") {
  const std::size_t n = 1 << 20;
  cuda::PinnedBuffer in(n * sizeof(float)), out(n * sizeof(float));
  REQUIRE(in.data() != nullptr);
  CHECK(in.bytes() == n * sizeof(float));
  std::iota(in.as<float>(), in.as<float>() + n, 0.5f);
  std::memset(out.data(), 0xFF, out.bytes());
  cuda::Buffer dev(n * sizeof(float));
  cuda::Stream s;
  cuda::copy_async(dev.data(), in.data(), in.bytes(), s);
  cuda::copy_async(out.data(), dev.data(), out.bytes(), s);
  s.synchronize();
  CHECK(std::memcmp(in.data(), out.data(), in.bytes()) == 0);

  cuda::PinnedBuffer moved = std::move(in);
  CHECK(in.data() == nullptr);
  CHECK(moved.bytes() == n * sizeof(float));
}

TEST_CASE("launch_host_function runs after the work before it") {
  std::atomic<int> counter{0};
  cuda::Stream s;
  cuda::launch_host_function(s, increment, &counter);
  cuda::launch_host_function(s, increment, &counter);
  s.synchronize();
  CHECK(counter.load() == 2);
}

TEST_CASE("a captured graph replays its kernel and host function") {
  const std::int64_t n = 4099;
  std::vector<float> x0(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
  std::iota(x0.begin(), x0.end(), -100.0f);
  std::iota(y.begin(), y.end(), 1.0f);
  cuda::Buffer d_x = upload(x0), d_y = upload(y);
  std::atomic<int> counter{0};
  cuda::Stream s;

  cuda::Graph::begin_capture(s);
  cuda::add_inplace(d_x.as<float>(), d_y.as<const float>(), n, s);
  cuda::launch_host_function(s, increment, &counter);
  cuda::Graph graph = cuda::Graph::end_capture(s);
  REQUIRE_FALSE(graph.empty());
  s.synchronize();
  CHECK(counter.load() == 0);  // captured, not run
  CHECK(download<float>(d_x, static_cast<std::size_t>(n)) == x0);

  for (int i = 0; i < 3; ++i) graph.launch(s);
  s.synchronize();
  CHECK(counter.load() == 3);
  const auto x = download<float>(d_x, static_cast<std::size_t>(n));
  int bad = 0;
  for (std::int64_t i = 0; i < n; ++i) bad += !(x[i] == x0[i] + 3.0f * y[i]);  // small integers: exact
  CHECK(bad == 0);

  cuda::Graph other = std::move(graph);
  CHECK(graph.empty());
  CHECK_FALSE(other.empty());
}
