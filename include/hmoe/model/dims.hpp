/// \file
/// \brief Problem shapes of DeepSeek models: static for known models, `Dynamic` where the file decides.
///
/// A dims type is a struct of `static constexpr std::int64_t` members; `hmoe::Dynamic` (-1) in a member means
/// "read it from the file". The loader compares every static member with the file and names a mismatch.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

namespace hmoe {

inline constexpr std::int64_t Dynamic = -1;

template <class D>
concept model_dims = requires {
  { D::name } -> std::convertible_to<std::string_view>;
  { D::hidden } -> std::convertible_to<std::int64_t>;
  { D::vocab } -> std::convertible_to<std::int64_t>;
  { D::layers } -> std::convertible_to<std::int64_t>;
  { D::dense_layers } -> std::convertible_to<std::int64_t>;
  { D::heads } -> std::convertible_to<std::int64_t>;
  { D::q_lora_rank } -> std::convertible_to<std::int64_t>;  // 0: no q LoRA (plain attn_q)
  { D::kv_lora_rank } -> std::convertible_to<std::int64_t>;
  { D::qk_nope } -> std::convertible_to<std::int64_t>;
  { D::qk_rope } -> std::convertible_to<std::int64_t>;
  { D::v_head } -> std::convertible_to<std::int64_t>;
  { D::dense_ffn } -> std::convertible_to<std::int64_t>;
  { D::expert_ffn } -> std::convertible_to<std::int64_t>;
  { D::experts } -> std::convertible_to<std::int64_t>;
  { D::experts_used } -> std::convertible_to<std::int64_t>;
  { D::shared_experts } -> std::convertible_to<std::int64_t>;
};

namespace dims {

/// Every shape read from the file.
struct Dynamic {
  static constexpr std::string_view name = "dims::Dynamic";
  static constexpr std::int64_t hidden = hmoe::Dynamic, vocab = hmoe::Dynamic, layers = hmoe::Dynamic,
                                dense_layers = hmoe::Dynamic, heads = hmoe::Dynamic, q_lora_rank = hmoe::Dynamic,
                                kv_lora_rank = hmoe::Dynamic, qk_nope = hmoe::Dynamic, qk_rope = hmoe::Dynamic,
                                v_head = hmoe::Dynamic, dense_ffn = hmoe::Dynamic, expert_ffn = hmoe::Dynamic,
                                experts = hmoe::Dynamic, experts_used = hmoe::Dynamic,
                                shared_experts = hmoe::Dynamic;
};

/// DeepSeek-V3 / R1 (671B): the shapes of the released checkpoints.
struct DeepSeekV3 {
  static constexpr std::string_view name = "dims::DeepSeekV3";
  static constexpr std::int64_t hidden = 7168, vocab = 129280, layers = 61, dense_layers = 3, heads = 128,
                                q_lora_rank = 1536, kv_lora_rank = 512, qk_nope = 128, qk_rope = 64, v_head = 128,
                                dense_ffn = 18432, expert_ffn = 2048, experts = 256, experts_used = 8,
                                shared_experts = 1;
};

/// DeepSeek-V2-Lite (16B): no q LoRA.
struct DeepSeekV2Lite {
  static constexpr std::string_view name = "dims::DeepSeekV2Lite";
  static constexpr std::int64_t hidden = 2048, vocab = 102400, layers = 27, dense_layers = 1, heads = 16,
                                q_lora_rank = 0, kv_lora_rank = 512, qk_nope = 128, qk_rope = 64, v_head = 128,
                                dense_ffn = 10944, expert_ffn = 1408, experts = 64, experts_used = 6,
                                shared_experts = 2;
};

/// DeepSeek-V2 (236B).
struct DeepSeekV2 {
  static constexpr std::string_view name = "dims::DeepSeekV2";
  static constexpr std::int64_t hidden = 5120, vocab = 102400, layers = 60, dense_layers = 1, heads = 128,
                                q_lora_rank = 1536, kv_lora_rank = 512, qk_nope = 128, qk_rope = 64, v_head = 128,
                                dense_ffn = 12288, expert_ffn = 1536, experts = 160, experts_used = 6,
                                shared_experts = 2;
};

static_assert(model_dims<Dynamic> && model_dims<DeepSeekV3> && model_dims<DeepSeekV2Lite> && model_dims<DeepSeekV2>);

}  // namespace dims
}  // namespace hmoe
