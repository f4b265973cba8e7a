// Physical limits of this CPU for the MoE layer: memory read bandwidth, and the peak
// rates of the int8 / bf16 dot-product units the kernels use (AVX-512 VNNI, AVX-512 BF16,
// AMX int8, AMX bf16), each with 1 thread and with all threads.
// Every ISA is chosen at run time (target attributes, cpuid + xgetbv), so one binary runs
// anywhere: what the CPU or OS lacks prints value null with a note. AMX runs in a forked
// child, since a kernel or sandbox that refuses tile state kills the process with SIGILL.
// Output: one JSON line per limit, {"limit": name, "threads": n, "value": v}.
// Usage: limits [--quick] [--threads N]
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

#include "moe_common.hpp"

using moe_bench::now_s;

namespace {

// ---- feature detection ---------------------------------------------------------------
struct Cpu {
  bool avx2 = false, avx512f = false, avx512bw = false, vnni = false, avx512bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  bool os_zmm = false, os_amx = false;
};
Cpu detect() {
  Cpu c;
  unsigned a, b, cx, d;
  if (!__get_cpuid_count(1, 0, &a, &b, &cx, &d) || !(cx & (1u << 27))) return c;  // no OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (uint64_t(hi) << 32) | lo;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  c.os_zmm = os_ymm && (xcr0 & 0xE0) == 0xE0;        // opmask, ZMM_Hi256, Hi16_ZMM
  c.os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
  if (!__get_cpuid_count(7, 0, &a, &b, &cx, &d)) return c;
  c.avx2 = os_ymm && (b & (1u << 5));
  c.avx512f = c.os_zmm && (b & (1u << 16));
  c.avx512bw = c.os_zmm && (b & (1u << 30));
  c.vnni = c.avx512f && (cx & (1u << 11));
  c.amx_bf16 = d & (1u << 22);
  c.amx_tile = d & (1u << 24);
  c.amx_int8 = d & (1u << 25);
  if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) c.avx512bf16 = c.avx512f && (a & (1u << 5));
  return c;
}

void emit(const char* name, int threads, std::optional<double> v, const std::string& note = "") {
  if (v)
    std::printf("{\"limit\": \"%s\", \"threads\": %d, \"value\": %.6g}\n", name, threads, *v);
  else
    std::printf("{\"limit\": \"%s\", \"threads\": %d, \"value\": null, \"note\": \"%s\"}\n", name,
                threads, note.c_str());
  std::fflush(stdout);
}

// Sense-reversing spin barrier (libstdc++ 12's std::barrier let a thread through early here).
class SpinBarrier {
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> phase_{0};

 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int ph = phase_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      phase_.store(ph + 1, std::memory_order_release);
    } else {
      while (phase_.load(std::memory_order_acquire) == ph) std::this_thread::yield();
    }
  }
};

// Runs body(thread_index) on n threads started together; returns the wall time of the
// slowest, best of `passes`. The calling thread is thread 0 and keeps the clock, so n
// threads need exactly n cores (a separate timing thread would oversubscribe them).
double run_threads(int n, int passes, const std::function<void(int)>& body) {
  double best = 1e30;
  SpinBarrier sync(n);
  auto work = [&](int t) {
    for (int p = 0; p < passes; ++p) {
      sync.wait();
      const double t0 = now_s();
      body(t);
      sync.wait();
      if (t == 0) best = std::min(best, now_s() - t0);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  return best;
}

// ---- memory read bandwidth -------------------------------------------------------------
// Sums 64-bit lanes so the loads can't be dropped; 4 independent accumulators keep enough
// loads in flight. AVX-512 when present, else AVX2.
__attribute__((target("avx512f"))) uint64_t read512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}
__attribute__((target("avx2"))) uint64_t read256(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i*)(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i*)(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i*)(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i*)(p + i + 96)));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t v[4];
  _mm256_store_si256((__m256i*)v, s);
  return v[0] + v[1] + v[2] + v[3];
}

std::atomic<uint64_t> g_sink{0};

double read_bw(const Cpu& c, uint8_t* buf, size_t bytes, int threads, int passes) {
  const size_t chunk = bytes / threads / 4096 * 4096;
  auto rd = c.avx512f ? read512 : read256;
  double t = run_threads(threads, passes, [&](int i) {
    g_sink += rd(buf + i * chunk, chunk);
  });
  return double(chunk) * threads / t / 1e9;
}

// ---- dot-product peaks -------------------------------------------------------------------
// 12 independent accumulators: more than latency x issue width (4-5 cycles x 2 ports), so
// the loop is bound by throughput. Operands stay in registers: this is the unit's peak,
// not a kernel's. Ops count a multiply-add as 2. Accumulators start at distinct values so
// the compiler cannot merge their identical update chains into one.
constexpr long kIters = 1 << 22;

