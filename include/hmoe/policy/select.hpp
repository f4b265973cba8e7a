/// \file
/// \brief Reads a layer's unordered policy list: which Placement, Quant and Isa it names, with defaults.
///
/// `LayerPolicies<Ps...>` is where every layer template checks its arguments, so a wrong list fails with one
/// specific `static_assert` message rather than "no matching specialization" deep inside a kernel.
#pragma once

#include <concepts>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "hmoe/policy/isa.hpp"
#include "hmoe/policy/placement.hpp"
#include "hmoe/policy/quant.hpp"

namespace hmoe {

namespace detail {

template <template <class> class Is, class Default, class... Ps>
struct first_of {
  using type = Default;
};
template <template <class> class Is, class Default, class P, class... Ps>
struct first_of<Is, Default, P, Ps...> {
  using type = std::conditional_t<Is<P>::value, P, typename first_of<Is, Default, Ps...>::type>;
};

template <class T> struct IsPlacement : std::bool_constant<placement_policy<T>> {};
template <class T> struct IsQuant : std::bool_constant<quant_policy<T>> {};
template <class T> struct IsIsa : std::bool_constant<isa_policy<T>> {};

}  // namespace detail

/// The policies of one layer. Defaults: `Placement<CPU>`, `Quant<Stored>`, `Isa<Generic>`.
template <class... Ps>
struct LayerPolicies {
  static_assert(((placement_policy<Ps> || quant_policy<Ps> || isa_policy<Ps>) && ...),
                "hmoe: a layer takes only Placement<>, Quant<> and Isa<> policies; one of the arguments is none of these");
  static_assert((int{placement_policy<Ps>} + ... + 0) <= 1, "hmoe: more than one Placement<> given to one layer");
  static_assert((int{quant_policy<Ps>} + ... + 0) <= 1, "hmoe: more than one Quant<> given to one layer");
  static_assert((int{isa_policy<Ps>} + ... + 0) <= 1, "hmoe: more than one Isa<> given to one layer");

  using device = typename detail::first_of<detail::IsPlacement, Placement<CPU>, Ps...>::type::device;
  using format = typename detail::first_of<detail::IsQuant, Quant<Stored>, Ps...>::type::format;
  using isa = typename detail::first_of<detail::IsIsa, Isa<Generic>, Ps...>::type::isa;
  static constexpr bool isa_given = (isa_policy<Ps> || ...);

  static_assert(!(std::same_as<device, GPU> && isa_given),
                "hmoe: Isa<> picks CPU kernels; a layer with Placement<GPU> runs CUDA kernels and takes no Isa<>");
  static_assert(!std::same_as<isa, AMX> || AMX::runs<format>,
                "hmoe: Isa<AMX> runs Quant<Int8>, Quant<BF16>, Quant<Q4_K> or Quant<Stored> weights only");
  static_assert(!std::same_as<isa, AVX512> || AVX512::runs<format>,
                "hmoe: Isa<AVX512> runs Quant<Q4_K|Q5_K|Q6_K|Q8_0|Q5_0|BF16|Int8|Stored> weights only");
  static_assert(!std::same_as<format, Q8_K>, "hmoe: Q8_K is an activation format; weights cannot be Quant<Q8_K>");

  /// The start-up half of the check: the compiler allowed the ISA, the running CPU must have it too.
  static void require_available(std::string_view layer) {
    if (!isa::available())
      throw std::runtime_error("hmoe: " + std::string(layer) + " is built with Isa<" + std::string(isa::name) +
                               ">, which this CPU does not offer (cpuid" +
                               (std::same_as<isa, AMX> ? std::string(", or the kernel refused AMX tile state") : "") +
                               "); choose a model type with " +
                               (std::same_as<isa, AMX> ? "Isa<AVX512> or Isa<Generic>" : "Isa<Generic>"));
  }
};

}  // namespace hmoe
