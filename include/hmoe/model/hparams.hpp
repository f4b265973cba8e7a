/// \file
/// \brief DeepSeek hyper-parameters read from a `deepseek2` GGUF, every one checked and named when wrong.
///
/// llama.cpp writes DeepSeek-V2, V2-Lite, V3, R1 and Kimi-K2 as architecture `deepseek2`. Two attention
/// layouts exist: the current one splits `attn_kv_b` into per-head `attn_k_b` / `attn_v_b` and records
/// `attention.key_length_mla`; older converters kept the single `attn_kv_b`. Whether q goes through a LoRA is
/// decided by which tensors the file has, never by guessing from the layer count.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "hmoe/io/gguf.hpp"
#include "hmoe/model/dims.hpp"

namespace hmoe {

/// A file that parses but does not describe a model hmoe can run (missing key, inconsistent shapes, ...).
struct ModelError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Gating { Softmax, Sigmoid };
enum class AttentionLayout { SplitKvB, LegacyKvB };

struct YarnRope {
  float freq_base = 10000.0f;
  std::int64_t dims = 0;            ///< rotated dimensions (the rope part of each head)
  bool yarn = false;                ///< rope.scaling.type == "yarn"
  float factor = 1.0f;              ///< context extension factor; freq_scale = 1 / factor
  std::int64_t original_context = 0;
  float beta_fast = 32.0f, beta_slow = 1.0f;
  float log_multiplier = 0.0f;      ///< rope.scaling.yarn_log_multiplier (0.1 * mscale_all_dim)
};

struct DeepSeekHParams {
  std::int64_t layers = 0, dense_layers = 0, hidden = 0, vocab = 0, context = 0;
  std::int64_t heads = 0, q_lora_rank = 0, kv_lora_rank = 0, qk_nope = 0, qk_rope = 0, v_head = 0;
  std::int64_t dense_ffn = 0, expert_ffn = 0, experts = 0, experts_used = 0, shared_experts = 0;
  std::int64_t expert_groups = 1, expert_groups_used = 1;
  /// The file's `expert_used_count`: what the model was trained with. `experts_used` is this unless
  /// ModelOverrides::experts_per_token lowered it; everything that runs the model reads `experts_used`.
  std::int64_t trained_experts_used = 0;
  Gating gating = Gating::Softmax;
  bool weights_norm = false;
  float weights_scale = 1.0f;
  float rms_eps = 1e-6f;
  YarnRope rope;
  AttentionLayout layout = AttentionLayout::SplitKvB;