__attribute__((target("avx512f,avx512vnni"))) long vnni_loop(long iters) {
  __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
  __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2),
          c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5),
          c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8),
          c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
  for (long i = 0; i < iters; ++i) {
    c0 = _mm512_dpbusd_epi32(c0, a, b); c1 = _mm512_dpbusd_epi32(c1, a, b);
    c2 = _mm512_dpbusd_epi32(c2, a, b); c3 = _mm512_dpbusd_epi32(c3, a, b);
    c4 = _mm512_dpbusd_epi32(c4, a, b); c5 = _mm512_dpbusd_epi32(c5, a, b);
    c6 = _mm512_dpbusd_epi32(c6, a, b); c7 = _mm512_dpbusd_epi32(c7, a, b);
    c8 = _mm512_dpbusd_epi32(c8, a, b); c9 = _mm512_dpbusd_epi32(c9, a, b);
    c10 = _mm512_dpbusd_epi32(c10, a, b); c11 = _mm512_dpbusd_epi32(c11, a, b);
    __asm__ volatile("" : "+v"(a));  // keep the compiler from hoisting the work
  }
  __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                               _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
  s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
  return _mm512_reduce_add_epi32(s);
}
constexpr double kVnniOps = 12.0 * 64 * 2;  // per iteration: 12 x (64 int8 MACs)

__attribute__((target("avx512f,avx512bf16"))) long bf16_loop(long iters) {
  __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = a;
  __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2),
         c3 = _mm512_set1_ps(3), c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5), c6 = _mm512_set1_ps(6),
         c7 = _mm512_set1_ps(7), c8 = _mm512_set1_ps(8), c9 = _mm512_set1_ps(9),
         c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
  for (long i = 0; i < iters; ++i) {
    c0 = _mm512_dpbf16_ps(c0, a, b); c1 = _mm512_dpbf16_ps(c1, a, b);
    c2 = _mm512_dpbf16_ps(c2, a, b); c3 = _mm512_dpbf16_ps(c3, a, b);
    c4 = _mm512_dpbf16_ps(c4, a, b); c5 = _mm512_dpbf16_ps(c5, a, b);
    c6 = _mm512_dpbf16_ps(c6, a, b); c7 = _mm512_dpbf16_ps(c7, a, b);
    c8 = _mm512_dpbf16_ps(c8, a, b); c9 = _mm512_dpbf16_ps(c9, a, b);
    c10 = _mm512_dpbf16_ps(c10, a, b); c11 = _mm512_dpbf16_ps(c11, a, b);
    __asm__ volatile("" : "+v"(a));
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                           _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  return long(_mm512_reduce_add_ps(s));
}
constexpr double kBf16Ops = 12.0 * 32 * 2;  // 12 x (32 bf16 MACs)

