/// \file
/// \brief Parity of the AMX tile kernels and their AVX-512 fallback (cpu/amx) against scalar references, on
/// random matrices and activations from a fresh seed (HMOE_SEED=n repeats a run).
///
/// Each product is checked against (a) the same integer / bf16 arithmetic done in double here (tolerance
/// 1e-5 * sum |w||x|: the kernels round only in f32 accumulation, whose error is a few units of 2^-24 per
/// super-block or ~sqrt(K) * 2^-24 of the sum for bf16) and (b) the dequantized f32 weights times the f32
/// activations, within a strict bound derived from each format's rounding (see the *_f32_bound functions).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "hmoe/cpu/amx/matmul.hpp"
#include "hmoe/policy/isa.hpp"
#include "hmoe/quant/half.hpp"
#include "hmoe/quant/k_blocks.hpp"

namespace amx = hmoe::cpu::amx;
namespace quant = hmoe::quant;
using hmoe::GgmlType;
using hmoe::WeightMatrix;

namespace {

std::uint64_t run_seed() {
  static const std::uint64_t seed = [] {
    if (const char* s = std::getenv("HMOE_SEED")) return static_cast<std::uint64_t>(std::strtoull(s, nullptr, 10));
    return (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }();
  return seed;
}

bool can_run() {
  if (hmoe::cpu::x86::emulated) return true;
  static const bool ok = hmoe::AMX::available();
  if (!ok) MESSAGE("skipped: this CPU (or OS) offers no AMX tiles, which the native kernels need");
  return ok;
}

/// A matrix in some stored format, owning its bytes, with the f32 values dequantize_row gives.
struct TestMatrix {
  std::vector<std::byte> bytes;
  WeightMatrix view;
  std::vector<float> deq;  // rows x cols
  const float* row(std::int64_t r) const { return deq.data() + r * view.cols; }
};

void finish(TestMatrix& m) {
  m.view.data = m.bytes.data();
  m.deq.resize(static_cast<std::size_t>(m.view.rows * m.view.cols));
  for (std::int64_t r = 0; r < m.view.rows; ++r) m.view.dequantize_row(r, m.deq.data() + r * m.view.cols);
}

TestMatrix random_q4k(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols) {
  TestMatrix m;
  const std::int64_t nb = cols / 256;
  m.view = {"test.q4k", GgmlType::Q4_K, rows, cols, nullptr, static_cast<std::size_t>(nb) * sizeof(quant::BlockQ4_K)};
  m.bytes.resize(static_cast<std::size_t>(rows) * m.view.row_bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(1e-3f, 1e-1f);
  for (std::int64_t i = 0; i < rows * nb; ++i) {
    quant::BlockQ4_K b;
    for (auto& s : b.scales) s = static_cast<std::uint8_t>(byte(rng));
    for (auto& q : b.qs) q = static_cast<std::uint8_t>(byte(rng));
    b.d = quant::fp32_to_fp16(mag(rng) * (byte(rng) & 1 ? 1.0f : -1.0f));
    b.dmin = quant::fp32_to_fp16(mag(rng) * (byte(rng) & 1 ? 1.0f : -1.0f));
    std::memcpy(m.bytes.data() + i * sizeof b, &b, sizeof b);
  }
  finish(m);
  return m;
}

/// Random valid Q8_0 (q8 true) or Q5_0 blocks, every byte of q / qs / qh random.
TestMatrix random_q8_blocks(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols, bool q8) {
  TestMatrix m;
  const std::int64_t nb = cols / 32;
  const std::size_t bb = q8 ? sizeof(quant::BlockQ8_0) : sizeof(quant::BlockQ5_0);
  m.view = {q8 ? "test.q8_0" : "test.q5_0", q8 ? GgmlType::Q8_0 : GgmlType::Q5_0, rows, cols, nullptr,
            static_cast<std::size_t>(nb) * bb};
  m.bytes.resize(static_cast<std::size_t>(rows) * m.view.row_bytes);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(1e-3f, 1e-1f);
  for (std::int64_t i = 0; i < rows * nb; ++i) {
    const std::uint16_t d = quant::fp32_to_fp16(mag(rng) * (byte(rng) & 1 ? 1.0f : -1.0f));
    std::byte* dst = m.bytes.data() + static_cast<std::size_t>(i) * bb;
    std::memcpy(dst, &d, 2);
    for (std::size_t j = 2; j < bb; ++j) dst[j] = static_cast<std::byte>(byte(rng));
  }
  finish(m);
  return m;
}

TestMatrix random_f32(std::mt19937_64& rng, std::int64_t rows, std::int64_t cols) {
  TestMatrix m;
  m.view = {"test.f32", GgmlType::F32, rows, cols, nullptr, static_cast<std::size_t>(cols) * 4};
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_real_distribution<float> row_mag(0.05f, 2.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float s = row_mag(rng);
    for (std::int64_t k = 0; k < cols; ++k) v[r * cols + k] = u(rng) * s;
  }
  m.bytes.resize(v.size() * 4);
  std::memcpy(m.bytes.data(), v.data(), m.bytes.size());
  finish(m);
  return m;
}

std::vector<float> random_activations(std::mt19937_64& rng, std::int64_t tokens, std::int64_t cols) {
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_real_distribution<float> tok_mag(0.1f, 4.0f);
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float s = tok_mag(rng);
    for (std::int64_t k = 0; k < cols; ++k) {
      float v = u(rng) * s;
      x[t * cols + k] = v != 0.0f ? v : 0.5f;  // never zero
    }
  }
  return x;
}

// --- exact references: the format's own arithmetic, in double --------------------------------------------

double exact(const amx::PackedQ4K& p, const TestMatrix& m, std::int64_t r, const std::byte* act) {
  double y = 0.0;
  for (std::int64_t b = 0; b < p.blocks(); ++b) {
    quant::BlockQ4_K w;
    quant::BlockQ8_K a;
    std::memcpy(&w, m.view.row(r) + b * sizeof w, sizeof w);
    std::memcpy(&a, act + b * sizeof a, sizeof a);
    double dot = 0.0, mins = 0.0;
    for (int j = 0; j < 8; ++j) {
      int sc = 0, mn = 0;
      quant::detail::k4_scale_min(w.scales, j, sc, mn);
      std::int64_t pj = 0, sj = 0;
      for (int l = 0; l < 32; ++l) {
        const int i = 32 * j + l;  // value i: chunk i / 64, low nibble for the first 32 of the chunk
        const int q = (w.qs[32 * (i / 64) + (i % 32)] >> (4 * ((i / 32) % 2))) & 15;
        pj += q * a.qs[i];
        sj += a.qs[i];
      }
      dot += static_cast<double>(sc) * static_cast<double>(pj);
      mins += static_cast<double>(mn) * static_cast<double>(sj);
    }
    y += static_cast<double>(a.d) *
         (quant::fp16_to_fp32(w.d) * dot - static_cast<double>(quant::fp16_to_fp32(w.dmin)) * mins);
  }
  return y;
}

double exact(const amx::PackedInt8& p, const TestMatrix&, std::int64_t r, const std::byte* act) {
  const auto* q = reinterpret_cast<const std::int8_t*>(act);
  std::int64_t s = 0;
  for (std::int64_t k = 0; k < p.cols(); ++k) s += static_cast<std::int64_t>(p.weight(r, k)) * q[k];
  return static_cast<double>(s) * p.scale(r) * amx::activation_scale(p, act);
}

double exact(const amx::PackedBF16& p, const TestMatrix&, std::int64_t r, const std::byte* act) {
  double s = 0.0;
  for (std::int64_t k = 0; k < p.cols(); ++k) {
    std::uint16_t a;
    std::memcpy(&a, act + 2 * k, 2);
    s += static_cast<double>(quant::bf16_to_fp32(p.weight(r, k))) * quant::bf16_to_fp32(a);
  }
  return s;
}

/// Q8_0 and Q5_0 blocks, int8 in PackedQ8Blocks or 6-bit in PackedQ5Blocks: the same integers.
template <class P>
  requires std::same_as<P, amx::PackedQ8Blocks> || std::same_as<P, amx::PackedQ5Blocks>
double exact(const P& p, const TestMatrix& m, std::int64_t r, const std::byte* act) {
  double y = 0.0;
  for (std::int64_t b = 0; b < p.blocks(); ++b) {
    quant::BlockQ8_0 a;
    std::memcpy(&a, act + b * sizeof a, sizeof a);
    std::int64_t dot = 0;
    for (int l = 0; l < 32; ++l) {
      // the file's own value q = deq / d (exact: d * q is exact in f32 for |q| <= 128)
      const float dw = p.scale(r, b);
      const int q = static_cast<int>(m.row(r)[32 * b + l] / dw);
      if (q != p.weight(r, 32 * b + l)) FAIL_CHECK("packed weight differs: row " << r << " column " << 32 * b + l);
      dot += static_cast<std::int64_t>(q) * a.qs[l];
    }
    y += static_cast<double>(p.scale(r, b)) * quant::fp16_to_fp32(a.d) * static_cast<double>(dot);
  }
  return y;
}

// --- bounds of |kernel - f32 product| from the format's rounding --------------------------------------------

/// Q4_K weights are exact; Q8_K moves each activation by at most d / 2 of its block.
double f32_bound(const amx::PackedQ4K& p, const TestMatrix& m, std::int64_t r, const float*, const std::byte* act) {
  double e = 0.0;
  for (std::int64_t b = 0; b < p.blocks(); ++b) {
    float d;
    std::memcpy(&d, act + b * sizeof(quant::BlockQ8_K), 4);
    for (int l = 0; l < 256; ++l) e += 0.5 * std::fabs(d) * std::fabs(m.row(r)[256 * b + l]);
  }
  return e;
}

/// |dw| <= sw / 2, |dx| <= sa / 2 per element.
double f32_bound(const amx::PackedInt8& p, const TestMatrix& m, std::int64_t r, const float* x, const std::byte* act) {
  const double sw = p.scale(r), sa = amx::activation_scale(p, act);
  double e = 0.0;
  for (std::int64_t k = 0; k < p.cols(); ++k)
    e += 0.5 * sw * std::fabs(x[k]) + 0.5 * sa * std::fabs(m.row(r)[k]) + 0.25 * sw * sa;
  return e;
}

/// Q8_0 / Q5_0 weights are exact; Q8_0 moves each activation by at most d / 2 of its block plus the f16
/// rounding of d times |q| <= 127 (under 0.07 d).
template <class P>
  requires std::same_as<P, amx::PackedQ8Blocks> || std::same_as<P, amx::PackedQ5Blocks>
double f32_bound(const P& p, const TestMatrix& m, std::int64_t r, const float*, const std::byte* act) {
  double e = 0.0;
  for (std::int64_t b = 0; b < p.blocks(); ++b) {
    quant::BlockQ8_0 a;
    std::memcpy(&a, act + b * sizeof a, sizeof a);
    const double d = std::fabs(quant::fp16_to_fp32(a.d));
    for (int l = 0; l < 32; ++l) e += 0.6 * d * std::fabs(m.row(r)[32 * b + l]);
  }
  return e;
}

/// bf16 rounding moves each factor by at most 2^-9 of itself.
double f32_bound(const amx::PackedBF16& p, const TestMatrix& m, std::int64_t r, const float* x, const std::byte*) {
  double e = 0.0;
  for (std::int64_t k = 0; k < p.cols(); ++k) e += std::fabs(m.row(r)[k] * x[k]) * (std::ldexp(1.0, -8) + std::ldexp(1.0, -18));
  return e;
}

struct Worst {
  double exact = 0.0, f32 = 0.0, f32_of_bound = 0.0;
};

enum class Kernel { tiles, vector, dispatch };

template <class P>
void check_product(const P& p, const TestMatrix& m, const std::vector<float>& x, std::int64_t tokens,
                   std::int64_t rb, std::int64_t re, Kernel kernel, Worst& worst) {
  const std::int64_t cols = m.view.cols, ldy = p.rows() + 3;
  const std::size_t arb = amx::activation_row_bytes(p) + 4;  // a stride larger than the row, as a caller may use
  std::vector<std::byte> act(arb * static_cast<std::size_t>(tokens));
  for (std::int64_t t = 0; t < tokens; ++t) amx::quantize_activation_row(p, x.data() + t * cols, act.data() + t * arb);
  std::vector<float> y(static_cast<std::size_t>(tokens * ldy), std::numeric_limits<float>::quiet_NaN());
  switch (kernel) {
    case Kernel::tiles: amx::matmul_tiles(p, rb, re, act.data(), arb, tokens, y.data(), ldy); break;
    case Kernel::vector: amx::matmul_vector(p, rb, re, act.data(), arb, tokens, y.data(), ldy); break;
    case Kernel::dispatch: amx::matmul(p, rb, re, act.data(), arb, tokens, y.data(), ldy); break;
  }
  int failures = 0;
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t r = 0; r < ldy; ++r) {
      const float v = y[t * ldy + r];
      if (r < rb || r >= re) {
        if (!std::isnan(v) && failures++ < 5) FAIL_CHECK("wrote outside the range: token " << t << " row " << r);
        continue;
      }
      const float* xt = x.data() + t * cols;
      const std::byte* at = act.data() + t * arb;
      double s = 0.0, ref = 0.0;
      for (std::int64_t k = 0; k < cols; ++k) {
        s += std::fabs(static_cast<double>(m.row(r)[k]) * xt[k]);
        ref += static_cast<double>(m.row(r)[k]) * xt[k];
      }
      const double ex = exact(p, m, r, at);
      const double tol = 1e-5 * s;
      const double bound = f32_bound(p, m, r, xt, at) + tol;
      const double e_ex = std::fabs(v - ex), e_f32 = std::fabs(v - ref);
      worst.exact = std::max(worst.exact, e_ex / s);
      worst.f32 = std::max(worst.f32, e_f32 / s);
      worst.f32_of_bound = std::max(worst.f32_of_bound, e_f32 / bound);
      if (!(e_ex <= tol) || !(e_f32 <= bound)) {
        if (failures++ < 5)
          FAIL_CHECK("token " << t << " row " << r << ": got " << v << ", exact " << ex << " (tol " << tol
                              << "), f32 " << ref << " (bound " << bound << ")");
      }
    }
}

template <class P>
void check_format(const char* label, const TestMatrix& m, std::mt19937_64& rng) {
  const P p = P::pack(m.view);
  REQUIRE(p.rows() == m.view.rows);
  REQUIRE(p.cols() == m.view.cols);
  const std::int64_t rows = m.view.rows;
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges{{0, rows}};
  if (rows > 32) ranges.push_back({16, rows - 5});
  Worst worst;
  for (std::int64_t tokens : {1, 3, 16, 17, 40}) {
    const std::vector<float> x = random_activations(rng, tokens, m.view.cols);
    for (auto [rb, re] : ranges)
      for (Kernel k : {Kernel::tiles, Kernel::vector, Kernel::dispatch}) {
        CAPTURE(label);
        CAPTURE(rows);
        CAPTURE(m.view.cols);
        CAPTURE(tokens);
        CAPTURE(rb);
        CAPTURE(re);
        CAPTURE(static_cast<int>(k));
        check_product(p, m, x, tokens, rb, re, k, worst);
      }
  }
  MESSAGE(std::string(label) << " " << rows << "x" << m.view.cols << ": worst |y-exact|/S " << worst.exact << ", |y-f32|/S "
                << worst.f32 << ", |y-f32|/bound " << worst.f32_of_bound << "  (S = sum |w||x|)");
}

}  // namespace

