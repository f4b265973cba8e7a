/// \file
/// \brief GPU MLA attention (cuda/mla*.cu) against a double-precision CPU reference on the same bf16 values: cache
/// append, decode (B = 1 and 3, lengths around the 32-token tile and 64-token page edges, split-KV off / forced /
/// auto) and causal prefill after a non-empty prefix.
///
/// Tolerance: the cache and queries are bf16 on both sides, and the GPU accumulates q·k in f32 (error ~1e-6 of a
/// score), so what is left is the softmax weights, rounded to bf16 (8 significant bits: relative error ≤ u = 2⁻⁸)
/// before P·V, with the normalizer summing the same rounded weights. Then o_gpu − o_ref = Σ (w̃_t − w_t) c_t with
/// Σ|w̃_t − w_t| ≤ 2u/(1−u), so |err| ≤ 7.85e-3 · max|c| (the row maximum's weight, exp2(0) = 1, is exact, so the
/// bound is loose). c_kv ∈ [−1, 1] here: max abs err ≤ 8e-3. The rounding errors are independent and the error is
/// Σ (w̃_t − w_t)(c_t − o), so the mean abs error stays near u/√3·E|c − o|·‖w‖₂ ≲ 5e-4; the test asks ≤ 1e-3 to
/// catch a systematic bias (a wrong scale, a dropped token) that the max bound alone would let through.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "gpu_support.hpp"
#include "hmoe/cuda/buffer.hpp"
#include "hmoe/cuda/mla.hpp"
#include "hmoe/cuda/stream.hpp"
#include "hmoe/cuda/types.hpp"

namespace {

using namespace hmoe::cuda;

constexpr int kL = mla_latent_dim, kR = mla_rope_dim, kRow = mla_cache_row;
constexpr float kScale = 0.1352f;  // DeepSeek-V3's kq_scale: mscale² / sqrt(192) with mscale = 1 + 0.1·ln 40
constexpr double kMaxTol = 8e-3, kMeanTol = 1e-3;  // see the file comment

/// One printed seed for the run; each case derives its generator from it and its own shape.
std::uint64_t test_seed() {
  static const std::uint64_t seed = hmoe::gpu_test::fresh_seed("test_mla");
  return seed;
}

float round_bf16(float x) { return Bf16::from_float(x).to_float(); }

/// Uniform values in [-a, a]; `exact` rounds them to bf16 so the GPU's own rounding is the identity.
std::vector<float> random_values(std::mt19937_64& rng, std::size_t n, float a, bool exact) {
  std::uniform_real_distribution<float> u(-a, a);
  std::vector<float> v(n);
  for (auto& x : v) x = exact ? round_bf16(u(rng)) : u(rng);
  return v;
}

std::vector<Bf16> to_bf16(const std::vector<float>& v) {
  std::vector<Bf16> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = Bf16::from_float(v[i]);
  return r;
}

/// A paged cache of several sequences with shuffled (non-contiguous, out-of-order) pages, filled through
/// mla_cache_append from unrounded f32 rows; `rows[s]` keeps the bf16-rounded values the GPU must hold.
struct PagedCache {
  int page_size, max_pages;
  std::vector<std::vector<float>> rows;  // per sequence: [len][576]
  std::vector<std::int32_t> table;
  Buffer pages, block_table;