// AVX2 FMA fp32: not a limit the MoE kernels use, but it checks this harness on AVX2-only
// machines (expect 2 FMA ports x 8 lanes x 2 = 32 FLOP/cycle/core).
__attribute__((target("avx2,fma"))) long fma_loop(long iters) {
  __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(1e-7f);
  __m256 c0 = _mm256_set1_ps(0), c1 = _mm256_set1_ps(1), c2 = _mm256_set1_ps(2),
         c3 = _mm256_set1_ps(3), c4 = _mm256_set1_ps(4), c5 = _mm256_set1_ps(5), c6 = _mm256_set1_ps(6),
         c7 = _mm256_set1_ps(7), c8 = _mm256_set1_ps(8), c9 = _mm256_set1_ps(9),
         c10 = _mm256_set1_ps(10), c11 = _mm256_set1_ps(11);
  for (long i = 0; i < iters; ++i) {
    c0 = _mm256_fmadd_ps(a, b, c0); c1 = _mm256_fmadd_ps(a, b, c1);
    c2 = _mm256_fmadd_ps(a, b, c2); c3 = _mm256_fmadd_ps(a, b, c3);
    c4 = _mm256_fmadd_ps(a, b, c4); c5 = _mm256_fmadd_ps(a, b, c5);
    c6 = _mm256_fmadd_ps(a, b, c6); c7 = _mm256_fmadd_ps(a, b, c7);
    c8 = _mm256_fmadd_ps(a, b, c8); c9 = _mm256_fmadd_ps(a, b, c9);
    c10 = _mm256_fmadd_ps(a, b, c10); c11 = _mm256_fmadd_ps(a, b, c11);
    __asm__ volatile("" : "+x"(a));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                           _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  return long(v[0]);
}
constexpr double kFmaOps = 12.0 * 8 * 2;

// Ops per second of loop(iters) on n threads (best of 3 passes).
double peak(long (*loop)(long), double ops_per_iter, int n, long iters) {
  std::atomic<long> sink{0};
  double t = run_threads(n, 3, [&](int) { sink += loop(iters); });
  return ops_per_iter * double(iters) * n / t;
}

// ---- AMX -----------------------------------------------------------------------------
// Linux hands out tile state only on request (ARCH_REQ_XCOMP_PERM, since 5.16).
constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;

struct alignas(64) TileCfg {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0..3 accumulate C[i][j] += A[i] * B[j] for A in tmm4,5 and B in tmm6,7: four
// independent 16x16 accumulators from operands already in tiles, so only the matrix
// unit's throughput limits the loop.
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) void amx_setup() {
  TileCfg cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  alignas(64) static const uint8_t ones[16 * 64] = {};
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  _tile_loadd(4, ones, 64); _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64); _tile_loadd(7, ones, 64);
}
__attribute__((target("amx-tile,amx-int8"))) long amx_int8_loop(long iters) {
  amx_setup();
  for (long i = 0; i < iters; ++i) {
    _tile_dpbssd(0, 4, 6); _tile_dpbssd(1, 4, 7); _tile_dpbssd(2, 5, 6); _tile_dpbssd(3, 5, 7);
  }
  alignas(64) int32_t c[16 * 16];
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}
__attribute__((target("amx-tile,amx-bf16"))) long amx_bf16_loop(long iters) {
  amx_setup();
  for (long i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float c[16 * 16];
  _tile_stored(0, c, 64);
  _tile_release();
  return long(c[0]);
}
constexpr double kAmxInt8Ops = 4.0 * 16 * 16 * 64 * 2;  // 4 tiles x (16x16x64 MACs)
constexpr double kAmxBf16Ops = 4.0 * 16 * 16 * 32 * 2;  // 4 tiles x (16x16x32 MACs)

// Runs the AMX measurements in a child, which prints their JSON lines; if it dies, the
// parent prints null values with the reason.
void amx_limits(const Cpu& c, int threads, long iters) {
  const char* names[2] = {"amx_int8_TOPS", "amx_bf16_TFLOPS"};
  std::string why;
  if (!c.amx_tile || !c.amx_int8 || !c.amx_bf16) why = "no AMX in cpuid";
  else if (!c.os_amx) why = "OS does not enable AMX tile state (XCR0)";
  if (!why.empty()) {
    for (auto* n : names) emit(n, 1, std::nullopt, why), emit(n, threads, std::nullopt, why);
    return;
  }
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
      std::string note = std::string("arch_prctl(ARCH_REQ_XCOMP_PERM) failed: ") + std::strerror(errno);
      for (auto* n : names) emit(n, 1, std::nullopt, note), emit(n, threads, std::nullopt, note);
      _exit(0);
    }
    for (int n : {1, threads}) {
      emit(names[0], n, peak(amx_int8_loop, kAmxInt8Ops, n, iters / 16) / 1e12);
      emit(names[1], n, peak(amx_bf16_loop, kAmxBf16Ops, n, iters / 16) / 1e12);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string note = WIFSIGNALED(status) ? "AMX test killed by signal " + std::to_string(WTERMSIG(status))
                                           : "AMX test failed";
    for (auto* n : names) emit(n, 1, std::nullopt, note), emit(n, threads, std::nullopt, note);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int threads = moe_bench::hw_threads();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--threads N]\n", argv[0]);
      return 2;
    }
  }
  const Cpu c = detect();
  std::fprintf(stderr, "limits: threads %d, avx2 %d avx512f %d vnni %d avx512bf16 %d amx(tile,int8,bf16) %d%d%d os_amx %d\n",
               threads, c.avx2, c.avx512f, c.vnni, c.avx512bf16, c.amx_tile, c.amx_int8, c.amx_bf16, c.os_amx);
  const long iters = quick ? kIters / 16 : kIters;

  // Read bandwidth: a buffer far larger than any LLC, first touched by the threads that
  // read it (so pages land on their NUMA node), best of several passes.
  {
    const size_t bytes = (quick ? size_t(512) : size_t(4096)) << 20;
    auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
    const size_t chunk = bytes / threads / 4096 * 4096;
    run_threads(threads, 1, [&](int i) { std::memset(buf + i * chunk, i + 1, chunk); });
    if (!c.avx2) {
      emit("read_bw_GBs", 1, std::nullopt, "no AVX2");
    } else {
      emit("read_bw_GBs", threads, read_bw(c, buf, bytes, threads, quick ? 2 : 5));
      emit("read_bw_GBs", 1, read_bw(c, buf, bytes / 4, 1, quick ? 1 : 3));
    }
    std::free(buf);
  }

  for (int n : {1, threads}) {
    if (c.vnni) emit("avx512_vnni_int8_TOPS", n, peak(vnni_loop, kVnniOps, n, iters) / 1e12);
    else emit("avx512_vnni_int8_TOPS", n, std::nullopt, "no AVX-512 VNNI");
    if (c.avx512bf16) emit("avx512_bf16_TFLOPS", n, peak(bf16_loop, kBf16Ops, n, iters) / 1e12);
    else emit("avx512_bf16_TFLOPS", n, std::nullopt, "no AVX-512 BF16");
    if (c.avx2) emit("avx2_fma_fp32_TFLOPS", n, peak(fma_loop, kFmaOps, n, iters) / 1e12);
  }
  amx_limits(c, threads, iters);
  return 0;
}
