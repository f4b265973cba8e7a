/// \file
/// \brief matmul with a DeviceMatrix of every type it takes, against a double-precision product with the host's
/// decoding of the same bytes (quant::dequantize_row): tokens 1, 3, 8 (the GEMVs), 9 and 40 (dequantize-then-
/// cuBLASLt, Precision F32 and BF16), dense and strided x and y, rows padded on the host, workspaces that must grow
/// and split W into row chunks. The GPU decodes with the same quant/ functions, so the weights are the same numbers.
///
/// Tolerances, with M = Σ|w·x| (for Q4_K the magnitudes of the terms its tuned GEMV forms, Σ(|d·sc·q| + |dmin·m|)·|x|,
/// as in test_gemv.cpp) and u = 2⁻²⁴:
/// - f32 (GEMV, Precision::F32): |Δ| ≤ (cols + 8)·u·M, the worst case of f32 sums of cols products in any order
///   (cuBLASLt's split of k is not known), plus a few roundings of the Q4_K scales.
/// - Precision::BF16: against the product of the bf16-rounded operands (host rounding = device rounding) the same
///   f32 bound; against the exact operands, in addition (2·2⁻⁸ + 2⁻¹⁶)·M: one bf16 rounding of each factor.
/// Padding of x is NaN (a kernel reading it poisons its row) and y's padding must stay the NaN it was poisoned with.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "gpu_support.hpp"
#include "hmoe/cuda/matrix.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/cuda/types.hpp"
#include "hmoe/quant/dequantize.hpp"
#include "hmoe/quant/quantize.hpp"

using namespace hmoe;
using namespace hmoe::gpu_test;