  PagedCache(std::mt19937_64& rng, const std::vector<int>& lens, int page_size_, const Stream& s)
      : page_size(page_size_) {
    const int longest = *std::max_element(lens.begin(), lens.end());
    max_pages = (longest + page_size - 1) / page_size + 1;  // one spare column, left unmapped (-1)
    int total = 0;
    for (int len : lens) total += (len + page_size - 1) / page_size;
    total += 3;  // pages nobody maps: a wrong lookup reads NaN from them
    std::vector<std::int32_t> ids(static_cast<std::size_t>(total));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    table.assign(lens.size() * static_cast<std::size_t>(max_pages), -1);
    std::size_t next = 0;
    for (std::size_t b = 0; b < lens.size(); ++b)
      for (int pg = 0; pg < (lens[b] + page_size - 1) / page_size; ++pg) table[b * max_pages + pg] = ids[next++];
    pages = Buffer(static_cast<std::size_t>(total) * page_size * kRow * 2);
    pages.fill_bytes(0xFF);  // NaN everywhere nothing was appended
    block_table = Buffer::from(table.data(), table.size());

    // Append every token in one call, in a shuffled order, from f32 rows [n][576] (latent stride 576, rope after).
    std::vector<std::int32_t> seq, pos;
    for (std::size_t b = 0; b < lens.size(); ++b)
      for (int t = 0; t < lens[b]; ++t) seq.push_back(static_cast<std::int32_t>(b)), pos.push_back(t);
    std::vector<std::size_t> order(seq.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::int32_t> seq_o(seq.size()), pos_o(seq.size());
    std::vector<float> src = random_values(rng, seq.size() * kRow, 1.f, false);
    rows.resize(lens.size());
    for (std::size_t b = 0; b < lens.size(); ++b) rows[b].resize(static_cast<std::size_t>(lens[b]) * kRow);
    for (std::size_t i = 0; i < order.size(); ++i) {
      seq_o[i] = seq[order[i]], pos_o[i] = pos[order[i]];
      for (int d = 0; d < kRow; ++d)
        rows[seq_o[i]][static_cast<std::size_t>(pos_o[i]) * kRow + d] = round_bf16(src[i * kRow + d]);
    }
    Buffer d_seq = Buffer::from(seq_o.data(), seq_o.size()), d_pos = Buffer::from(pos_o.data(), pos_o.size());
    Buffer d_src = Buffer::from(src.data(), src.size());
    mla_cache_append(view(), d_seq.as<const std::int32_t>(), d_pos.as<const std::int32_t>(), d_src.as<const float>(),
                     kRow, d_src.as<const float>() + kL, kRow, MlaDtype::F32, static_cast<std::int64_t>(seq.size()),
                     s);
    s.synchronize();
  }

  MlaPagedCache view() const { return {pages.data(), block_table.as<const std::int32_t>(), page_size, max_pages}; }
};

/// Queries for n tokens × heads, bf16-exact. Heads get increasingly sharp score distributions (q scaled by 0.5 .. 4)
/// so both flat and peaked softmaxes are covered.
struct Queries {
  std::vector<float> lat, rope;  // [n][heads][512], [n][heads][64]
  Queries(std::mt19937_64& rng, int n, int heads) {
    lat = random_values(rng, static_cast<std::size_t>(n) * heads * kL, 1.f, false);
    rope = random_values(rng, static_cast<std::size_t>(n) * heads * kR, 1.f, false);
    for (int t = 0; t < n; ++t)
      for (int h = 0; h < heads; ++h) {
        const float sharp = 0.5f + 3.5f * static_cast<float>(h) / static_cast<float>(std::max(1, heads - 1));
        for (int d = 0; d < kL; ++d) {
          float& x = lat[(static_cast<std::size_t>(t) * heads + h) * kL + d];
          x = round_bf16(x * sharp);
        }
        for (int d = 0; d < kR; ++d) {
          float& x = rope[(static_cast<std::size_t>(t) * heads + h) * kR + d];
          x = round_bf16(x * sharp);
        }
      }
  }
};

/// o[h][:] of one query in double: softmax over cache rows 0 .. len-1.
void reference_one(const float* ql, const float* qr, const float* rows, int len, double* o) {
  std::vector<double> sc(static_cast<std::size_t>(len));
  double mx = -INFINITY;
  for (int t = 0; t < len; ++t) {
    const float* r = rows + static_cast<std::size_t>(t) * kRow;
    double acc = 0;
    for (int d = 0; d < kL; ++d) acc += double(ql[d]) * r[d];
    for (int d = 0; d < kR; ++d) acc += double(qr[d]) * r[kL + d];
    sc[t] = acc * kScale;
    mx = std::max(mx, sc[t]);
  }
  double sum = 0;
  for (auto& x : sc) sum += x = std::exp(x - mx);
  std::fill(o, o + kL, 0.0);
  for (int t = 0; t < len; ++t) {
    const float* r = rows + static_cast<std::size_t>(t) * kRow;
    const double w = sc[t] / sum;
    for (int d = 0; d < kL; ++d) o[d] += w * r[d];
  }
}

/// Runs f(i) for i in [0, n) on all cores.
template <class F>
void parallel_for(std::size_t n, F f) {
  const std::size_t workers = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (std::size_t i = w; i < n; i += workers) f(i);
    });
  for (auto& t : pool) t.join();
}