  /// Softmax scale of the attention scores, as llama.cpp computes it for deepseek2 (YaRN mscale squared).
  float kq_scale() const {
    float mscale = 1.0f;
    if (rope.yarn && rope.factor > 1.0f) mscale = 1.0f + rope.log_multiplier * std::log(rope.factor);
    return mscale * mscale / std::sqrt(static_cast<float>(qk_nope + qk_rope));
  }
};

/// What a user may change about a file's model at load (the examples' flags set these).
struct ModelOverrides {
  /// Routed experts per token; 0 = as the model was trained (`expert_used_count`). Fewer is KTransformers'
  /// "selective experts" mode: faster decode for some logit drift (docs/selective-experts.md). The router then
  /// does exactly what HF transformers does with `num_experts_per_tok = K`: the same scores and the same
  /// group-limited candidates, the K best of them, weights normalized over those K (where the file says so)
  /// and scaled.
  std::int64_t experts_per_token = 0;
};

namespace detail {

inline std::string arch_key(std::string_view k) { return "deepseek2." + std::string(k); }

template <class T>
T required(const gguf::File& f, std::string_view k) {
  const auto key = arch_key(k);
  if (!f.find(key)) throw ModelError(f.path().string() + ": missing metadata key '" + key + "'");
  return f.get<T>(key);
}

template <class T>
T optional_or(const gguf::File& f, std::string_view k, T fallback) {
  return f.get_optional<T>(arch_key(k)).value_or(fallback);
}

[[noreturn]] inline void inconsistent(const gguf::File& f, const std::string& what) {
  throw ModelError(f.path().string() + ": inconsistent DeepSeek hyper-parameters: " + what);
}

/// Sizes are bounded so products of a few of them cannot overflow int64 (2^24 is 100x the largest real one).
inline constexpr std::int64_t max_dimension = std::int64_t{1} << 24;

inline void positive(const gguf::File& f, std::string_view k, std::int64_t v) {
  if (v <= 0 || v > max_dimension)
    inconsistent(f, "deepseek2." + std::string(k) + " = " + std::to_string(v) + ", must be in [1, " +
                        std::to_string(max_dimension) + "]");
}

inline void finite_positive(const gguf::File& f, std::string_view k, float v) {
  if (!(std::isfinite(v) && v > 0)) inconsistent(f, "deepseek2." + std::string(k) + " = " + std::to_string(v) + ", must be finite and > 0");
}

}  // namespace detail

/// Reads and cross-checks the hyper-parameters; throws ModelError naming the file and key on any problem.
inline DeepSeekHParams read_hparams(const gguf::File& f) {
  using detail::finite_positive, detail::inconsistent, detail::optional_or, detail::positive, detail::required;
  const std::string file = f.path().string();
  if (const auto arch = f.architecture(); arch != "deepseek2")
    throw ModelError(file + ": general.architecture is '" + arch + "'; hmoe runs 'deepseek2' (DeepSeek-V2/V3/R1)");

  DeepSeekHParams h;
  h.layers = required<std::int64_t>(f, "block_count");
  h.hidden = required<std::int64_t>(f, "embedding_length");
  h.context = required<std::int64_t>(f, "context_length");
  h.heads = required<std::int64_t>(f, "attention.head_count");
  h.kv_lora_rank = required<std::int64_t>(f, "attention.kv_lora_rank");
  h.rms_eps = required<float>(f, "attention.layer_norm_rms_epsilon");
  h.dense_layers = required<std::int64_t>(f, "leading_dense_block_count");
  h.dense_ffn = required<std::int64_t>(f, "feed_forward_length");
  h.expert_ffn = required<std::int64_t>(f, "expert_feed_forward_length");
  h.experts = required<std::int64_t>(f, "expert_count");
  h.experts_used = required<std::int64_t>(f, "expert_used_count");
  h.trained_experts_used = h.experts_used;
  h.shared_experts = required<std::int64_t>(f, "expert_shared_count");
  h.expert_groups = optional_or<std::int64_t>(f, "expert_group_count", 1);
  h.expert_groups_used = optional_or<std::int64_t>(f, "expert_group_used_count", h.expert_groups);
  h.weights_scale = optional_or<float>(f, "expert_weights_scale", 1.0f);
  h.weights_norm = optional_or<bool>(f, "expert_weights_norm", false);
  // Older V2 files predate the key; they all route with softmax.
  switch (const auto g = optional_or<std::int64_t>(f, "expert_gating_func", 1)) {
    case 1: h.gating = Gating::Softmax; break;
    case 2: h.gating = Gating::Sigmoid; break;
    default: inconsistent(f, "deepseek2.expert_gating_func = " + std::to_string(g) + " (known: 1 softmax, 2 sigmoid)");
  }
  for (auto [k, v] : {std::pair{"block_count", h.layers}, {"embedding_length", h.hidden},
                      {"attention.head_count", h.heads}, {"attention.kv_lora_rank", h.kv_lora_rank},
                      {"expert_count", h.experts}, {"expert_used_count", h.experts_used},
                      {"expert_group_count", h.expert_groups}, {"expert_group_used_count", h.expert_groups_used}})
    positive(f, k, v);
  finite_positive(f, "attention.layer_norm_rms_epsilon", h.rms_eps);
  finite_positive(f, "expert_weights_scale", h.weights_scale);
  if (h.dense_layers < 0 || h.dense_layers > h.layers)
    inconsistent(f, "leading_dense_block_count = " + std::to_string(h.dense_layers) + " outside [0, block_count = " +
                        std::to_string(h.layers) + "]");
  if (h.dense_layers > 0) positive(f, "feed_forward_length", h.dense_ffn);
  if (h.dense_layers < h.layers) positive(f, "expert_feed_forward_length", h.expert_ffn);
  if (h.shared_experts < 0 || h.shared_experts > h.experts)
    inconsistent(f, "deepseek2.expert_shared_count = " + std::to_string(h.shared_experts) + ", must be in [0, expert_count]");
  if (h.experts_used > h.experts)
    inconsistent(f, "expert_used_count " + std::to_string(h.experts_used) + " > expert_count " + std::to_string(h.experts));
  if (h.experts % h.expert_groups != 0)
    inconsistent(f, "expert_group_count " + std::to_string(h.expert_groups) + " does not divide expert_count " +
                        std::to_string(h.experts));
  if (h.expert_groups_used > h.expert_groups)
    inconsistent(f, "expert_group_used_count " + std::to_string(h.expert_groups_used) + " > expert_group_count " +
                        std::to_string(h.expert_groups));
  if (const auto kept = h.expert_groups_used * (h.experts / h.expert_groups); h.experts_used > kept)
    inconsistent(f, "expert_used_count " + std::to_string(h.experts_used) + " > the " + std::to_string(kept) +
                        " experts in the kept groups (expert_group_used_count " + std::to_string(h.expert_groups_used) +
                        " x " + std::to_string(h.experts / h.expert_groups) + " experts per group)");

  // Rope: only the rope part of each head rotates.
  h.qk_rope = required<std::int64_t>(f, "rope.dimension_count");
  positive(f, "rope.dimension_count", h.qk_rope);
  if (h.qk_rope % 2) inconsistent(f, "rope.dimension_count must be even");
  h.rope.dims = h.qk_rope;
  h.rope.freq_base = optional_or<float>(f, "rope.freq_base", 10000.0f);
  finite_positive(f, "rope.freq_base", h.rope.freq_base);
  if (const auto type = f.get_optional<std::string>("deepseek2.rope.scaling.type"); type && *type != "none") {
    if (*type != "yarn") inconsistent(f, "rope.scaling.type '" + *type + "' (hmoe runs 'yarn' or none)");
    h.rope.yarn = true;
    h.rope.factor = required<float>(f, "rope.scaling.factor");
    h.rope.original_context = required<std::int64_t>(f, "rope.scaling.original_context_length");
    h.rope.beta_fast = optional_or<float>(f, "rope.scaling.yarn_beta_fast", 32.0f);
    h.rope.beta_slow = optional_or<float>(f, "rope.scaling.yarn_beta_slow", 1.0f);
    h.rope.log_multiplier = optional_or<float>(f, "rope.scaling.yarn_log_multiplier", 0.0f);
    if (!(std::isfinite(h.rope.factor) && h.rope.factor >= 1.0f)) inconsistent(f, "rope.scaling.factor must be finite and >= 1");
    positive(f, "rope.scaling.original_context_length", h.rope.original_context);
    if (h.rope.freq_base == 1.0f) inconsistent(f, "rope.freq_base = 1 leaves YaRN no frequencies to scale");
    finite_positive(f, "rope.scaling.yarn_beta_fast", h.rope.beta_fast);
    finite_positive(f, "rope.scaling.yarn_beta_slow", h.rope.beta_slow);
    if (!std::isfinite(h.rope.log_multiplier)) inconsistent(f, "rope.scaling.yarn_log_multiplier is not finite");
  }

  // Attention layout and head sizes.
  const auto key_length = required<std::int64_t>(f, "attention.key_length");
  const auto value_length = required<std::int64_t>(f, "attention.value_length");
  const auto head_count_kv = required<std::int64_t>(f, "attention.head_count_kv");
  const bool has_split = f.find_tensor("blk.0.attn_k_b.weight") != nullptr;
  const bool has_legacy = f.find_tensor("blk.0.attn_kv_b.weight") != nullptr;
  if (has_split && has_legacy) inconsistent(f, "blk.0 has both attn_k_b (split layout) and attn_kv_b (legacy layout)");
  if (const auto key_mla = f.get_optional<std::int64_t>("deepseek2.attention.key_length_mla")) {
    if (!has_split)
      inconsistent(f, "attention.key_length_mla is set but blk.0.attn_k_b.weight is missing");
    h.layout = AttentionLayout::SplitKvB;
    h.qk_nope = *key_mla - h.qk_rope;
    h.v_head = required<std::int64_t>(f, "attention.value_length_mla");
    if (head_count_kv != 1) inconsistent(f, "the split attn_k_b/attn_v_b layout needs head_count_kv = 1, file has " + std::to_string(head_count_kv));
    if (key_length != h.kv_lora_rank + h.qk_rope)
      inconsistent(f, "attention.key_length " + std::to_string(key_length) + " != kv_lora_rank + rope dims " +
                          std::to_string(h.kv_lora_rank + h.qk_rope));
    if (value_length != h.kv_lora_rank)
      inconsistent(f, "attention.value_length " + std::to_string(value_length) + " != kv_lora_rank " + std::to_string(h.kv_lora_rank));
  } else {
    if (!has_legacy)
      inconsistent(f, has_split ? "blk.0.attn_k_b.weight exists but attention.key_length_mla is missing"
                                : "neither blk.0.attn_k_b.weight nor blk.0.attn_kv_b.weight exists");
    h.layout = AttentionLayout::LegacyKvB;
    h.qk_nope = key_length - h.qk_rope;
    h.v_head = value_length;
    if (head_count_kv != h.heads)
      inconsistent(f, "the legacy attn_kv_b layout needs head_count_kv = head_count, file has " + std::to_string(head_count_kv));
  }
  const bool split = h.layout == AttentionLayout::SplitKvB;
  positive(f, split ? "attention.key_length_mla - rope.dimension_count (the nope part)" : "attention.key_length - rope.dimension_count (the nope part)", h.qk_nope);
  positive(f, split ? "attention.value_length_mla" : "attention.value_length", h.v_head);

  // q LoRA: the tensors decide; the key, when present, must agree with them.
  const auto* q_a = f.find_tensor("blk.0.attn_q_a.weight");
  const auto* q = f.find_tensor("blk.0.attn_q.weight");
  if (q_a && q) inconsistent(f, "blk.0 has both attn_q_a (q LoRA) and attn_q");
  if (!q_a && !q) inconsistent(f, "blk.0 has neither attn_q_a (q LoRA) nor attn_q");
  h.q_lora_rank = q_a ? static_cast<std::int64_t>(q_a->ne[1]) : 0;
  if (const auto key = f.get_optional<std::int64_t>("deepseek2.attention.q_lora_rank"); key && *key != h.q_lora_rank)
    inconsistent(f, "attention.q_lora_rank = " + std::to_string(*key) + " but the tensors say " +
                        (q_a ? "rank " + std::to_string(h.q_lora_rank) + " (attn_q_a)" : "no q LoRA (attn_q)"));

  // The vocabulary: the key is optional in older files; the embedding decides.
  const auto* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw ModelError(file + ": tensor token_embd.weight is missing");
  if (embd->n_dims != 2) inconsistent(f, "token_embd.weight must have 2 dimensions, has " + std::to_string(embd->n_dims));
  h.vocab = static_cast<std::int64_t>(embd->ne[1]);
  positive(f, "vocabulary (token_embd.weight rows)", h.vocab);
  if (const auto v = f.get_optional<std::int64_t>("deepseek2.vocab_size"); v && *v != h.vocab)
    inconsistent(f, "vocab_size = " + std::to_string(*v) + " but token_embd.weight has " + std::to_string(h.vocab) + " rows");
  // A block beyond block_count would be silently ignored: refuse the file instead.
  for (const auto& t : f.tensors()) {
    if (!t.name.starts_with("blk.")) continue;
    const auto dot = t.name.find('.', 4);
    const auto index = std::string_view(t.name).substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
    std::int64_t n = 0;
    for (char c : index) n = (c >= '0' && c <= '9' && n >= 0 && n < detail::max_dimension) ? n * 10 + (c - '0') : -1;
    if (n < 0 || n >= h.layers)
      inconsistent(f, "tensor " + t.name + " belongs to no block: deepseek2.block_count is " + std::to_string(h.layers));
  }
  return h;
}

/// Applies `o` to hyper-parameters read from `file` (the name errors carry); throws ModelError naming the file,
/// the flag value and the limit when an override cannot apply.
///
/// experts_per_token K: 0 keeps the trained count. Otherwise 1 <= K <= expert_used_count. More experts than the
/// model was trained with are refused: that is not a speed/quality trade-off but a model nobody trained (the extra
/// experts add contributions the following layers never saw, or dilute the normalized weights of the best ones),
/// and slower. K must also fit in the experts that group-limited routing keeps (expert_group_used_count x experts
/// per group); read_hparams already guarantees that for the trained count, so this check only fires for
/// hyper-parameters built by hand.
inline DeepSeekHParams apply_overrides(DeepSeekHParams h, const ModelOverrides& o, const std::string& file) {
  const auto k = o.experts_per_token;
  if (k == 0) return h;
  const auto trained = h.trained_experts_used > 0 ? h.trained_experts_used : h.experts_used;
  const auto flag = "--experts-per-token " + std::to_string(k);
  if (k < 0)
    throw ModelError(file + ": " + flag + " is negative: give 1 to " + std::to_string(trained) +
                     " (expert_used_count), or 0 for as trained");
  if (k > trained)
    throw ModelError(file + ": " + flag + " is more than the " + std::to_string(trained) +
                     " routed experts per token the model was trained with (expert_used_count); only fewer are "
                     "allowed: the layers after each MoE block only ever saw mixtures of " + std::to_string(trained) +
                     ", so more is an untested model (and slower), not a speed/quality trade-off");
  if (h.expert_groups > 0 && h.experts % h.expert_groups == 0) {
    if (const auto kept = h.expert_groups_used * (h.experts / h.expert_groups); k > kept)
      throw ModelError(file + ": " + flag + " is more than the " + std::to_string(kept) +
                       " experts that group-limited routing keeps (expert_group_used_count " +
                       std::to_string(h.expert_groups_used) + " x " + std::to_string(h.experts / h.expert_groups) +
                       " experts per group)");
  }
  h.trained_experts_used = trained;
  h.experts_used = k;
  return h;
}

/// read_hparams(f) with the user's overrides applied (see apply_overrides).
inline DeepSeekHParams read_hparams(const gguf::File& f, const ModelOverrides& o) {
  return apply_overrides(read_hparams(f), o, f.path().string());
}

/// Compares a static dims type with the file; names the first mismatch. `experts_used` is compared with the
/// trained count (`expert_used_count`): a run with fewer experts per token (ModelOverrides) is the same model.
template <model_dims D>
void check_dims(const DeepSeekHParams& h, const std::string& file) {
  auto check = [&](std::string_view what, std::int64_t want, std::int64_t got) {
    if (want != Dynamic && want != got)
      throw ModelError(file + ": the model type " + std::string(D::name) + " says " + std::string(what) + " = " +
                       std::to_string(want) + " but the file has " + std::to_string(got) +
                       " (use dims::Dynamic to take the shapes from the file)");
  };
  check("hidden", D::hidden, h.hidden);
  check("vocab", D::vocab, h.vocab);
  check("layers", D::layers, h.layers);
  check("dense_layers", D::dense_layers, h.dense_layers);
  check("heads", D::heads, h.heads);
  check("q_lora_rank", D::q_lora_rank, h.q_lora_rank);
  check("kv_lora_rank", D::kv_lora_rank, h.kv_lora_rank);
  check("qk_nope", D::qk_nope, h.qk_nope);
  check("qk_rope", D::qk_rope, h.qk_rope);
  check("v_head", D::v_head, h.v_head);
  check("dense_ffn", D::dense_ffn, h.dense_ffn);
  check("expert_ffn", D::expert_ffn, h.expert_ffn);
  check("experts", D::experts, h.experts);
  check("experts_used", D::experts_used, h.trained_experts_used > 0 ? h.trained_experts_used : h.experts_used);
  check("shared_experts", D::shared_experts, h.shared_experts);
}

}  // namespace hmoe
