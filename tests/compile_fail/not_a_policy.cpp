// Must not compile: an argument that is not a policy.
#include <hmoe/policy/select.hpp>
#include <hmoe/model/dims.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template struct LayerPolicies<Placement<CPU>>;
#else
template struct LayerPolicies<Placement<CPU>, int>;
#endif