namespace {
constexpr double u32 = 1.0 / 16777216.0;                    // 2^-24
constexpr double bf16_pair = 2.0 / 256.0 + 1.0 / 65536.0;  // (1 + 2^-8)^2 - 1

float round_bf16(float v) { return cuda::Bf16::from_float(v).to_float(); }

/// Random bytes with sane f16 scales: d (and dmin) in [0.002, 0.02], Q4_1/Q5_1 offsets m in [-0.16, 0].
template <class B>
void random_blocks(std::mt19937_64& g, unsigned char* out, std::int64_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  for (std::int64_t i = 0; i < n; ++i) {
    unsigned char raw[sizeof(B)];
    for (auto& c : raw) c = static_cast<unsigned char>(byte(g));
    B b;
    std::memcpy(&b, raw, sizeof(B));
    b.d = quant::fp32_to_fp16(scale(g));
    if constexpr (requires(B& x) { x.dmin; }) b.dmin = quant::fp32_to_fp16(scale(g));
    if constexpr (requires(B& x) { x.m; }) b.m = quant::fp32_to_fp16(-8.0f * scale(g));
    std::memcpy(out + i * static_cast<std::int64_t>(sizeof(B)), &b, sizeof(B));
  }
}

/// rows × cols weights of `type`, rows packed: normal values (sd 0.1) for F32/F16/BF16, Q8_0 through the host
/// quantizer, random blocks for the other quantized types.
std::vector<unsigned char> random_weights(GgmlType type, std::int64_t rows, std::int64_t cols, std::mt19937_64& g) {
  const std::size_t row_bytes = quant::row_bytes(type, cols);
  std::vector<unsigned char> w(static_cast<std::size_t>(rows) * row_bytes);
  const std::int64_t n = rows * cols;
  const std::int64_t blocks = n / ggml_type_info(type).block_elems;
  switch (type) {
    case GgmlType::F32: {
      const auto f = normal_floats(g, static_cast<std::size_t>(n), 0.1f);
      std::memcpy(w.data(), f.data(), w.size());
      break;
    }
    case GgmlType::F16:
    case GgmlType::BF16: {
      const auto f = normal_floats(g, static_cast<std::size_t>(n), 0.1f);
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t h = type == GgmlType::F16 ? quant::fp32_to_fp16(f[i]) : quant::fp32_to_bf16(f[i]);
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
      break;
    }
    case GgmlType::Q8_0: {
      const auto f = normal_floats(g, static_cast<std::size_t>(n), 0.1f);
      std::vector<quant::BlockQ8_0> q(static_cast<std::size_t>(blocks));
      quant::quantize_row_q8_0(f.data(), q.data(), n);
      std::memcpy(w.data(), q.data(), w.size());
      break;
    }
    case GgmlType::Q4_0: random_blocks<quant::BlockQ4_0>(g, w.data(), blocks); break;
    case GgmlType::Q4_1: random_blocks<quant::BlockQ4_1>(g, w.data(), blocks); break;
    case GgmlType::Q5_0: random_blocks<quant::BlockQ5_0>(g, w.data(), blocks); break;
    case GgmlType::Q5_1: random_blocks<quant::BlockQ5_1>(g, w.data(), blocks); break;
    case GgmlType::Q2_K: random_blocks<quant::BlockQ2_K>(g, w.data(), blocks); break;
    case GgmlType::Q3_K: random_blocks<quant::BlockQ3_K>(g, w.data(), blocks); break;
    case GgmlType::Q4_K: random_blocks<quant::BlockQ4_K>(g, w.data(), blocks); break;
    case GgmlType::Q5_K: random_blocks<quant::BlockQ5_K>(g, w.data(), blocks); break;
    case GgmlType::Q6_K: random_blocks<quant::BlockQ6_K>(g, w.data(), blocks); break;
    default: FAIL("no generator for " << ggml_type_name(type));
  }
  return w;
}

/// Per weight, the magnitude the error bound uses: |w|, or for Q4_K |d·sc·q| + |dmin·m| (the tuned GEMV sums
/// the two terms separately, and they can be much larger than their difference).
std::vector<float> weight_magnitudes(GgmlType type, const std::vector<unsigned char>& bytes,
                                     const std::vector<float>& w) {
  std::vector<float> mag(w.size());
  if (type != GgmlType::Q4_K) {
    for (std::size_t i = 0; i < w.size(); ++i) mag[i] = std::abs(w[i]);
    return mag;
  }
  for (std::size_t b = 0; b < w.size() / quant::qk_k; ++b) {
    quant::BlockQ4_K blk;
    std::memcpy(&blk, bytes.data() + b * sizeof(blk), sizeof(blk));
    const float d = quant::fp16_to_fp32(blk.d), dmin = quant::fp16_to_fp32(blk.dmin);
    for (int i = 0; i < quant::qk_k; ++i) {
      const int sub = i / 32;
      int sc = 0, m = 0;
      quant::detail::k4_scale_min(blk.scales, sub, sc, m);
      const int q = (blk.qs[32 * (i / 64) + i % 32] >> (4 * (sub & 1))) & 0x0F;
      mag[b * quant::qk_k + i] = std::abs(d * static_cast<float>(sc) * static_cast<float>(q)) +
                                 std::abs(dmin * static_cast<float>(m));
    }
  }
  return mag;
}

/// A weight on the host (its bytes and their decoding) and on the device.
struct TestMatrix {
  GgmlType type;
  std::int64_t rows, cols;
  std::vector<unsigned char> bytes;
  std::vector<float> w, w_bf16, mag;
  cuda::DeviceMatrix dev;
};

TestMatrix make_matrix(GgmlType type, std::int64_t rows, std::int64_t cols, std::mt19937_64& g) {
  TestMatrix m{type, rows, cols, random_weights(type, rows, cols, g), {}, {}, {}, {}};
  const std::size_t row_bytes = quant::row_bytes(type, cols);
  m.w.resize(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    quant::dequantize_row(type, m.bytes.data() + r * row_bytes, m.w.data() + r * cols, cols);
  m.w_bf16.resize(m.w.size());
  for (std::size_t i = 0; i < m.w.size(); ++i) m.w_bf16[i] = round_bf16(m.w[i]);
  m.mag = weight_magnitudes(type, m.bytes, m.w);
  // Upload from rows padded by 6 bytes, as a slice of a 3-D tensor would be.
  const std::size_t host_row_bytes = row_bytes + 6;
  std::vector<unsigned char> padded(static_cast<std::size_t>(rows) * host_row_bytes, 0xAB);
  for (std::int64_t r = 0; r < rows; ++r)
    std::memcpy(padded.data() + r * host_row_bytes, m.bytes.data() + r * row_bytes, row_bytes);
  m.dev = cuda::DeviceMatrix::upload("test." + std::string(ggml_type_name(type)), type, rows, cols, padded.data(),
                                     host_row_bytes);
  return m;
}

void check_matmul(const TestMatrix& m, std::int64_t tokens, bool strided, cuda::Precision precision,
                  cuda::MatmulWorkspace& ws, std::mt19937_64& g) {
  const bool bf16 = precision == cuda::Precision::BF16 && tokens > cuda::gemv_max_tokens;
  CAPTURE(ggml_type_name(m.type));
  CAPTURE(m.rows);
  CAPTURE(m.cols);
  CAPTURE(tokens);
  CAPTURE(strided);
  CAPTURE(bf16);
  const std::int64_t rows = m.rows, cols = m.cols;
  const std::int64_t ldx = strided ? cols + 3 : cols, ldy = strided ? rows + 5 : rows;
  const auto xv = normal_floats(g, static_cast<std::size_t>(tokens * cols));
  std::vector<float> x(static_cast<std::size_t>(tokens * ldx), std::nanf(""));
  for (std::int64_t t = 0; t < tokens; ++t)
    std::copy_n(xv.begin() + t * cols, cols, x.begin() + t * ldx);

  cuda::Stream s;
  cuda::Buffer d_x = upload(x);
  cuda::Buffer d_y = poisoned<float>(static_cast<std::size_t>(tokens * ldy));
  cuda::matmul(m.dev, d_x.as<const float>(), ldx, d_y.as<float>(), ldy, tokens, precision, ws, s);
  s.synchronize();
  const auto y = download<float>(d_y, static_cast<std::size_t>(tokens * ldy));

  int bad = 0, bad_exact = 0, bad_pad = 0;
  double worst = 0;  // |Δ| / tolerance
  for (std::int64_t t = 0; t < tokens; ++t) {
    const float* xt = xv.data() + t * cols;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* wr = m.w.data() + r * cols;
      const float* wb = m.w_bf16.data() + r * cols;
      const float* mr = m.mag.data() + r * cols;
      double ref = 0, mag = 0, ref_b = 0, mag_b = 0;
      for (std::int64_t c = 0; c < cols; ++c) {
        ref += static_cast<double>(wr[c]) * xt[c];
        mag += static_cast<double>(mr[c]) * std::abs(xt[c]);
        const double pb = static_cast<double>(wb[c]) * round_bf16(xt[c]);
        ref_b += pb, mag_b += std::abs(pb);
      }
      const double got = y[t * ldy + r];
      const double tol = static_cast<double>(cols + 8) * u32 * (bf16 ? mag_b : mag) + 1e-30;
      const double err = std::abs(got - (bf16 ? ref_b : ref));
      bad += !(err <= tol);
      worst = std::max(worst, err / tol);
      if (bf16) bad_exact += !(std::abs(got - ref) <= bf16_pair * mag + tol);
    }
    for (std::int64_t r = rows; r < ldy; ++r) bad_pad += !std::isnan(y[t * ldy + r]);
  }
  CHECK(bad == 0);
  CHECK(bad_exact == 0);
  CHECK(bad_pad == 0);
  MESSAGE(ggml_type_name(m.type) << " " << rows << "×" << cols << " tokens=" << tokens << (strided ? " strided" : "")
                                 << (bf16 ? " bf16" : " f32") << ": worst error / tolerance " << worst);
}

constexpr GgmlType all_types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                  GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                                  GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

/// Every path for one matrix: tokens 1, 3, 8, 9, 40, dense and strided, both precisions above 8 tokens.
void check_all_paths(const TestMatrix& m, cuda::MatmulWorkspace& ws, std::mt19937_64& g) {
  for (std::int64_t tokens : {1, 3, 8, 9, 40})
    for (bool strided : {false, true}) {
      check_matmul(m, tokens, strided, cuda::Precision::F32, ws, g);
      if (tokens > cuda::gemv_max_tokens) check_matmul(m, tokens, strided, cuda::Precision::BF16, ws, g);
    }
}
}  // namespace

