// Must not compile: Q8_K is for activations, not weights.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Quant<Q8_0>>;
#else
template struct LayerPolicies<Quant<Q8_K>>;
#endif
