/// \file
/// \brief hmoe_cuda_bench: device-to-device copy bandwidth (cudaMemcpy and a copy kernel), Q4_K and Int8 GEMV
/// bandwidth at batch 1 for DeepSeek shapes against the copy's, and the BF16 cuBLASLt GEMM rate.
///
/// GEMV weights are rotated through enough copies (>= 256 MiB together) that each call reads them from HBM, not
/// from the 50 MB L2: the figure is what decode sees. Bandwidth counts bytes read + written for the copies and
/// weight bytes read for the GEMVs (activations are tiny and cached). Usage: hmoe_cuda_bench [--md FILE].
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <vector>

#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/device.hpp"
#include "hmoe/cuda/gemm.hpp"
#include "hmoe/cuda/gemv.hpp"
#include "hmoe/cuda/stream.hpp"

using namespace hmoe;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

__global__ void copy_kernel(const uint4* __restrict__ src, uint4* __restrict__ dst, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

/// Deterministic pseudo-random bytes (a hash of the index): weights whose values do not matter to the timing.
__global__ void fill_kernel(std::uint32_t* p, std::size_t n, std::uint32_t salt) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u ^ salt;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    p[i] = h;
  }
}

/// f32 values in [-1, 1): activations that cannot be NaN or inf.
__global__ void fill_activations(float* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<float>((i * 7919u) % 2000u) / 1000.0f - 1.0f;
}

/// bf16 values in [-1, 1) (the top half of the f32 above): finite, so the GEMM's timing is a real product's.
__global__ void fill_bf16(std::uint16_t* p, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<std::uint16_t>(__float_as_uint(static_cast<float>((i * 7919u) % 2000u) / 1000.0f - 1.0f) >> 16);
}

void fill_random(cuda::Buffer& b, std::uint32_t salt) {
  fill_kernel<<<1024, 256>>>(b.as<std::uint32_t>(), b.bytes() / 4, salt);
  check(cudaGetLastError(), "fill_kernel");
}

/// Mean milliseconds of `iters` calls of f(i), after `warm` untimed ones.
template <class F>
double time_ms(const cuda::Stream& s, int warm, int iters, F&& f) {
  for (int i = 0; i < warm; ++i) f(i);
  cuda::Event a, b;
  a.record(s);
  for (int i = 0; i < iters; ++i) f(i);
  b.record(s);
  b.synchronize();
  return static_cast<double>(b.elapsed_ms_since(a)) / iters;
}

struct Row {
  std::string what, shape;
  double value;
  std::string unit;
  double vs_copy;  // < 0: not applicable
};

}  // namespace

