// Shared by every C++ program of the MoE CPU benchmark (ggml peer, hmoe, limits):
// the layer shapes, the routing every implementation gets, random but valid quantized
// weights, timing and the one-JSON-line-per-measurement output. Plain C++20, no deps.
// kt_moe_bench.py re-implements route() bit for bit (same splitmix64 stream).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace moe_bench {

// ---- shapes -------------------------------------------------------------------------
// Block formats, as in GGUF: Q4_K = 256 weights in 144 bytes (f16 d, f16 dmin, 12 bytes of
// 6-bit scales/mins, 128 bytes of nibbles); Q5_0 = 32 weights in 22 bytes (f16 d, 4 bytes
// of high bits, 16 bytes of nibbles).
enum class QType { Q4_K, Q5_0 };
inline int block_weights(QType t) { return t == QType::Q4_K ? 256 : 32; }
inline int block_bytes(QType t) { return t == QType::Q4_K ? 144 : 22; }
inline int block_f16s(QType t) { return t == QType::Q4_K ? 2 : 1; }  // leading f16 scale fields
inline const char* qname(QType t) { return t == QType::Q4_K ? "Q4_K" : "Q5_0"; }

struct Shape {
  const char* name;
  int hidden, ffn, experts, top_k;
  // Q4_K rows must be a multiple of 256 long. V2-Lite's down projection has rows of 1408,
  // so llama.cpp's quantizer falls back to Q5_0 for it in a "Q4_K" model; we do the same.
  QType gate_up_type() const { return QType::Q4_K; }
  QType down_type() const { return ffn % 256 == 0 ? QType::Q4_K : QType::Q5_0; }
  size_t gate_bytes() const {  // one expert's gate (= up) matrix, ffn rows of hidden
    return size_t(ffn) * hidden / block_weights(gate_up_type()) * block_bytes(gate_up_type());
  }
  size_t down_bytes() const {  // one expert's down matrix, hidden rows of ffn
    return size_t(hidden) * ffn / block_weights(down_type()) * block_bytes(down_type());
  }
  size_t expert_bytes() const { return 2 * gate_bytes() + down_bytes(); }
  double flops(int tokens) const { return 2.0 * tokens * top_k * 3.0 * hidden * ffn; }
};

inline const Shape kV3{"V3", 7168, 2048, 256, 8};
inline const Shape kV2Lite{"V2-Lite", 2048, 1408, 64, 6};
inline const Shape* shape_by_name(const std::string& s) {
  if (s == kV3.name) return &kV3;
  if (s == kV2Lite.name) return &kV2Lite;
  return nullptr;
}

// ---- routing ------------------------------------------------------------------------
struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

constexpr uint64_t kRouteSeed = 20240501;

// Uniform random top-k per token (k distinct experts), router weights uniform in
// [0.5, 1.5) normalized to sum 1 (DeepSeek normalizes top-k weights). Token t's choice
// does not depend on the token count, so decode routes like the first prefill token.
struct Routing {
  int tokens = 0, k = 0;
  std::vector<int32_t> ids;    // [tokens][k]
  std::vector<float> weights;  // [tokens][k]
};
inline Routing route(const Shape& s, int tokens) {
  Routing r{tokens, s.top_k, std::vector<int32_t>(size_t(tokens) * s.top_k),
            std::vector<float>(size_t(tokens) * s.top_k)};
  SplitMix64 g{kRouteSeed};
  for (int t = 0; t < tokens; ++t) {
    int32_t* id = &r.ids[size_t(t) * s.top_k];
    float* w = &r.weights[size_t(t) * s.top_k];
    for (int j = 0; j < s.top_k;) {
      int32_t e = int32_t(g.next() % uint64_t(s.experts));
      if (std::find(id, id + j, e) == id + j) id[j++] = e;
    }
    double sum = 0, raw[64];
    for (int j = 0; j < s.top_k; ++j) sum += raw[j] = 0.5 + g.uniform();
    for (int j = 0; j < s.top_k; ++j) w[j] = float(raw[j] / sum);
  }
  return r;
}
inline int distinct_experts(const Routing& r, int n_experts) {
  std::vector<char> used(n_experts, 0);
  for (int32_t e : r.ids) used[e] = 1;
  return int(std::count(used.begin(), used.end(), 1));
}
// Weight bytes a layer pass must read at least once: every routed expert's three matrices.
inline double weight_bytes(const Shape& s, const Routing& r) {
  return double(distinct_experts(r, s.experts)) * double(s.expert_bytes());
}

// Decode protocol: one token per pass, and pass i routes like token i of route(s, 1024)
// through layer copy i % decode_layers(s). Enough copies that their weights (>= 2 GB) can't
// sit in the last-level cache, as in a real model whose 26..58 MoE layers are each read
// once per token; re-running one token on one small layer would time the cache instead.
constexpr int kDecodeStream = 1024;
inline int decode_layers(const Shape& s) {
  const double target = 2e9, layer = double(s.experts) * double(s.expert_bytes());
  return std::max(1, int(std::ceil(target / layer)));
}
inline double decode_bytes(const Shape& s) { return double(s.top_k) * double(s.expert_bytes()); }

