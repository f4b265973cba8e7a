/// \file
/// \brief `CausalLM`: a whole DeepSeek model, composed from layer types, loaded from a GGUF file.
///
/// The first `leading_dense_block_count` blocks are `DenseBlock`s, the rest `MoeBlock`s (DeepSeek's shape).
/// The model owns the mapped file; every weight is a view into it, so loading is a metadata walk.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "hmoe/cpu/reference_matmul.hpp"
#include "hmoe/io/gguf.hpp"
#include "hmoe/layer/rms_norm.hpp"
#include "hmoe/model/dims.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/model/kv_cache.hpp"
#include "hmoe/model/tensors.hpp"
#include "hmoe/policy/pipeline.hpp"
#include "hmoe/quant/dequantize.hpp"

namespace hmoe {

/// Which positions' logits a forward call returns: every position (evaluation) or only the last (generation,
/// where a long prompt's full logits would be tokens × vocab floats for nothing).
enum class Logits { All, Last };

/// `PipelineP` says how the CPU and GPU work of a layout overlaps (policy/pipeline.hpp); an all-CPU layout has
/// nothing to overlap and takes only `Pipeline<Sequential>`.
template <model_dims D, class DenseBlock, class MoeBlock, pipeline_policy PipelineP = Pipeline<Sequential>>
class CausalLM {
  static_assert(std::same_as<PipelineP, Pipeline<Sequential>>,
                "hmoe: an all-CPU model has no GPU work to overlap: it takes Pipeline<Sequential> only");

 public:
  using dims = D;

  /// Takes the file, checks it against the type (dims, tensor types, shapes) and builds the layers.
  /// `overrides` change what the file says at run time (fewer routed experts per token: read_hparams).
  static CausalLM load(gguf::File file, const ModelOverrides& overrides = {}) {
    return CausalLM(std::move(file), overrides);
  }

  const DeepSeekHParams& hparams() const { return h_; }
  const gguf::File& file() const { return file_; }

  KvCache make_cache(std::int64_t context) const {
    if (context <= 0) throw std::invalid_argument("context must be > 0, got " + std::to_string(context));
    return KvCache(h_.layers, context, h_.kv_lora_rank, h_.qk_rope);
  }

  /// Runs `tokens` at the next positions of `cache` and returns their logits, (tokens × vocab) row-major, or
  /// only the last position's (vocab) with Logits::Last.
  std::vector<float> forward(cpu::ThreadPool& pool, std::span<const std::int32_t> tokens, KvCache& cache,
                             Logits which = Logits::All) const {
    const auto n = static_cast<std::int64_t>(tokens.size()), hidden = h_.hidden;
    if (n == 0) throw std::invalid_argument("forward needs at least one token");
    cache.reserve(n);
    std::vector<float> x(static_cast<std::size_t>(n * hidden));
    for (std::int64_t t = 0; t < n; ++t) {
      const auto id = tokens[static_cast<std::size_t>(t)];
      if (id < 0 || id >= h_.vocab)
        throw std::out_of_range("token id " + std::to_string(id) + " at index " + std::to_string(t) +
                                " is outside the vocabulary [0, " + std::to_string(h_.vocab) + ")");
      embedding_.dequantize_row(id, x.data() + t * hidden);
    }
    for (const auto& l : dense_) l.forward(pool, x.data(), n, cache);
    for (const auto& l : moe_) l.forward(pool, x.data(), n, cache);
    cache.commit(n);

    const std::int64_t first = which == Logits::Last ? n - 1 : 0, rows = n - first;
    float* xs = x.data() + first * hidden;
    for (std::int64_t t = 0; t < rows; ++t)
      rms_norm(xs + t * hidden, output_norm_.data(), xs + t * hidden, hidden, h_.rms_eps);
    std::vector<float> logits(static_cast<std::size_t>(rows * h_.vocab));
    cpu::reference_matmul(pool, output_, xs, hidden, rows, logits.data(), h_.vocab);
    return logits;
  }

 private:
  CausalLM(gguf::File file, const ModelOverrides& overrides)
      : file_(std::move(file)), h_(read_hparams(file_, overrides)) {
    check_dims<D>(h_, file_.path().string());
    gguf::require_types(file_, quant::dequantizable_types());
    embedding_ = matrix(file_, "token_embd.weight", h_.vocab, h_.hidden);
    output_norm_ = vector_f32(file_, "output_norm.weight", h_.hidden);
    // Files with tied embeddings have no output.weight; the head is then the embedding (as llama.cpp does).
    output_ = file_.find_tensor("output.weight") ? matrix(file_, "output.weight", h_.vocab, h_.hidden) : embedding_;
    for (int l = 0; l < h_.layers; ++l) {
      if (l < h_.dense_layers) dense_.emplace_back(file_, h_, l);
      else moe_.emplace_back(file_, h_, l);
    }
  }

  gguf::File file_;
  DeepSeekHParams h_;
  WeightMatrix embedding_, output_;
  std::vector<float> output_norm_;
  std::vector<DenseBlock> dense_;
  std::vector<MoeBlock> moe_;
};

}  // namespace hmoe