TEST_CASE("seed") { MESSAGE("seed " << run_seed() << " (HMOE_SEED=" << run_seed() << " repeats it)"); }

TEST_CASE("PackedQ4K: tiles and vector kernels match Q4_K x Q8_K arithmetic") {
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 1);
  for (auto [rows, cols] : {std::pair{16, 256}, {40, 512}, {72, 2048}}) {
    const TestMatrix m = random_q4k(rng, rows, cols);
    check_format<amx::PackedQ4K>("Q4K", m, rng);
  }
}

TEST_CASE("PackedQ4K: largest scales, nibbles and activations") {
  // sc = m = 63 and q = 15 everywhere (the tiles split sc into 8 * 7 + 7 and fold it into the weights),
  // activations at +-127 after Q8_K: the largest integer sums the kernels form.
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 4);
  TestMatrix m = random_q4k(rng, 40, 1024);
  for (std::size_t i = 0; i < m.bytes.size(); i += sizeof(quant::BlockQ4_K)) {
    quant::BlockQ4_K b;
    std::memcpy(&b, m.bytes.data() + i, sizeof b);
    for (auto& s : b.scales) s = 0xFF;
    for (std::size_t k = 0; k < sizeof b.qs; ++k) b.qs[k] = (i / sizeof b + k) % 7 == 0 ? 0x0F : 0xFF;
    std::memcpy(m.bytes.data() + i, &b, sizeof b);
  }
  finish(m);
  const auto p = amx::PackedQ4K::pack(m.view);
  Worst w;
  for (std::int64_t tokens : {1, 17, 33}) {
    std::vector<float> x(static_cast<std::size_t>(tokens * m.view.cols));
    for (std::size_t k = 0; k < x.size(); ++k) x[k] = (k / 3) % 5 == 0 ? -2.0f : 2.0f;
    CAPTURE(tokens);
    for (Kernel k : {Kernel::tiles, Kernel::vector}) check_product(p, m, x, tokens, 0, 40, k, w);
  }
}

