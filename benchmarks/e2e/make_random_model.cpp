// hmoe_make_random_model: writes a DeepSeek (deepseek2) GGUF with the real shapes of V2-Lite or V3 and random
// weights, typed like a Q4_K_M file, for end-to-end speed runs without downloading a model.
//
// The file is laid out as llama.cpp's current converter writes it (split attn_k_b / attn_v_b with
// attention.key_length_mla; see tools/make_bad_models.py for the same keys on a tiny model). Its tokenizer is
// synthetic but complete, so llama.cpp (llama-bench) loads the file: a `gpt2` byte-level BPE vocabulary of the
// model's size with the model's pre-tokenizer name (`deepseek-llm` for V2, `deepseek-v3` for V3), the 256
// byte-level characters, a few merges, BOS/EOS at the real ids, and "<t123>" fillers for the other ids.
// hmoe-bench draws random token ids and needs none of it; hmoe's GGUF tokenizer reads it as it is.
//
// Speed: the header is built in memory; the data section is generated window by window (64 MiB) by all cores
// into one buffer while the previous window is written from the other, so memory stays at two windows and the
// run goes at disk speed. Every block's bytes come from a counter-based stream (splitmix64 at a position fixed
// by the tensor and the block index), so the output does not depend on the thread count or window size.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <hmoe/quant/ggml_type.hpp>
#include <hmoe/quant/half.hpp>
#include <hmoe/quant/k_blocks.hpp>
#include <hmoe/quant/legacy_blocks.hpp>

namespace {

using hmoe::GgmlType;
using hmoe::quant::fp16_to_fp32;
using hmoe::quant::fp32_to_fp16;

constexpr const char* usage = R"(hmoe_make_random_model: a random-weight DeepSeek GGUF with real shapes (Q4_K_M-like types).

usage: hmoe_make_random_model --shape v2-lite|v3 [--layers N] --out FILE.gguf [options]

  --shape S      v2-lite (DeepSeek-V2-Lite, 27 layers) or v3 (DeepSeek-V3, 61 layers)
  --layers N     only the first N layers (the first min(N, dense layers of the shape) are dense)
  --out FILE     the GGUF to write (written as FILE.partial, renamed when complete)
  --seed N       random seed (default 1)
  --threads N    generator threads (default: all hardware threads)
  --dry-run      print the layout and size, write nothing
  -h, --help     this text

The summary (stderr) ends with machine-readable lines: file_bytes=N, moe_layers=N, routed_expert_bytes_per_token=N
(experts used x one expert's gate + up + down bytes, summed over the MoE layers: what decoding one token reads of
the routed experts).
)";

// ---- model shapes ---------------------------------------------------------------------------------------------

struct Shape {
  std::string name;
  int layers, dense_layers;
  std::int64_t hidden, heads, q_lora, kv_lora, nope, rope, v_head, dense_ffn;
  std::int64_t experts, experts_used, shared, expert_ffn, groups, groups_used, vocab, context;
  bool sigmoid, weights_norm;
  float weights_scale, yarn_log_multiplier, rms_eps;
  std::string tokenizer_pre;  // tokenizer.ggml.pre, as llama.cpp's converter names the model's pre-tokenizer
  std::int64_t bos, eos;      // the real BOS / EOS ids
};

// From the models' config.json; yarn_log_multiplier is 0.1 * mscale_all_dim, as llama.cpp's converter writes it.
const Shape v2_lite{"DeepSeek-V2-Lite", 27, 1, 2048, 16, 0, 512, 128, 64, 128, 10944,
                    64, 6, 2, 1408, 1, 1, 102400, 163840, false, false, 1.0f, 0.0707f, 1e-6f,
                    "deepseek-llm", 100000, 100001};
const Shape v3{"DeepSeek-V3", 61, 3, 7168, 128, 1536, 512, 128, 64, 128, 18432,
               256, 8, 1, 2048, 8, 4, 129280, 163840, true, true, 2.5f, 0.1f, 1e-6f, "deepseek-v3", 0, 1};

// ---- tensors --------------------------------------------------------------------------------------------------

// What the values of a tensor look like; quantized tensors are always Weight.
enum class Kind { Weight, Norm, Bias };

struct Tensor {
  std::string name;
  GgmlType type;
  int n_dims;
  std::array<std::uint64_t, 4> ne{1, 1, 1, 1};
  Kind kind = Kind::Weight;
  std::uint64_t offset = 0;  // in the data section
  std::uint64_t bytes = 0;
  std::uint64_t seed = 0;
};

