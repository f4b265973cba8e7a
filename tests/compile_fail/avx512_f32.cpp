// Must not compile: the AVX-512 kernels take block formats (and Stored, each tensor as the file has it); F32 weights have none.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Isa<AVX512>, Quant<Stored>>;
#else
template struct LayerPolicies<Isa<AVX512>, Quant<F32>>;
#endif