TEST_CASE("PackedQ4K: the micro-benchmark's ablation modes run (their numbers are not checked)") {
  // Under the emulator every tile operation checks the config and shapes; the modes skip work, so their
  // results are wrong by design. The full mode still matches the public kernel bit for bit.
  if (!can_run()) return;
  std::mt19937_64 rng(run_seed() ^ 7);
  const TestMatrix m = random_q4k(rng, 40, 512);
  const auto p = amx::PackedQ4K::pack(m.view);
  const std::int64_t tokens = 37;
  const std::vector<float> x = random_activations(rng, tokens, m.view.cols);
  const std::size_t arb = amx::activation_row_bytes(p);
  std::vector<std::byte> act(arb * tokens);
  for (std::int64_t t = 0; t < tokens; ++t)
    amx::quantize_activation_row(p, x.data() + t * m.view.cols, act.data() + t * arb);
  std::vector<float> y(static_cast<std::size_t>(tokens * 40)), ref(y.size());
  amx::matmul_tiles(p, 0, 40, act.data(), arb, tokens, ref.data(), 40);
  using amx::detail::Q4KMode;
  amx::detail::matmul_tiles_mode<Q4KMode::full>(p, 0, 40, act.data(), arb, tokens, y.data(), 40);
  CHECK(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) == 0);
  for (std::int64_t group : {1, 2}) {  // token blocks in groups (each re-unpacks the weights): the same sums
    std::fill(y.begin(), y.end(), 0.0f);
    amx::detail::matmul_tiles_mode<Q4KMode::full>(p, 16, 40, act.data(), arb, tokens, y.data(), 40, group);
    for (std::int64_t t = 0; t < tokens; ++t)
      CHECK(std::memcmp(y.data() + t * 40 + 16, ref.data() + t * 40 + 16, 24 * sizeof(float)) == 0);
  }
  auto run = [&](auto mode) {
    amx::detail::matmul_tiles_mode<decltype(mode)::value>(p, 0, 40, act.data(), arb, tokens, y.data(), 40);
  };
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::no_mins>{}));
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::no_products>{}));
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::no_readout>{}));
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::no_unpack>{}));
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::products_only>{}));
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::loads_only>{}));
  CHECK_NOTHROW(run(std::integral_constant<Q4KMode, Q4KMode::pack_only>{}));
}