constexpr std::uint64_t alignment = 32;

std::uint64_t align_up(std::uint64_t x) { return (x + alignment - 1) / alignment * alignment; }

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

// Q4_K_M-like choice: rows must hold whole blocks of the type. ffn_down* takes Q6_K, or Q5_0 (as llama.cpp does
// for V2-Lite's 1408-long expert rows) when its rows are not whole 256-blocks; other matrices Q4_K or Q8_0.
GgmlType matrix_type(std::string_view name, std::uint64_t row) {
  const bool down = name.find(".ffn_down") != std::string_view::npos;
  if (row % 256 == 0) return down ? GgmlType::Q6_K : GgmlType::Q4_K;
  return down ? GgmlType::Q5_0 : GgmlType::Q8_0;
}

class Layout {
 public:
  std::vector<Tensor> tensors;
  std::uint64_t data_bytes = 0;

  // ne in ggml order: ne[0] is the row length.
  void add(const std::string& name, std::initializer_list<std::uint64_t> ne, Kind kind = Kind::Weight,
           std::optional<GgmlType> type = std::nullopt) {
    Tensor t;
    t.name = name;
    t.n_dims = static_cast<int>(ne.size());
    std::copy(ne.begin(), ne.end(), t.ne.begin());
    t.kind = kind;
    t.type = type ? *type : (kind == Kind::Weight && t.n_dims >= 2 ? matrix_type(name, t.ne[0]) : GgmlType::F32);
    const auto info = hmoe::ggml_type_info(t.type);
    if (t.ne[0] % info.block_elems != 0) throw std::logic_error(name + ": rows do not hold whole blocks");
    t.bytes = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3] / info.block_elems * info.block_bytes;
    t.offset = align_up(data_bytes);
    data_bytes = t.offset + t.bytes;
    tensors.push_back(std::move(t));
  }
};

Layout make_layout(const Shape& s, std::uint64_t seed) {
  Layout L;
  const auto H = static_cast<std::uint64_t>(s.hidden), nh = static_cast<std::uint64_t>(s.heads);
  const auto r = static_cast<std::uint64_t>(s.kv_lora), nope = static_cast<std::uint64_t>(s.nope);
  const auto rope = static_cast<std::uint64_t>(s.rope), v = static_cast<std::uint64_t>(s.v_head);
  const auto E = static_cast<std::uint64_t>(s.experts), F = static_cast<std::uint64_t>(s.expert_ffn);
  const auto S = static_cast<std::uint64_t>(s.shared), vocab = static_cast<std::uint64_t>(s.vocab);
  L.add("token_embd.weight", {H, vocab}, Kind::Weight, GgmlType::Q4_K);
  for (int b = 0; b < s.layers; ++b) {
    const std::string p = "blk." + std::to_string(b) + ".";
    L.add(p + "attn_norm.weight", {H}, Kind::Norm);
    if (s.q_lora > 0) {
      L.add(p + "attn_q_a.weight", {H, static_cast<std::uint64_t>(s.q_lora)});
      L.add(p + "attn_q_a_norm.weight", {static_cast<std::uint64_t>(s.q_lora)}, Kind::Norm);
      L.add(p + "attn_q_b.weight", {static_cast<std::uint64_t>(s.q_lora), nh * (nope + rope)});
    } else {
      L.add(p + "attn_q.weight", {H, nh * (nope + rope)});
    }
    L.add(p + "attn_kv_a_mqa.weight", {H, r + rope});
    L.add(p + "attn_kv_a_norm.weight", {r}, Kind::Norm);
    // Per-head matrices with rows of 128 / 512: Q8_0 as in llama.cpp's Q4_K_M files.
    L.add(p + "attn_k_b.weight", {nope, r, nh}, Kind::Weight, GgmlType::Q8_0);
    L.add(p + "attn_v_b.weight", {r, v, nh}, Kind::Weight, GgmlType::Q8_0);
    L.add(p + "attn_output.weight", {nh * v, H});
    L.add(p + "ffn_norm.weight", {H}, Kind::Norm);
    if (b < s.dense_layers) {
      const auto D = static_cast<std::uint64_t>(s.dense_ffn);
      L.add(p + "ffn_gate.weight", {H, D});
      L.add(p + "ffn_up.weight", {H, D});
      L.add(p + "ffn_down.weight", {D, H});
    } else {
      L.add(p + "ffn_gate_inp.weight", {H, E}, Kind::Weight, GgmlType::F32);
      if (s.sigmoid) L.add(p + "exp_probs_b.bias", {E}, Kind::Bias);
      L.add(p + "ffn_gate_exps.weight", {H, F, E});
      L.add(p + "ffn_up_exps.weight", {H, F, E});
      L.add(p + "ffn_down_exps.weight", {F, H, E});
      L.add(p + "ffn_gate_shexp.weight", {H, F * S});
      L.add(p + "ffn_up_shexp.weight", {H, F * S});
      L.add(p + "ffn_down_shexp.weight", {F * S, H});
    }
  }
  L.add("output_norm.weight", {H}, Kind::Norm);
  L.add("output.weight", {H, vocab}, Kind::Weight, GgmlType::Q6_K);
  for (auto& t : L.tensors) t.seed = fnv1a(t.name) ^ (seed * 0x9E3779B97F4A7C15ull);
  return L;
}