/// Compares got (NaN-poisoned before the call) with the reference of each (query, head).
/// query_len(i) and query_rows(i) give query i's visible length and its sequence's cache rows.
template <class Len, class Rows>
void check_against_reference(const std::vector<float>& got, const Queries& q, int n, int heads, Len query_len,
                             Rows query_rows) {
  std::vector<double> err(got.size());
  parallel_for(static_cast<std::size_t>(n) * heads, [&](std::size_t i) {
    const std::size_t t = i / heads, h = i % heads;
    std::vector<double> ref(kL);
    reference_one(&q.lat[(t * heads + h) * kL], &q.rope[(t * heads + h) * kR], query_rows(static_cast<int>(t)),
                  query_len(static_cast<int>(t)), ref.data());
    for (int d = 0; d < kL; ++d) {
      const float g = got[i * kL + d];
      err[i * kL + d] = std::isfinite(g) ? std::abs(g - ref[d]) : INFINITY;
    }
  });
  double max_err = 0, sum = 0;
  std::size_t worst = 0;
  for (std::size_t i = 0; i < err.size(); ++i) {
    if (err[i] > max_err) max_err = err[i], worst = i;
    sum += err[i];
  }
  const double mean = sum / static_cast<double>(err.size());
  INFO("max abs err " << max_err << " at query " << worst / kL / heads << " head " << (worst / kL) % heads
                      << " dim " << worst % kL << "; mean abs err " << mean);
  CHECK(max_err <= kMaxTol);
  CHECK(mean <= kMeanTol);
}

struct DecodeCase {
  std::vector<int> lens;
  int heads, page_size, splits;  // splits: 1 = off, 0 = auto, > 1 forced
  MlaDtype dtype;
};

void run_decode(const DecodeCase& c) {
  std::mt19937_64 rng(test_seed() ^ (c.lens.size() * 1000003u + c.lens.back() * 7919u + c.heads * 31u + c.splits));
  Stream s;
  PagedCache cache(rng, c.lens, c.page_size, s);
  const int batch = static_cast<int>(c.lens.size());
  const Queries q(rng, batch, c.heads);
  const MlaDecodePlan plan =
      mla_decode_plan(batch, c.heads, *std::max_element(c.lens.begin(), c.lens.end()), c.splits);
  INFO("batch " << batch << " heads " << c.heads << " page " << c.page_size << " requested splits " << c.splits
                << " → planned " << plan.num_splits << " × " << plan.split_tokens << " tokens");
  const int longest = *std::max_element(c.lens.begin(), c.lens.end());
  if (c.splits > 1 && longest > 32) CHECK(plan.num_splits > 1);  // two tiles or more can always be split
  if (c.splits == 1) CHECK(plan.num_splits == 1);

  Buffer lat, rope;
  if (c.dtype == MlaDtype::F32) {
    lat = Buffer::from(q.lat.data(), q.lat.size()), rope = Buffer::from(q.rope.data(), q.rope.size());
  } else {
    const auto bl = to_bf16(q.lat), br = to_bf16(q.rope);
    lat = Buffer::from(bl.data(), bl.size()), rope = Buffer::from(br.data(), br.size());
  }
  Buffer lens = Buffer::from(c.lens.data(), c.lens.size());
  Buffer out(static_cast<std::size_t>(batch) * c.heads * kL * sizeof(float));
  out.fill_bytes(0xFF);
  Buffer ws(std::max<std::size_t>(plan.workspace_bytes, 256));
  ws.fill_bytes(0xFF);  // an unwritten partial or lse that the combine reads shows up as NaN
  mla_decode(cache.view(), MlaQuery::contiguous(lat.data(), rope.data(), c.dtype, c.heads),
             lens.as<const std::int32_t>(), plan, kScale, ws.data(), out.as<float>(), s);
  s.synchronize();
  std::vector<float> got(static_cast<std::size_t>(batch) * c.heads * kL);
  out.download(got.data(), got.size() * sizeof(float));
  check_against_reference(
      got, q, batch, c.heads, [&](int b) { return c.lens[b]; }, [&](int b) { return cache.rows[b].data(); });
}

}  // namespace

