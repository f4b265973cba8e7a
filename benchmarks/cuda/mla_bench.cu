/// \file
/// \brief Bandwidth benchmark of the GPU MLA kernels at DeepSeek-V3's head shape (128 heads, 512 + 64): decode over
/// 1k / 8k / 32k contexts at batch 1 and 8 against a device-to-device copy measured in the same process, and a
/// 2048-token causal prefill. Prints one JSON line per measurement, then a markdown table.
///
/// Decode reads each cached token once from HBM (1152 bytes), shared by all heads; "GB/s" is those unique bytes
/// over the call time (split-KV partials and the combine included). Caches smaller than ~256 MB are replicated and
/// cycled so that every call streams from HBM, not from the 50 MB L2. Copy bandwidth counts read + write bytes.
/// Note: 128 heads make decode nearly compute-bound (≈ 242 flop per cache byte), so TFLOP/s is printed as well.
///
/// Usage: hmoe_mla_bench [--sweep]   (--sweep also times batch 1 at forced split counts)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/device.hpp"
#include "hmoe/cuda/mla.hpp"
#include "hmoe/cuda/stream.hpp"

namespace {

using namespace hmoe::cuda;

constexpr int kHeads = 128, kPage = 64;
constexpr float kScale = 0.1352f;
constexpr double kFlopPerTokenHead = 2.0 * (mla_cache_row + mla_latent_dim);  // q·k over 576, p·v over 512

/// Deterministic pseudo-random bf16 in [-1, 1) (bits of a hash), so no host upload of hundreds of MB is needed.
__global__ void fill_bf16(std::uint16_t* p, std::size_t n, std::uint32_t salt) {
  const std::size_t stride = std::size_t{gridDim.x} * blockDim.x;
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += stride) {
    std::uint32_t x = static_cast<std::uint32_t>(i) * 0x9E3779B1u ^ salt;
    x ^= x >> 15, x *= 0x85EBCA77u, x ^= x >> 13;
    const float f = static_cast<float>(x >> 8) * (2.f / 16777216.f) - 1.f;
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    p[i] = static_cast<std::uint16_t>(b >> 16);
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "mla_bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

void fill(void* p, std::size_t bf16_count, std::uint32_t salt, const Stream& s) {
  fill_bf16<<<1024, 256, 0, static_cast<cudaStream_t>(s.native())>>>(static_cast<std::uint16_t*>(p), bf16_count, salt);
  check(cudaGetLastError(), "fill_bf16");
}

/// Mean milliseconds per call of f over `iters` calls after `warmup`.
template <class F>
double time_ms(const Stream& s, int warmup, int iters, F f) {
  for (int i = 0; i < warmup; ++i) f(i);
  Event a, b;
  a.record(s);
  for (int i = 0; i < iters; ++i) f(i);
  b.record(s);
  b.synchronize();
  return b.elapsed_ms_since(a) / iters;
}

double copy_gbps(const Stream& s) {
  const std::size_t bytes = std::size_t{1} << 30;
  Buffer src(bytes), dst(bytes);
  src.fill_bytes(1);
  const double ms = time_ms(s, 2, 10, [&](int) {
    check(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice,
                          static_cast<cudaStream_t>(s.native())),
          "cudaMemcpyAsync");
  });
  return 2.0 * bytes / (ms * 1e6);
}

struct Row {
  std::string what;
  int batch, ctx, splits;
  double us, bytes, gbps, frac, tflops;
};

/// batch sequences of ctx tokens each; `replicas` copies of the whole cache, cycled per call.
Row bench_decode(int batch, int ctx, int splits, double copy_bw, const Stream& s) {
  const int pages_per_seq = (ctx + kPage - 1) / kPage;
  const double cache_bytes = double(batch) * ctx * mla_cache_row * 2;
  const int replicas = std::max(1, static_cast<int>(256e6 / cache_bytes + 0.999));
  const std::size_t pages = std::size_t(replicas) * batch * pages_per_seq;
  Buffer cache(pages * kPage * mla_cache_row * 2);
  fill(cache.data(), cache.bytes() / 2, 17, s);
  std::vector<std::int32_t> table(pages);
  for (std::size_t i = 0; i < pages; ++i) table[i] = static_cast<std::int32_t>(i);  // replica r: rows r·batch ..
  Buffer bt = Buffer::from(table.data(), table.size());
  std::vector<std::int32_t> lens(static_cast<std::size_t>(batch), ctx);
  Buffer d_lens = Buffer::from(lens.data(), lens.size());
  Buffer q(std::size_t(batch) * kHeads * mla_cache_row * 2);
  fill(q.data(), q.bytes() / 2, 99, s);
  const MlaQuery mq = MlaQuery::contiguous(q.data(), q.as<char>() + std::size_t(batch) * kHeads * mla_latent_dim * 2,
                                           MlaDtype::BF16, kHeads);
  const MlaDecodePlan plan = mla_decode_plan(batch, kHeads, ctx, splits);
  Buffer ws(std::max<std::size_t>(plan.workspace_bytes, 256));
  Buffer out(std::size_t(batch) * kHeads * mla_latent_dim * 4);
  const double ms = time_ms(s, 3, 20, [&](int i) {
    const MlaPagedCache c{cache.data(), bt.as<const std::int32_t>() + std::size_t(i % replicas) * batch * pages_per_seq,
                          kPage, pages_per_seq};
    mla_decode(c, mq, d_lens.as<const std::int32_t>(), plan, kScale, ws.data(), out.as<float>(), s);
  });
  const double gbps = cache_bytes / (ms * 1e6);
  return {"decode", batch, ctx, plan.num_splits, ms * 1e3, cache_bytes, gbps, gbps / copy_bw,
          double(batch) * ctx * kHeads * kFlopPerTokenHead / (ms * 1e9)};
}

Row bench_prefill(int tokens, double copy_bw, const Stream& s) {
  const int pages_per_seq = (tokens + kPage - 1) / kPage;
  Buffer cache(std::size_t(pages_per_seq) * kPage * mla_cache_row * 2);
  fill(cache.data(), cache.bytes() / 2, 5, s);
  std::vector<std::int32_t> table(static_cast<std::size_t>(pages_per_seq));
  for (int i = 0; i < pages_per_seq; ++i) table[static_cast<std::size_t>(i)] = i;
  Buffer bt = Buffer::from(table.data(), table.size());
  Buffer q(std::size_t(tokens) * kHeads * mla_cache_row * 2);
  fill(q.data(), q.bytes() / 2, 7, s);
  const MlaQuery mq = MlaQuery::contiguous(q.data(), q.as<char>() + std::size_t(tokens) * kHeads * mla_latent_dim * 2,
                                           MlaDtype::BF16, kHeads);
  Buffer out(std::size_t(tokens) * kHeads * mla_latent_dim * 4);
  const MlaPagedCache c{cache.data(), bt.as<const std::int32_t>(), kPage, pages_per_seq};
  const double ms = time_ms(s, 2, 10, [&](int) {
    mla_prefill(c, 0, 0, mq, tokens, kHeads, kScale, out.as<float>(), s);
  });
  const double pairs = double(tokens) * (tokens + 1) / 2;  // (query, visible key) pairs
  const double bytes = double(tokens) * mla_cache_row * 2;
  return {"prefill", 1, tokens, 1, ms * 1e3, bytes, bytes / (ms * 1e6), 0.0,
          pairs * kHeads * kFlopPerTokenHead / (ms * 1e9)};
}

void print_json(const Row& r, double copy_bw) {
  std::printf(
      "{\"bench\":\"mla_%s\",\"heads\":%d,\"batch\":%d,\"tokens\":%d,\"splits\":%d,\"us\":%.2f,\"cache_bytes\":%.0f,"
      "\"gbps\":%.1f,\"copy_gbps\":%.1f,\"frac_of_copy\":%.3f,\"tflops\":%.1f}\n",
      r.what.c_str(), kHeads, r.batch, r.ctx, r.splits, r.us, r.bytes, r.gbps, copy_bw, r.frac, r.tflops);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const bool sweep = argc > 1 && std::strcmp(argv[1], "--sweep") == 0;
  if (device_count() == 0) {
    std::printf("mla_bench: no CUDA device\n");
    return 0;
  }
  const Device dev(0);
  dev.make_current();
  Stream s;
  const double copy_bw = copy_gbps(s);
  std::printf("{\"bench\":\"d2d_copy\",\"device\":\"%s\",\"sms\":%d,\"gbps\":%.1f}\n", dev.name().c_str(),
              dev.multiprocessors(), copy_bw);
  std::vector<Row> rows;
  for (int batch : {1, 8})
    for (int ctx : {1024, 8192, 32768}) {
      rows.push_back(bench_decode(batch, ctx, 0, copy_bw, s));
      print_json(rows.back(), copy_bw);
    }
  if (sweep)
    for (int ctx : {8192, 32768})
      for (int splits : {1, 8, 16, 32, 64, 128}) {
        rows.push_back(bench_decode(1, ctx, splits, copy_bw, s));
        print_json(rows.back(), copy_bw);
      }
  rows.push_back(bench_prefill(2048, copy_bw, s));
  print_json(rows.back(), copy_bw);

  std::printf("\nMLA on %s, %d heads × (512 + 64), page %d; copy bandwidth %.0f GB/s (read + write)\n\n",
              dev.name().c_str(), kHeads, kPage, copy_bw);
  std::printf("| kernel | batch | tokens | splits | time (µs) | cache MB | GB/s | of copy | TFLOP/s |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const std::string frac = r.what == "decode" ? std::to_string(static_cast<int>(r.frac * 100 + 0.5)) + " %" : "–";
    std::printf("| %s | %d | %d | %d | %.1f | %.1f | %.0f | %s | %.0f |\n", r.what.c_str(), r.batch, r.ctx, r.splits,
                r.us, r.bytes / 1e6, r.gbps, frac.c_str(), r.tflops);
  }
  return 0;
}