// ---- GGUF header ----------------------------------------------------------------------------------------------

// GGUF metadata value types (gguf_value.hpp).
enum : std::uint32_t { UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9 };

class Header {
 public:
  std::string bytes;
  std::uint64_t n_kv = 0;

  void u32(std::string_view key, std::uint64_t v) { kv(key, UINT32), pod(static_cast<std::uint32_t>(v)); }
  void f32(std::string_view key, float v) { kv(key, FLOAT32), pod(v); }
  void boolean(std::string_view key, bool v) { kv(key, BOOL), pod(static_cast<std::uint8_t>(v)); }
  void str(std::string_view key, std::string_view v) { kv(key, STRING), string(v); }
  void strings(std::string_view key, const std::vector<std::string>& v) {
    kv(key, ARRAY), pod(STRING), pod(static_cast<std::uint64_t>(v.size()));
    for (const std::string& e : v) string(e);
  }
  void i32s(std::string_view key, const std::vector<std::int32_t>& v) {
    kv(key, ARRAY), pod(INT32), pod(static_cast<std::uint64_t>(v.size()));
    bytes.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(std::int32_t));
  }

  template <class T>
  void pod(T v) {  // little-endian host assumed (x86 / arm64), as GGUF is
    bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void string(std::string_view s) {
    pod(static_cast<std::uint64_t>(s.size()));
    bytes.append(s);
  }

 private:
  void kv(std::string_view key, std::uint32_t type) {
    string(key);
    pod(type);
    ++n_kv;
  }
};

// ---- synthetic tokenizer --------------------------------------------------------------------------------------

// UTF-8 of one code point (< 0x800 is all the byte-level alphabet needs).
std::string utf8(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes (controls, space,
// 0x7F-0xA0, 0xAD) for U+0100, U+0101, ... in byte order, so a space is U+0120 and a newline U+010A.
std::string byte_char(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  if (printable) return utf8(static_cast<std::uint32_t>(b));
  int n = 0;  // how many non-printable bytes come before b
  for (int c = 0; c < b; ++c)
    if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) ++n;
  return utf8(static_cast<std::uint32_t>(256 + n));
}

struct Vocab {
  std::vector<std::string> tokens, merges;
  std::vector<std::int32_t> types;
};

// s.vocab unique tokens: BOS / EOS (control) at their real ids; the other ids in order take the 256 byte-level
// characters, the results of a few merges (so both tokenizers have merges to apply), then "<t{id}>".
Vocab synthetic_vocab(const Shape& s) {
  constexpr std::int32_t normal = 1, control = 3;  // llama.cpp's token types
  const std::string G = byte_char(' ');            // "Ġ"
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {G, "t"}, {G, "a"}, {"h", "e"}, {"i", "n"}, {"r", "e"}, {"o", "n"}, {"e", "r"}, {G + "t", "he"}};
  std::vector<std::string> ordinary;
  for (int b = 0; b < 256; ++b) ordinary.push_back(byte_char(b));
  for (const auto& [a, b] : pairs) ordinary.push_back(a + b);

  Vocab v;
  v.tokens.resize(static_cast<std::size_t>(s.vocab));
  v.types.assign(static_cast<std::size_t>(s.vocab), normal);
  std::size_t next = 0;
  for (std::int64_t id = 0; id < s.vocab; ++id) {
    const auto i = static_cast<std::size_t>(id);
    if (id == s.bos) v.tokens[i] = "<｜begin▁of▁sentence｜>", v.types[i] = control;
    else if (id == s.eos) v.tokens[i] = "<｜end▁of▁sentence｜>", v.types[i] = control;
    else if (next < ordinary.size()) v.tokens[i] = ordinary[next++];
    else v.tokens[i] = "<t" + std::to_string(id) + ">";
  }
  if (next < ordinary.size()) throw std::logic_error("vocabulary too small for the byte-level alphabet");
  for (const auto& [a, b] : pairs) v.merges.push_back(a + " " + b);
  return v;
}