// ---- parallel helpers ---------------------------------------------------------------
inline int hw_threads() {
  if (const char* e = std::getenv("MOE_THREADS")) return std::max(1, std::atoi(e));
  return std::max(1u, std::thread::hardware_concurrency());
}
// Runs f(i) for i in [0, n) on `threads` std::threads, in contiguous chunks.
inline void parallel_for(size_t n, int threads, const std::function<void(size_t, size_t)>& f) {
  threads = int(std::min<size_t>(std::max(threads, 1), std::max<size_t>(n, 1)));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { f(n * t / threads, n * (t + 1) / threads); });
  for (auto& th : pool) th.join();
}

// ---- random but valid quantized weights ---------------------------------------------
// Every byte pattern is a valid nibble / 6-bit scale / high-bit field, so random bytes
// suffice; only the f16 scales are forced to small positive normal values (bits
// 0x1000..0x1BFF, about 2.4e-4 .. 7.8e-3) so dequantized weights are finite and small.
// Generating is memory-speed and multithreaded: V3's 6.3 GB take about a second.
inline void fill_quant(uint8_t* dst, size_t n_blocks, QType t, uint64_t seed, int threads) {
  const size_t bb = block_bytes(t);
  const int nf16 = block_f16s(t);
  parallel_for((n_blocks + 4095) / 4096, threads, [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; ++c) {
      SplitMix64 g{seed * 0x100000001B3ull + c};
      const size_t b0 = c * 4096, b1 = std::min(n_blocks, b0 + 4096);
      uint8_t* p = dst + b0 * bb;
      const size_t nbytes = (b1 - b0) * bb;
      size_t i = 0;
      for (; i + 8 <= nbytes; i += 8) {
        uint64_t v = g.next();
        std::memcpy(p + i, &v, 8);
      }
      for (; i < nbytes; ++i) p[i] = uint8_t(g.next());
      for (size_t b = b0; b < b1; ++b)
        for (int f = 0; f < nf16; ++f) {
          uint16_t h = uint16_t(0x1000 + g.next() % 0xC00);
          std::memcpy(dst + b * bb + 2 * f, &h, 2);
        }
    }
  });
}

inline void fill_activations(float* x, size_t n, uint64_t seed) {
  SplitMix64 g{seed};
  for (size_t i = 0; i < n; ++i) x[i] = float(2.0 * g.uniform() - 1.0);
}

// ---- timing -------------------------------------------------------------------------
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
struct Stats {
  double mean = 0, sd = 0, min = 0;
  int reps = 0;
};
// Warm-up, then as many timed repetitions as fit in budget_s (within [min_reps, max_reps]).
inline Stats time_it(const std::function<void()>& f, double budget_s, int min_reps, int max_reps,
                     int warmup = 2) {
  double t_est = 1e9;
  for (int i = 0; i < std::max(warmup, 1); ++i) {
    double t0 = now_s();
    f();
    t_est = std::min(t_est, now_s() - t0);
  }
  int reps = int(std::clamp(budget_s / std::max(t_est, 1e-7), double(min_reps), double(max_reps)));
  std::vector<double> ts(reps);
  for (auto& t : ts) {
    double t0 = now_s();
    f();
    t = now_s() - t0;
  }
  Stats s;
  s.reps = reps;
  for (double t : ts) s.mean += t / reps;
  for (double t : ts) s.sd += (t - s.mean) * (t - s.mean) / std::max(reps - 1, 1);
  s.sd = std::sqrt(s.sd);
  s.min = *std::min_element(ts.begin(), ts.end());
  return s;
}

// Per-case time budget and repetition bounds, shared so every implementation is timed alike.
struct RepPolicy {
  double budget_s;
  int min_reps, max_reps, warmup;
};
inline RepPolicy rep_policy(int tokens, bool quick) {
  if (quick) return {0.05, 1, 3, 1};
  if (tokens == 1) return {1.0, 20, 400, 10};
  return {1.5, 3, 50, 1};
}

// One line per measurement, the contract report.py reads.
inline void print_result(const std::string& impl, const Shape& s, int tokens, const Stats& st,
                         double bytes, const std::string& extra = "") {
  std::printf(
      "{\"impl\": \"%s\", \"shape\": \"%s\", \"tokens\": %d, \"seconds\": %.9g, \"sd\": %.4g, "
      "\"min\": %.9g, \"reps\": %d, \"bytes\": %.6g, \"flops\": %.6g, \"threads\": %d%s%s}\n",
      impl.c_str(), s.name, tokens, st.mean, st.sd, st.min, st.reps, bytes, s.flops(tokens),
      hw_threads(), extra.empty() ? "" : ", ", extra.c_str());
  std::fflush(stdout);
}

}  // namespace moe_bench
