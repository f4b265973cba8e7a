/// \file
/// \brief Appending token rows (c_kv, k_rope) to the paged MLA cache, rounding to bf16.
///
/// One thread per 16-byte chunk of a cache row (72 per token): the row is written with full-width stores and the
/// source read with vector loads, and a token's page lookup is a cached block-table read.

#include "mla_common.cuh"

namespace hmoe::cuda {
namespace mla_detail {
namespace {

constexpr int kChunks = mla_cache_row / 8;

template <class T>
__global__ void __launch_bounds__(256) mla_append_kernel(bf16* pages, const int* block_table, int page_size,
                                                         int max_pages, const int* seq_ids, const int* positions,
                                                         const T* latent, long long latent_stride, const T* rope,
                                                         long long rope_stride, long long tokens) {
  const long long c = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= tokens * kChunks) return;
  const long long i = c / kChunks;
  const int ch = static_cast<int>(c % kChunks);
  const int seq = seq_ids ? seq_ids[i] : 0;
  const int pos = positions[i];
  const long long page = block_table[static_cast<long long>(seq) * max_pages + pos / page_size];
  const T* src = ch < mla_latent_dim / 8 ? latent + i * latent_stride + ch * 8
                                         : rope + i * rope_stride + (ch - mla_latent_dim / 8) * 8;
  *reinterpret_cast<uint4*>(pages + (page * page_size + pos % page_size) * mla_cache_row + ch * 8) =
      load8_as_bf16<T>(src);
}

}  // namespace
}  // namespace mla_detail

void mla_cache_append(const MlaPagedCache& cache, const std::int32_t* seq_ids, const std::int32_t* positions,
                      const void* latent, std::int64_t latent_stride, const void* rope_key, std::int64_t rope_stride,
                      MlaDtype dtype, std::int64_t tokens, const Stream& stream) {
  using namespace mla_detail;
  if (tokens == 0) return;
  require(tokens > 0 && positions && latent && rope_key && cache.pages && cache.block_table, "bad append arguments");
  require(cache.page_size >= 1 && cache.max_pages_per_seq >= 1, "bad page_size or max_pages_per_seq");
  require(aligned16(latent) && aligned16(rope_key) && aligned16(cache.pages),
          "append pointers must be 16-byte aligned");
  require(latent_stride >= mla_latent_dim && rope_stride >= mla_rope_dim && latent_stride % 8 == 0 &&
              rope_stride % 8 == 0,
          "append strides must cover a row and be multiples of 8 elements");
  const long long chunks = tokens * kChunks;
  constexpr int kBlock = 256;
  const long long blocks = (chunks + kBlock - 1) / kBlock;
  require(blocks <= 0x7fffffffLL, "too many tokens in one append");
  const auto s = detail::native(stream);
  auto* pages = static_cast<bf16*>(cache.pages);
  if (dtype == MlaDtype::F32)
    mla_append_kernel<float><<<static_cast<unsigned>(blocks), kBlock, 0, s>>>(
        pages, cache.block_table, cache.page_size, cache.max_pages_per_seq, seq_ids, positions,
        static_cast<const float*>(latent), latent_stride, static_cast<const float*>(rope_key), rope_stride, tokens);
  else
    mla_append_kernel<bf16><<<static_cast<unsigned>(blocks), kBlock, 0, s>>>(
        pages, cache.block_table, cache.page_size, cache.max_pages_per_seq, seq_ids, positions,
        static_cast<const bf16*>(latent), latent_stride, static_cast<const bf16*>(rope_key), rope_stride, tokens);
  HMOE_CUDA_CHECK_LAUNCH("mla_append_kernel");
}

}  // namespace hmoe::cuda