// Metadata as llama.cpp's converter writes it for these models; arch keys are prefixed "deepseek2.".
Header metadata(const Shape& s) {
  Header m;
  const auto K = [](std::string_view k) { return "deepseek2." + std::string(k); };
  m.str("general.architecture", "deepseek2");
  m.str("general.type", "model");
  m.str("general.name", s.name + " (random weights, hmoe_make_random_model)");
  m.u32("general.alignment", alignment);
  m.u32(K("block_count"), s.layers);
  m.u32(K("context_length"), s.context);
  m.u32(K("embedding_length"), s.hidden);
  m.u32(K("feed_forward_length"), s.dense_ffn);
  m.u32(K("attention.head_count"), s.heads);
  m.u32(K("attention.head_count_kv"), 1);
  m.f32(K("rope.freq_base"), 10000.0f);
  m.f32(K("attention.layer_norm_rms_epsilon"), s.rms_eps);
  m.u32(K("expert_count"), s.experts);
  m.u32(K("expert_used_count"), s.experts_used);
  m.u32(K("expert_group_count"), s.groups);
  m.u32(K("expert_group_used_count"), s.groups_used);
  m.u32(K("expert_gating_func"), s.sigmoid ? 2 : 1);
  m.u32(K("attention.key_length"), s.kv_lora + s.rope);
  m.u32(K("attention.value_length"), s.kv_lora);
  m.u32("general.file_type", 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  m.u32(K("leading_dense_block_count"), s.dense_layers);
  m.u32(K("vocab_size"), s.vocab);
  // Real V2-Lite files have no q_lora_rank key: llama.cpp treats a 26- or 27-layer deepseek2 as "lite" and reads
  // none, but requires the key for any other layer count, so a cut-down V2-Lite says 0 (no q LoRA).
  if (s.q_lora > 0 || (s.layers != 27 && s.layers != 26)) m.u32(K("attention.q_lora_rank"), s.q_lora);
  m.u32(K("attention.kv_lora_rank"), s.kv_lora);
  m.u32(K("attention.key_length_mla"), s.nope + s.rope);
  m.u32(K("attention.value_length_mla"), s.v_head);
  m.u32(K("expert_feed_forward_length"), s.expert_ffn);
  m.u32(K("expert_shared_count"), s.shared);
  m.f32(K("expert_weights_scale"), s.weights_scale);
  m.boolean(K("expert_weights_norm"), s.weights_norm);
  m.u32(K("rope.dimension_count"), s.rope);
  m.str(K("rope.scaling.type"), "yarn");
  m.f32(K("rope.scaling.factor"), 40.0f);
  m.u32(K("rope.scaling.original_context_length"), 4096);
  m.f32(K("rope.scaling.yarn_log_multiplier"), s.yarn_log_multiplier);
  m.f32(K("rope.scaling.yarn_beta_fast"), 32.0f);
  m.f32(K("rope.scaling.yarn_beta_slow"), 1.0f);
  m.u32("general.quantization_version", 2);

  const Vocab v = synthetic_vocab(s);
  m.str("tokenizer.ggml.model", "gpt2");
  m.str("tokenizer.ggml.pre", s.tokenizer_pre);
  m.strings("tokenizer.ggml.tokens", v.tokens);
  m.i32s("tokenizer.ggml.token_type", v.types);
  m.strings("tokenizer.ggml.merges", v.merges);
  m.u32("tokenizer.ggml.bos_token_id", static_cast<std::uint64_t>(s.bos));
  m.u32("tokenizer.ggml.eos_token_id", static_cast<std::uint64_t>(s.eos));
  m.u32("tokenizer.ggml.padding_token_id", static_cast<std::uint64_t>(s.eos));
  m.boolean("tokenizer.ggml.add_bos_token", true);
  m.boolean("tokenizer.ggml.add_eos_token", false);
  return m;
}

// The whole header: fixed part, metadata, tensor infos, zero padding up to the data section.
std::string header_bytes(const Shape& s, const Layout& L) {
  const Header m = metadata(s);
  Header h;
  h.bytes = "GGUF";
  h.pod(std::uint32_t{3});
  h.pod(static_cast<std::uint64_t>(L.tensors.size()));
  h.pod(m.n_kv);
  h.bytes += m.bytes;
  for (const Tensor& t : L.tensors) {
    h.string(t.name);
    h.pod(static_cast<std::uint32_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) h.pod(t.ne[static_cast<std::size_t>(d)]);
    h.pod(static_cast<std::uint32_t>(t.type));
    h.pod(t.offset);
  }
  h.bytes.resize(align_up(h.bytes.size()), '\0');
  return h.bytes;
}

// ---- random block contents ------------------------------------------------------------------------------------

// splitmix64 is counter-based: draw i of a stream is mix(seed + i * gamma), so any block's draws can be reached
// directly (block b of a type taking K draws per block starts at draw b * K).
struct SplitMix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  static SplitMix64 at(std::uint64_t seed, std::uint64_t draw) { return {seed + draw * 0x9E3779B97F4A7C15ull}; }
};