TEST_CASE("mla_cache_append writes bf16-rounded rows where the block table points") {
  std::mt19937_64 rng(test_seed());
  Stream s;
  const std::vector<int> lens = {1, 70, 129};
  PagedCache cache(rng, lens, 64, s);
  std::vector<Bf16> pages(cache.pages.bytes() / 2);
  cache.pages.download(pages.data(), cache.pages.bytes());
  std::size_t mismatches = 0;
  for (std::size_t b = 0; b < lens.size(); ++b)
    for (int t = 0; t < lens[b]; ++t) {
      const std::size_t page = static_cast<std::size_t>(cache.table[b * cache.max_pages + t / 64]);
      for (int d = 0; d < kRow; ++d) {
        const Bf16 g = pages[(page * 64 + t % 64) * kRow + d];
        mismatches += Bf16::from_float(cache.rows[b][static_cast<std::size_t>(t) * kRow + d]).bits != g.bits;
      }
    }
  CHECK(mismatches == 0);
}

TEST_CASE("mla_decode_plan") {
  const auto p1 = mla_decode_plan(1, 128, 4097, 1);
  CHECK(p1.num_splits == 1);
  CHECK(p1.split_tokens >= 4097);
  CHECK(p1.workspace_bytes == 0);
  const auto p7 = mla_decode_plan(1, 128, 4097, 7);
  CHECK(p7.num_splits == 7);
  CHECK(p7.split_tokens % 32 == 0);
  CHECK(static_cast<long long>(p7.split_tokens) * p7.num_splits >= 4097);
  CHECK(static_cast<long long>(p7.split_tokens) * (p7.num_splits - 1) < 4097);  // the last split is not empty
  CHECK(mla_decode_plan(1, 128, 1, 8).num_splits == 1);                         // one tile cannot be split
  const auto pa = mla_decode_plan(8, 128, 32768);
  CHECK(pa.num_splits >= 1);
  CHECK(pa.workspace_bytes >= std::size_t(8) * pa.num_splits * 128 * (kL + 1) * sizeof(float) * (pa.num_splits > 1));
}

TEST_CASE("mla_decode B=1, V3 shape, lengths around the tile and page edges") {
  for (int len : {1, 31, 32, 33, 63, 64, 65, 1000, 4097})
    for (int splits : {1, 0, 5}) {
      CAPTURE(len);
      CAPTURE(splits);
      run_decode({{len}, 128, 64, splits, splits == 1 ? MlaDtype::F32 : MlaDtype::BF16});
    }
}

