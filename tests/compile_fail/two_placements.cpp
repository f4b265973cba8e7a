// Must not compile: two Placement<> policies for one layer.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Placement<CPU>, Quant<Stored>>;
#else
template struct LayerPolicies<Placement<CPU>, Quant<Stored>, Placement<GPU>>;
#endif