// Target standard deviation of every dequantized weight, about that of trained DeepSeek matrices.
constexpr float weight_sd = 0.02f;

// A uniform factor in [0.75, 1.25) from 16 bits, so block scales vary like real ones.
float jitter(std::uint64_t r) { return 0.75f + 0.5f * static_cast<float>(r & 0xFFFF) / 65536.0f; }

// Approximately N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall), centred and scaled to unit variance.
float normal(std::uint64_t r) {
  float sum = 0;
  for (int i = 0; i < 4; ++i) sum += static_cast<float>((r >> (16 * i)) & 0xFFFF) / 65536.0f;
  return (sum - 2.0f) * 1.7320508f;
}

void random_bytes(SplitMix64& g, std::uint8_t* p, std::size_t n) {  // n a multiple of 8
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t v = g.next();
    std::memcpy(p + i, &v, 8);
  }
}

// Each generator writes one block (of its ggml type) and says how many draws a block takes. Quant values are
// uniform over their whole range; the f16 scale d is set so the values have standard deviation ~weight_sd.

// Q4_K: (d * sc) * q - dmin * m with q uniform in [0, 16): sd of q is 4.61. With m = sc and dmin = 7.5 d each
// sub-block is centred on zero; sc uniform in [24, 40), mean 31.5.
struct GenQ4K {
  static constexpr int draws = 17;
  static void block(SplitMix64& g, std::uint8_t* out) {
    hmoe::quant::BlockQ4_K b;
    const std::uint64_t r = g.next();
    const std::uint16_t d = fp32_to_fp16(weight_sd / (4.61f * 31.5f) * jitter(r));
    b.d = d;
    b.dmin = fp32_to_fp16(7.5f * fp16_to_fp32(d));
    std::memset(b.scales, 0, sizeof b.scales);
    for (int j = 0; j < 8; ++j) {
      const auto sc = static_cast<std::uint8_t>(24 + ((r >> (16 + 4 * j)) & 15)), m = sc;
      if (j < 4) {  // 6 bits each in bytes j and j + 4
        b.scales[j] |= sc;
        b.scales[j + 4] |= m;
      } else {  // low nibbles in byte j + 4, top two bits in bytes j - 4 (scale) and j (min)
        b.scales[j + 4] = static_cast<std::uint8_t>((sc & 15) | ((m & 15) << 4));
        b.scales[j - 4] |= static_cast<std::uint8_t>((sc >> 4) << 6);
        b.scales[j] |= static_cast<std::uint8_t>((m >> 4) << 6);
      }
    }
    random_bytes(g, b.qs, sizeof b.qs);
    std::memcpy(out, &b, sizeof b);
  }
};

// Q6_K: (d * sc) * (q - 32), q uniform in [0, 64): sd 18.47; 8-bit scales uniform in [8, 16), mean 11.5 (small
// scales keep d a normal f16).
struct GenQ6K {
  static constexpr int draws = 27;
  static void block(SplitMix64& g, std::uint8_t* out) {
    hmoe::quant::BlockQ6_K b;
    const std::uint64_t r = g.next();
    b.d = fp32_to_fp16(weight_sd / (18.47f * 11.5f) * jitter(r));
    random_bytes(g, b.ql, sizeof b.ql);
    random_bytes(g, b.qh, sizeof b.qh);
    std::uint8_t sc[16];
    random_bytes(g, sc, sizeof sc);
    for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<std::int8_t>(8 + (sc[i] & 7));
    std::memcpy(out, &b, sizeof b);
  }
};

