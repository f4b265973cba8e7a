/// \file
/// \brief embedding_gather: one block per token copies its table row, widened to f32.
#include <cmath>

#include "check.hpp"
#include "device_util.cuh"
#include "hmoe/cuda/embedding.hpp"

namespace hmoe::cuda {

namespace {
template <class Table>
__global__ void embedding_kernel(const Table* __restrict__ table, const std::int32_t* __restrict__ ids,
                                 float* __restrict__ out, std::int64_t hidden, std::int64_t vocab) {
  const std::int64_t t = blockIdx.x;
  const std::int32_t id = ids[t];
  const bool ok = id >= 0 && id < vocab;
  const Table* row = table + (ok ? static_cast<std::int64_t>(id) : 0) * hidden;
  float* o = out + t * hidden;
  for (std::int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = ok ? detail::to_f32(row[i]) : NAN;
}
}  // namespace

template <activation Table>
void embedding_gather(const Table* table, const std::int32_t* ids, float* out, std::int64_t tokens,
                      std::int64_t hidden, std::int64_t vocab, const Stream& s) {
  if (tokens <= 0 || hidden <= 0) return;
  embedding_kernel<Table><<<static_cast<unsigned>(tokens), 256, 0, detail::native(s)>>>(table, ids, out, hidden,
                                                                                          vocab);
  HMOE_CUDA_CHECK_LAUNCH("embedding_kernel");
}

template void embedding_gather<float>(const float*, const std::int32_t*, float*, std::int64_t, std::int64_t,
                                      std::int64_t, const Stream&);
template void embedding_gather<Bf16>(const Bf16*, const std::int32_t*, float*, std::int64_t, std::int64_t,
                                     std::int64_t, const Stream&);

}  // namespace hmoe::cuda
