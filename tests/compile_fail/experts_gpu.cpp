// Must not compile: routed experts placed on the GPU without the GPU layers (hmoe/gpu.hpp) included.
#include <hmoe/layer/experts.hpp>
using namespace hmoe;
using D = dims::Dynamic;
#ifdef HMOE_COMPILE_FAIL_CONTROL
template class Experts<D, Placement<CPU>, Quant<Stored>>;
#else
template class Experts<D, Placement<GPU>, Quant<Stored>>;
#endif