// Q8_0: d * q, q uniform in [-127, 127] (sd 73.6); -128 is remapped because quantizers never write it and int8
// kernels that take |q| may not handle it.
struct GenQ8_0 {
  static constexpr int draws = 5;
  static void block(SplitMix64& g, std::uint8_t* out) {
    hmoe::quant::BlockQ8_0 b;
    b.d = fp32_to_fp16(weight_sd / 73.6f * jitter(g.next()));
    random_bytes(g, reinterpret_cast<std::uint8_t*>(b.qs), sizeof b.qs);
    for (auto& q : b.qs) q = q == -128 ? std::int8_t{-127} : q;
    std::memcpy(out, &b, sizeof b);
  }
};

// Q5_0: d * (q - 16), q uniform in [0, 32): sd 9.23.
struct GenQ5_0 {
  static constexpr int draws = 4;
  static void block(SplitMix64& g, std::uint8_t* out) {
    hmoe::quant::BlockQ5_0 b;
    b.d = fp32_to_fp16(weight_sd / 9.23f * jitter(g.next()));
    std::uint8_t bits[24];
    random_bytes(g, bits, sizeof bits);
    std::memcpy(b.qh, bits, sizeof b.qh);
    std::memcpy(b.qs, bits + sizeof b.qh, sizeof b.qs);
    std::memcpy(out, &b, sizeof b);
  }
};

// F32, one value per "block": norms ~1, the router ~N(0, weight_sd), the selection bias small.
template <Kind kind>
struct GenF32 {
  static constexpr int draws = 1;
  static void block(SplitMix64& g, std::uint8_t* out) {
    const float n = normal(g.next());
    const float v = kind == Kind::Norm ? 1.0f + 0.05f * n : kind == Kind::Bias ? 0.01f * n : weight_sd * n;
    std::memcpy(out, &v, 4);
  }
};

// Bytes [begin, end) of tensor t's data into dst. Blocks cut by a window edge are made whole in a scratch block
// and copied in part, so every byte is the same whatever the windows are.
template <class Gen, std::size_t block_bytes>
void fill_tensor(const Tensor& t, std::uint64_t begin, std::uint64_t end, std::uint8_t* dst) {
  std::uint64_t b = begin / block_bytes;
  while (begin < end) {
    SplitMix64 g = SplitMix64::at(t.seed, b * Gen::draws);
    const std::uint64_t block_start = b * block_bytes;
    if (begin == block_start && end - begin >= block_bytes) {
      Gen::block(g, dst);
      dst += block_bytes;
      begin += block_bytes;
    } else {
      std::uint8_t scratch[block_bytes];
      Gen::block(g, scratch);
      const std::uint64_t n = std::min(end, block_start + block_bytes) - begin;
      std::memcpy(dst, scratch + (begin - block_start), n);
      dst += n;
      begin += n;
    }
    ++b;
  }
}

void fill_tensor(const Tensor& t, std::uint64_t begin, std::uint64_t end, std::uint8_t* dst) {
  using namespace hmoe::quant;
  switch (t.type) {
    case GgmlType::Q4_K: return fill_tensor<GenQ4K, sizeof(BlockQ4_K)>(t, begin, end, dst);
    case GgmlType::Q6_K: return fill_tensor<GenQ6K, sizeof(BlockQ6_K)>(t, begin, end, dst);
    case GgmlType::Q8_0: return fill_tensor<GenQ8_0, sizeof(BlockQ8_0)>(t, begin, end, dst);
    case GgmlType::Q5_0: return fill_tensor<GenQ5_0, sizeof(BlockQ5_0)>(t, begin, end, dst);
    case GgmlType::F32:
      switch (t.kind) {
        case Kind::Norm: return fill_tensor<GenF32<Kind::Norm>, 4>(t, begin, end, dst);
        case Kind::Bias: return fill_tensor<GenF32<Kind::Bias>, 4>(t, begin, end, dst);
        case Kind::Weight: return fill_tensor<GenF32<Kind::Weight>, 4>(t, begin, end, dst);
      }
      break;
    default: break;
  }
  throw std::logic_error(t.name + ": no generator for its type");
}