TEST_CASE("PackedInt8: tiles and vector kernels match int8 arithmetic") {
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 2);
  for (auto [rows, cols] : {std::pair{16, 64}, {40, 300}, {72, 1000}})
    check_format<amx::PackedInt8>("Int8<-F32", random_f32(rng, rows, cols), rng);
  check_format<amx::PackedInt8>("Int8<-Q4_K", random_q4k(rng, 40, 2048), rng);
}

TEST_CASE("PackedQ8Blocks: tiles and vector kernels match Q8_0 / Q5_0 x Q8_0 arithmetic") {
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 6);
  for (bool q8 : {true, false})
    for (auto [rows, cols] : {std::pair{16, 32}, {40, 96}, {16, 1408}, {40, 1408}})
      check_format<amx::PackedQ8Blocks>(q8 ? "Q8_0" : "Q5_0", random_q8_blocks(rng, rows, cols, q8), rng);
}

TEST_CASE("PackedQ5Blocks (6 bits a weight): tiles and vector kernels match Q5_0 x Q8_0 arithmetic") {
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 7);
  for (auto [rows, cols] : {std::pair{16, 32}, {40, 96}, {16, 1408}, {40, 1408}, {2048, 64}})
    check_format<amx::PackedQ5Blocks>("Q5_0 6-bit", random_q8_blocks(rng, rows, cols, false), rng);
  // The same file bytes as PackedQ8Blocks widens them: every weight and scale equal.
  const TestMatrix m = random_q8_blocks(rng, 40, 1408, false);
  const auto p5 = amx::PackedQ5Blocks::pack(m.view);
  const auto p8 = amx::PackedQ8Blocks::pack(m.view);
  int differ = 0;
  for (std::int64_t r = 0; r < 40; ++r)
    for (std::int64_t k = 0; k < 1408; ++k) {
      differ += p5.weight(r, k) != p8.weight(r, k);
      if (k % 32 == 0) differ += p5.scale(r, k / 32) != p8.scale(r, k / 32);
    }
  CHECK(differ == 0);
}

