// Must not compile: Quant<Stored> dequantizes on access, which only the Generic reference runs.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Isa<AVX512>, Quant<Q4_K>>;
#else
template struct LayerPolicies<Isa<AVX512>, Quant<Stored>>;
#endif