// Data-section bytes [begin, end) into dst: tensor bytes, and zeros in the alignment gaps between tensors.
void fill_range(const Layout& L, std::uint64_t begin, std::uint64_t end, std::uint8_t* dst) {
  // The first tensor ending after `begin` (tensors are in offset order).
  auto it = std::upper_bound(L.tensors.begin(), L.tensors.end(), begin,
                             [](std::uint64_t x, const Tensor& t) { return x < t.offset + t.bytes; });
  std::uint64_t at = begin;
  while (at < end) {
    const std::uint64_t gap_end = it == L.tensors.end() ? end : std::min(end, std::max(at, it->offset));
    std::memset(dst + (at - begin), 0, gap_end - at);
    at = gap_end;
    if (at >= end) break;
    const std::uint64_t stop = std::min(end, it->offset + it->bytes);
    fill_tensor(*it, at - it->offset, stop - it->offset, dst + (at - begin));
    at = stop;
    ++it;
  }
}

// ---- writing --------------------------------------------------------------------------------------------------

void pwrite_all(int fd, const void* p, std::size_t n, std::uint64_t offset, const std::string& path) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, c, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "write " + path);
    }
    c += w;
    n -= static_cast<std::size_t>(w);
    offset += static_cast<std::uint64_t>(w);
  }
}

std::string gb(std::uint64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return s;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void print_summary(const Shape& s, const Layout& L, std::uint64_t header) {
  std::map<std::string, std::uint64_t> by_type;
  for (const Tensor& t : L.tensors) by_type[std::string(hmoe::ggml_type_name(t.type))] += t.bytes;
  std::fprintf(stderr, "%s: %d layers (%d dense), %zu tensors, header %llu bytes\n", s.name.c_str(), s.layers,
               s.dense_layers, L.tensors.size(), static_cast<unsigned long long>(header));
  for (const auto& [type, bytes] : by_type) std::fprintf(stderr, "  %-5s %s\n", type.c_str(), gb(bytes).c_str());
  // Per-layer sizes, so sizes for other --layers values can be worked out.
  const auto layer_bytes = [&](int b) {
    const std::string p = "blk." + std::to_string(b) + ".";
    std::uint64_t n = 0;
    for (const Tensor& t : L.tensors)
      if (t.name.starts_with(p)) n += t.bytes;
    return n;
  };
  if (s.dense_layers > 0) std::fprintf(stderr, "  dense layer %s\n", gb(layer_bytes(0)).c_str());
  if (s.layers > s.dense_layers) std::fprintf(stderr, "  MoE layer   %s\n", gb(layer_bytes(s.dense_layers)).c_str());
  std::fprintf(stderr, "  total       %s (%llu bytes)\n", gb(header + L.data_bytes).c_str(),
               static_cast<unsigned long long>(header + L.data_bytes));
  // What decoding one token reads of the routed experts: per MoE layer, experts_used x (one expert's slice of
  // ffn_gate_exps + ffn_up_exps + ffn_down_exps).
  std::uint64_t routed = 0;
  int moe_layers = 0;
  for (const Tensor& t : L.tensors) {
    if (!t.name.ends_with("_exps.weight")) continue;
    routed += t.bytes / t.ne[2] * static_cast<std::uint64_t>(s.experts_used);
    if (t.name.ends_with("ffn_gate_exps.weight")) ++moe_layers;
  }
  std::fprintf(stderr, "  routed experts read per token: %s (%lld of %lld experts in %d MoE layers)\n",
               gb(routed).c_str(), static_cast<long long>(s.experts_used), static_cast<long long>(s.experts),
               moe_layers);
  std::fprintf(stderr, "file_bytes=%llu\nmoe_layers=%d\nrouted_expert_bytes_per_token=%llu\n",
               static_cast<unsigned long long>(header + L.data_bytes), moe_layers,
               static_cast<unsigned long long>(routed));
}

// Header, then the data section window by window, then fsync, so the reported speed is the disk's. Returns the
// seconds taken before and after the fsync.
std::pair<double, double> write_data(int fd, const std::string& tmp, const Layout& L, const std::string& header,
                                     int threads) {
  const std::uint64_t total = header.size() + L.data_bytes;
  const double t0 = now_s();
  pwrite_all(fd, header.data(), header.size(), 0, tmp);
  constexpr std::uint64_t window = std::uint64_t{64} << 20;
  std::vector<std::uint8_t> buf[2] = {std::vector<std::uint8_t>(window), std::vector<std::uint8_t>(window)};
  std::future<void> writing;
  int last_percent = -1;
  for (std::uint64_t w0 = 0, k = 0; w0 < L.data_bytes; w0 += window, ++k) {
    const std::uint64_t w1 = std::min(L.data_bytes, w0 + window);
    std::uint8_t* dst = buf[k % 2].data();
    {  // generate the window on all threads while the other buffer is being written
      std::vector<std::jthread> pool;
      for (int i = 0; i < threads; ++i) {
        const std::uint64_t a = w0 + (w1 - w0) * i / threads, b = w0 + (w1 - w0) * (i + 1) / threads;
        pool.emplace_back([&L, a, b, dst, w0] { fill_range(L, a, b, dst + (a - w0)); });
      }
    }
    if (writing.valid()) writing.get();
    writing = std::async(std::launch::async, [=, &tmp] {
      pwrite_all(fd, dst, w1 - w0, header.size() + w0, tmp);
    });
    const int percent = static_cast<int>(100 * (header.size() + w1) / total);
    if (percent != last_percent) {
      last_percent = percent;
      std::fprintf(stderr, "\r  %3d%%  %s of %s  %.0f MB/s ", percent, gb(header.size() + w1).c_str(),
                   gb(total).c_str(), static_cast<double>(header.size() + w1) / 1e6 / (now_s() - t0));
      std::fflush(stderr);
    }
  }
  if (writing.valid()) writing.get();
  const double t_written = now_s();
  if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category(), "fsync " + tmp);
  return {t_written - t0, now_s() - t0};
}

