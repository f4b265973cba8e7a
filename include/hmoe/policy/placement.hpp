/// \file
/// \brief `Placement<CPU|GPU>`: which memory a layer's weights live in and which processor runs it.
#pragma once

#include <concepts>
#include <string_view>

namespace hmoe {

/// Host memory, run by the CPU kernels chosen with `Isa<>`.
struct CPU { static constexpr std::string_view name = "CPU"; };
/// Device memory, run by the separately compiled CUDA unit.
struct GPU { static constexpr std::string_view name = "GPU"; };

template <class T>
concept device_tag = std::same_as<T, CPU> || std::same_as<T, GPU>;

template <device_tag Device>
struct Placement {
  using device = Device;
};

namespace detail {
template <class T> inline constexpr bool is_placement = false;
template <class D> inline constexpr bool is_placement<Placement<D>> = true;
}  // namespace detail

template <class T>
concept placement_policy = detail::is_placement<T>;

}  // namespace hmoe