TEST_CASE("matmul_supports the 13 types DeviceMatrix takes") {
  for (GgmlType t : all_types) CHECK(cuda::matmul_supports(t));
  CHECK_FALSE(cuda::matmul_supports(GgmlType::Q8_K));
  CHECK_FALSE(cuda::matmul_supports(GgmlType::Q8_1));
  CHECK_FALSE(cuda::matmul_supports(GgmlType::IQ4_XS));
}

TEST_CASE("matmul matches the host's dequantized product for every type") {
  std::mt19937_64 g(fresh_seed("matmul"));
  // Small: the first dequantize-then-GEMM call must grow it, and 300 rows then take two chunks (256 + 44).
  cuda::MatmulWorkspace small(std::size_t{1} << 16);
  cuda::MatmulWorkspace large;  // the default: all rows in one chunk
  for (GgmlType type : all_types) {
    const TestMatrix m = make_matrix(type, 300, 512, g);
    check_all_paths(m, small, g);
    check_matmul(m, 40, true, cuda::Precision::F32, large, g);
    check_matmul(m, 40, true, cuda::Precision::BF16, large, g);
  }
}

TEST_CASE("matmul on long rows and odd row lengths") {
  std::mt19937_64 g(fresh_seed("matmul_shapes"));
  cuda::MatmulWorkspace ws(std::size_t{1} << 16);
  for (GgmlType type : all_types) {
    const std::int64_t block = ggml_type_info(type).block_elems;
    // More than 32 blocks per row (the GEMV stages 32 at a time); for F32/F16/BF16 a length that takes the vector
    // loads and one that does not.
    std::vector<std::int64_t> cols_list;
    if (block == 256) cols_list = {256 * 35};
    else if (block == 32) cols_list = {32 * 70, 96};
    else cols_list = {1000, 257};
    for (std::int64_t cols : cols_list) {
      const TestMatrix m = make_matrix(type, 37, cols, g);
      for (std::int64_t tokens : {1, 8, 9}) {
        check_matmul(m, tokens, tokens != 8, cuda::Precision::F32, ws, g);
        if (tokens > cuda::gemv_max_tokens) check_matmul(m, tokens, false, cuda::Precision::BF16, ws, g);
      }
    }
  }
}