void write_model(const std::string& path, const Layout& L, const std::string& header, int threads) {
  const std::uint64_t total = header.size() + L.data_bytes;
  const auto dir = std::filesystem::absolute(path).parent_path();
  if (const auto space = std::filesystem::space(dir); space.available < total)
    throw std::runtime_error(path + ": needs " + gb(total) + ", only " + gb(space.available) + " free in " +
                             dir.string());
  const std::string tmp = path + ".partial";  // renamed when complete, so a cut-off run leaves no valid-looking file
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + tmp);

  std::pair<double, double> seconds;
  try {
    seconds = write_data(fd, tmp, L, header, threads);
    const int closed = ::close(std::exchange(fd, -1));
    if (closed != 0) throw std::system_error(errno, std::generic_category(), "close " + tmp);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    std::filesystem::remove(tmp);  // a file with holes must not be mistaken for a model
    throw;
  }
  std::filesystem::rename(tmp, path);
  const auto [written, synced] = seconds;
  std::fprintf(stderr, "\nwrote %s: %s (%llu bytes) in %.1f s: %.0f MB/s (%.0f MB/s before the final fsync)\n",
               path.c_str(), gb(total).c_str(), static_cast<unsigned long long>(total), synced,
               static_cast<double>(total) / 1e6 / synced, static_cast<double>(total) / 1e6 / written);
}

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "hmoe_make_random_model: %s\n(run with --help for usage)\n", msg.c_str());
  std::exit(2);
}

long long whole_number(const std::string& flag, const std::string& v, long long min) {
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != v.size() || n < min) fail(flag + " takes a whole number >= " + std::to_string(min) + ", got '" + v + "'");
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape_name, out;
  long long layers = 0, seed = 1, threads = std::max(1u, std::thread::hardware_concurrency());
  bool dry_run = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      return 0;
    } else if (a == "--shape") shape_name = value();
    else if (a == "--layers") layers = whole_number(a, value(), 1);
    else if (a == "--out") out = value();
    else if (a == "--seed") seed = whole_number(a, value(), 0);
    else if (a == "--threads") threads = whole_number(a, value(), 1);
    else if (a == "--dry-run") dry_run = true;
    else fail("unknown argument '" + a + "'");
  }
  if (shape_name != "v2-lite" && shape_name != "v3") fail("--shape must be v2-lite or v3");
  if (out.empty() && !dry_run) fail("--out FILE.gguf is required");

  Shape s = shape_name == "v3" ? v3 : v2_lite;
  if (layers > 0) {
    s.layers = static_cast<int>(layers);
    s.dense_layers = std::min(s.dense_layers, s.layers);
  }
  try {
    const Layout L = make_layout(s, static_cast<std::uint64_t>(seed));
    const std::string header = header_bytes(s, L);
    print_summary(s, L, header.size());
    if (!dry_run) write_model(out, L, header, static_cast<int>(threads));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nhmoe_make_random_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