TEST_CASE("mla_decode B=3, mixed lengths, split-KV off and on (short sequences get empty splits)") {
  for (const auto& lens : std::vector<std::vector<int>>{{1, 65, 4097}, {63, 64, 1000}, {4097, 2, 300}})
    for (int splits : {1, 16, 0}) {
      CAPTURE(lens[0]);
      CAPTURE(splits);
      run_decode({lens, 128, 64, splits, splits == 16 ? MlaDtype::F32 : MlaDtype::BF16});
    }
}

TEST_CASE("mla_decode with 16 heads (V2-Lite: a partly empty head group) and 16-token pages") {
  for (int splits : {1, 3}) {
    CAPTURE(splits);
    run_decode({{100, 1, 777}, 16, 16, splits, MlaDtype::F32});
  }
}

TEST_CASE("mla_prefill: causal chunk after a prefix, q_rope strided inside q as the CPU layer lays it out") {
  struct Case {
    int tokens, prefix, heads;
    MlaDtype dtype;
  };
  for (const Case c : {Case{1, 5, 128, MlaDtype::F32}, Case{17, 64, 128, MlaDtype::BF16},
                       Case{300, 211, 128, MlaDtype::F32}, Case{33, 1, 16, MlaDtype::BF16}}) {
    CAPTURE(c.tokens);
    CAPTURE(c.prefix);
    CAPTURE(c.heads);
    std::mt19937_64 rng(test_seed() ^ (c.tokens * 131u + c.prefix));
    Stream s;
    const int total = c.prefix + c.tokens;
    // Sequence 1 of two, so a block-table row other than 0 is exercised.
    PagedCache cache(rng, {50, total}, 64, s);
    const Queries q(rng, c.tokens, c.heads);
    // q as the CPU layer holds it: [tokens][heads][nope 128 + rope 64]; q_lat separately.
    constexpr int kHead = 128 + kR;
    std::vector<float> qfull(static_cast<std::size_t>(c.tokens) * c.heads * kHead, 0.f);
    for (std::size_t i = 0; i < static_cast<std::size_t>(c.tokens) * c.heads; ++i)
      std::copy_n(&q.rope[i * kR], kR, &qfull[i * kHead + 128]);
    Buffer lat, full;
    if (c.dtype == MlaDtype::F32) {
      lat = Buffer::from(q.lat.data(), q.lat.size()), full = Buffer::from(qfull.data(), qfull.size());
    } else {
      const auto bl = to_bf16(q.lat), bf = to_bf16(qfull);
      lat = Buffer::from(bl.data(), bl.size()), full = Buffer::from(bf.data(), bf.size());
    }
    const std::size_t es = c.dtype == MlaDtype::F32 ? 4 : 2;
    MlaQuery mq = MlaQuery::contiguous(lat.data(), static_cast<const char*>(full.data()) + 128 * es, c.dtype, c.heads);
    mq.rope_token_stride = std::int64_t{c.heads} * kHead;
    mq.rope_head_stride = kHead;
    Buffer out(static_cast<std::size_t>(c.tokens) * c.heads * kL * sizeof(float));
    out.fill_bytes(0xFF);
    mla_prefill(cache.view(), 1, c.prefix, mq, c.tokens, c.heads, kScale, out.as<float>(), s);
    s.synchronize();
    std::vector<float> got(static_cast<std::size_t>(c.tokens) * c.heads * kL);
    out.download(got.data(), got.size() * sizeof(float));
    check_against_reference(
        got, q, c.tokens, c.heads, [&](int t) { return c.prefix + t + 1; },
        [&](int) { return cache.rows[1].data(); });
  }
}

TEST_CASE("mla entry points reject bad arguments") {
  Stream s;
  const MlaPagedCache none{};
  CHECK_THROWS_AS(mla_decode_plan(0, 128, 10), std::invalid_argument);
  const auto plan = mla_decode_plan(1, 128, 10, 1);
  CHECK_THROWS_AS(mla_decode(none, MlaQuery{}, nullptr, plan, kScale, nullptr, nullptr, s), std::invalid_argument);
}