TEST_CASE("matmul's GEMV path does not touch the workspace") {
  std::mt19937_64 g(fresh_seed("matmul_gemv_workspace"));
  cuda::MatmulWorkspace ws(0);
  const TestMatrix m = make_matrix(GgmlType::Q6_K, 64, 512, g);
  for (std::int64_t tokens : {1, 8}) check_matmul(m, tokens, false, cuda::Precision::BF16, ws, g);
  CHECK(ws.bytes() == 0);
}

TEST_CASE("DeviceMatrix::upload and matmul reject what they cannot serve") {
  std::vector<unsigned char> host(1 << 16);
  CHECK_THROWS_AS(cuda::DeviceMatrix::upload("q8k", GgmlType::Q8_K, 2, 256, host.data(), 292), std::invalid_argument);
  CHECK_THROWS_AS(cuda::DeviceMatrix::upload("partial", GgmlType::Q4_K, 2, 300, host.data(), 1000),
                  std::invalid_argument);
  CHECK_THROWS_AS(cuda::DeviceMatrix::upload("overlap", GgmlType::Q4_0, 2, 64, host.data(), 35),
                  std::invalid_argument);
  const auto m = cuda::DeviceMatrix::upload("ok", GgmlType::F32, 4, 16, host.data(), 64);
  CHECK(m.rows() == 4);
  CHECK(m.cols() == 16);
  CHECK(m.row_bytes() == 64);
  CHECK(m.bytes() == 256);
  cuda::MatmulWorkspace ws(0);
  cuda::Stream s;
  cuda::Buffer b(1 << 12);
  CHECK_THROWS_AS(cuda::matmul(m, b.as<const float>(), 15, b.as<float>() + 512, 4, 1, cuda::Precision::F32, ws, s),
                  std::invalid_argument);
  CHECK_THROWS_AS(cuda::matmul(m, b.as<const float>(), 16, b.as<float>() + 512, 3, 1, cuda::Precision::F32, ws, s),
                  std::invalid_argument);
}
