// Must not compile: hmoe's AMX kernels take Int8, BF16, Q4_K (and Stored: each tensor as the file has it); Q6_K tiles do not exist.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Isa<AMX>, Quant<Q4_K>>;
#else
template struct LayerPolicies<Isa<AMX>, Quant<Q6_K>>;
#endif