TEST_CASE("PackedBF16: tiles and vector kernels match bf16 arithmetic") {
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 3);
  for (auto [rows, cols] : {std::pair{16, 32}, {40, 300}, {72, 1000}})
    check_format<amx::PackedBF16>("BF16<-F32", random_f32(rng, rows, cols), rng);
  check_format<amx::PackedBF16>("BF16<-Q4_K", random_q4k(rng, 40, 2048), rng);
}

TEST_CASE("many panels, few columns") {
  if (!can_run()) return;
  CAPTURE(run_seed());
  std::mt19937_64 rng(run_seed() ^ 4);
  const TestMatrix q = random_q4k(rng, 2040, 256);
  const auto pq = amx::PackedQ4K::pack(q.view);
  const auto pi = amx::PackedInt8::pack(q.view);
  const auto pb = amx::PackedBF16::pack(q.view);
  Worst w;
  for (std::int64_t tokens : {1, 17}) {
    const std::vector<float> x = random_activations(rng, tokens, 256);
    CAPTURE(tokens);
    for (Kernel k : {Kernel::tiles, Kernel::vector}) {
      check_product(pq, q, x, tokens, 0, 2040, k, w);
      check_product(pi, q, x, tokens, 1024, 2035, k, w);
      check_product(pb, q, x, tokens, 16, 2040, k, w);
    }
  }
}

