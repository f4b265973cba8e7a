/// \file
/// \brief `Pipeline<Sequential>` / `Pipeline<CpuGpuOverlap<N>>`: how much of a layout's CPU and GPU work overlaps.
///
/// - `Sequential`: every stage waits for the one before it. The GPU idles while the CPU runs the routed experts
///   and the shared experts run after them: the baseline that shows what overlap buys.
/// - `CpuGpuOverlap<N>`: the shared experts (GPU) run while the routed experts (CPU) run, and a prompt is split
///   into N micro-batches so that the GPU's attention of one overlaps the CPU's experts of another. N = 1 keeps
///   only the shared/routed overlap (what a one-token decode step can use).
#pragma once

#include <concepts>
#include <string>

namespace hmoe {

struct Sequential {
  static constexpr int micro_batches = 1;
  static constexpr bool overlap = false;
  static std::string name() { return "sequential"; }
};

template <int N>
struct CpuGpuOverlap {
  static_assert(N >= 1 && N <= 8, "hmoe: CpuGpuOverlap<N> takes 1 to 8 micro-batches");
  static constexpr int micro_batches = N;
  static constexpr bool overlap = true;
  static std::string name() { return "overlap x" + std::to_string(N); }
};

template <class T>
concept pipeline_mode = std::same_as<T, Sequential> || (T::overlap && T::micro_batches >= 1);

template <pipeline_mode Mode>
struct Pipeline {
  using mode = Mode;
};

namespace detail {
template <class T> inline constexpr bool is_pipeline = false;
template <class M> inline constexpr bool is_pipeline<Pipeline<M>> = true;
}  // namespace detail

template <class T>
concept pipeline_policy = detail::is_pipeline<T>;

}  // namespace hmoe
