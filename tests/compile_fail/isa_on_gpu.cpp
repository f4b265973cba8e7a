// Must not compile: an Isa<> on a GPU-placed layer.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Placement<GPU>, Quant<Q4_K>>;
#else
template struct LayerPolicies<Placement<GPU>, Isa<AVX512>, Quant<Q4_K>>;
#endif