TEST_CASE("pack and matmul refuse bad input by name") {
  std::mt19937_64 rng(run_seed() ^ 5);
  auto message_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  TestMatrix q = random_q4k(rng, 16, 256);
  WeightMatrix q6 = q.view;
  q6.name = "blk.3.ffn_down_exps[7]";
  q6.type = GgmlType::Q6_K;
  q6.row_bytes = sizeof(quant::BlockQ6_K);
  std::string e = message_of([&] { (void)amx::PackedQ4K::pack(q6); });
  CHECK(e.find("blk.3.ffn_down_exps[7]") != std::string::npos);
  CHECK(e.find("Q6_K") != std::string::npos);

  WeightMatrix odd = q.view;
  odd.name = "odd.cols";
  odd.cols = 300;
  e = message_of([&] { (void)amx::PackedQ4K::pack(odd); });
  CHECK(e.find("odd.cols") != std::string::npos);
  e = message_of([&] { (void)amx::PackedBF16::pack(odd); });  // 300 is no whole number of Q4_K blocks
  CHECK(e.find("odd.cols") != std::string::npos);

  WeightMatrix empty = q.view;
  empty.name = "empty.rows";
  empty.rows = 0;
  e = message_of([&] { (void)amx::PackedInt8::pack(empty); });
  CHECK(e.find("empty.rows") != std::string::npos);

  e = message_of([&] { (void)amx::PackedQ8Blocks::pack(q6); });
  CHECK(e.find("blk.3.ffn_down_exps[7]") != std::string::npos);
  CHECK(e.find("Q6_K") != std::string::npos);
  TestMatrix q8 = random_q8_blocks(rng, 16, 64, true);
  WeightMatrix q8odd = q8.view;
  q8odd.name = "q8.odd.cols";
  q8odd.cols = 48;
  e = message_of([&] { (void)amx::PackedQ8Blocks::pack(q8odd); });
  CHECK(e.find("q8.odd.cols") != std::string::npos);
  const TestMatrix q5 = random_q8_blocks(rng, 16, 64, false);
  WeightMatrix q5short = q5.view;
  q5short.name = "q5.short.rows";
  q5short.row_bytes = 40;
  e = message_of([&] { (void)amx::PackedQ8Blocks::pack(q5short); });
  CHECK(e.find("q5.short.rows") != std::string::npos);
  e = message_of([&] { (void)amx::PackedQ5Blocks::pack(q5short); });
  CHECK(e.find("q5.short.rows") != std::string::npos);
  e = message_of([&] { (void)amx::PackedQ5Blocks::pack(q8.view); });  // Q8_0 is not Q5_0
  CHECK(e.find("Q8_0") != std::string::npos);
  const auto p8 = amx::PackedQ8Blocks::pack(q8.view);
  std::vector<std::byte> act8(amx::activation_row_bytes(p8));
  std::vector<float> y8(16);
  e = message_of([&] { amx::matmul_tiles(p8, 0, 16, act8.data(), act8.size() - 1, 1, y8.data(), 16); });
  CHECK(e.find("activation rows") != std::string::npos);

  const auto p = amx::PackedInt8::pack(q.view);
  std::vector<std::byte> act(amx::activation_row_bytes(p));
  std::vector<float> y(16);
  e = message_of([&] { amx::matmul_vector(p, 8, 16, act.data(), act.size(), 1, y.data(), 16); });
  CHECK(e.find("row_begin") != std::string::npos);
  e = message_of([&] { amx::matmul_tiles(p, 0, 17, act.data(), act.size(), 1, y.data(), 17); });
  CHECK(e.find("row range") != std::string::npos);
  e = message_of([&] { amx::matmul(p, 0, 16, act.data(), act.size() - 1, 1, y.data(), 16); });
  CHECK(e.find("activation rows") != std::string::npos);
}