int main(int argc, char** argv) {
  const char* md_path = nullptr;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--md") md_path = argv[i + 1];
  if (cuda::device_count() == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 0;
  }
  const cuda::Device dev(0);
  dev.make_current();
  std::printf("device: %s (sm_%d, %d SMs)\n", dev.name().c_str(), dev.compute_capability(), dev.multiprocessors());
  cuda::Stream s;
  const cudaStream_t st = static_cast<cudaStream_t>(s.native());
  std::vector<Row> rows;

  // 1. Copy bandwidth, 1 GiB each way.
  const std::size_t copy_bytes = std::size_t{1} << 30;
  double copy_gbs = 0;
  {
    cuda::Buffer src(copy_bytes), dst(copy_bytes);
    fill_random(src, 1);
    check(cudaDeviceSynchronize(), "fill");
    const double ms_memcpy = time_ms(s, 2, 10, [&](int) {
      check(cudaMemcpyAsync(dst.data(), src.data(), copy_bytes, cudaMemcpyDeviceToDevice, st), "cudaMemcpyAsync");
    });
    const double ms_kernel = time_ms(s, 2, 10, [&](int) {
      copy_kernel<<<dev.multiprocessors() * 8, 512, 0, st>>>(src.as<const uint4>(), dst.as<uint4>(), copy_bytes / 16);
      check(cudaGetLastError(), "copy_kernel");
    });
    const double gbs_memcpy = 2.0 * copy_bytes / (ms_memcpy * 1e6), gbs_kernel = 2.0 * copy_bytes / (ms_kernel * 1e6);
    copy_gbs = std::max(gbs_memcpy, gbs_kernel);
    rows.push_back({"D2D copy, cudaMemcpy", "1 GiB", gbs_memcpy, "GB/s (r+w)", -1});
    rows.push_back({"D2D copy, kernel", "1 GiB", gbs_kernel, "GB/s (r+w)", -1});
  }

  // 2. GEMV at batch 1, f32 activations.
  struct Shape {
    const char* name;
    std::int64_t rows, k;
  };
  const Shape shapes[] = {
      {"V3 shared gate/up", 2048, 7168}, {"V3 shared down", 7168, 2048},   {"V3 dense gate/up", 18432, 7168},
      {"V3 dense down", 7168, 18432},    {"V2-Lite shared gate/up", 2816, 2048}, {"V2-Lite shared down", 2048, 2816},
  };
  const std::size_t rotate_bytes = std::size_t{256} << 20;
  for (int fmt = 0; fmt < 2; ++fmt) {
    for (const Shape& sh : shapes) {
      const std::size_t wbytes = fmt == 0 ? static_cast<std::size_t>(sh.rows) * (sh.k / 256) * sizeof(quant::BlockQ4_K)
                                          : static_cast<std::size_t>(sh.rows) * sh.k;
      const std::size_t copies = std::max<std::size_t>(2, (rotate_bytes + wbytes - 1) / wbytes);
      const std::size_t stride = (wbytes + 255) / 256 * 256;
      cuda::Buffer w(stride * copies), scale(static_cast<std::size_t>(sh.rows) * 4);
      cuda::Buffer x(static_cast<std::size_t>(sh.k) * 4), y(static_cast<std::size_t>(sh.rows) * 4);
      fill_random(w, 7);
      fill_activations<<<256, 256, 0, st>>>(x.as<float>(), sh.k);
      fill_activations<<<256, 256, 0, st>>>(scale.as<float>(), sh.rows);
      check(cudaGetLastError(), "fill_activations");
      check(cudaDeviceSynchronize(), "fill");
      const double ms = time_ms(s, 3, 200, [&](int i) {
        const char* wi = w.as<const char>() + (static_cast<std::size_t>(i) % copies) * stride;
        if (fmt == 0)
          cuda::gemv_q4_k(reinterpret_cast<const quant::BlockQ4_K*>(wi), x.as<const float>(), y.as<float>(), sh.rows,
                          sh.k, 1, s);
        else
          cuda::gemv_int8(reinterpret_cast<const std::int8_t*>(wi), scale.as<const float>(), x.as<const float>(),
                          y.as<float>(), sh.rows, sh.k, 1, s);
      });
      const double gbs = wbytes / (ms * 1e6);
      char shape[64];
      std::snprintf(shape, sizeof shape, "%lld x %lld (%.1f MB), %.1f us", static_cast<long long>(sh.rows),
                    static_cast<long long>(sh.k), wbytes / 1e6, ms * 1e3);
      rows.push_back({std::string(fmt == 0 ? "Q4_K GEMV " : "Int8 GEMV ") + sh.name, shape, gbs, "GB/s", gbs / copy_gbs});
    }
  }

  // 3. BF16 GEMM through cuBLASLt: 512 tokens × 7168 → 18432 (V3's dense gate at prefill).
  {
    const std::int64_t m = 512, k = 7168, n = 18432;
    cuda::Buffer xa(m * k * 2), wa(n * k * 2), ya(m * n * 4);
    fill_bf16<<<1024, 256, 0, st>>>(xa.as<std::uint16_t>(), static_cast<std::size_t>(m * k));
    fill_bf16<<<1024, 256, 0, st>>>(wa.as<std::uint16_t>(), static_cast<std::size_t>(n * k));
    check(cudaGetLastError(), "fill_bf16");
    cuda::Gemm gemm;
    const double ms = time_ms(s, 3, 20, [&](int) {
      gemm.bf16(xa.as<const cuda::Bf16>(), wa.as<const cuda::Bf16>(), ya.as<float>(), m, n, k, s);
    });
    const double tflops = 2.0 * m * n * k / (ms * 1e9);
    char shape[64];
    std::snprintf(shape, sizeof shape, "%lld x %lld x %lld, %.3f ms", static_cast<long long>(m),
                  static_cast<long long>(k), static_cast<long long>(n), ms);
    rows.push_back({"BF16 GEMM (cuBLASLt, f32 out)", shape, tflops, "TFLOP/s", -1});
  }

  std::string md = "| op | shape | result | vs copy |\n|---|---|---|---|\n";
  for (const Row& r : rows) {
    char line[256];
    if (r.vs_copy >= 0)
      std::snprintf(line, sizeof line, "| %s | %s | %.0f %s | %.0f%% |\n", r.what.c_str(), r.shape.c_str(), r.value,
                    r.unit.c_str(), 100.0 * r.vs_copy);
    else
      std::snprintf(line, sizeof line, "| %s | %s | %.1f %s | |\n", r.what.c_str(), r.shape.c_str(), r.value,
                    r.unit.c_str());
    md += line;
  }
  std::printf("\n%s", md.c_str());
  if (md_path) {
    if (FILE* f = std::fopen(md_path, "w")) {
      std::fprintf(f, "device: %s\n\n%s", dev.name().c_str(), md.c_str());
      std::fclose(f);
    }
  }
  return 0;
}
