/// \file
/// \brief The GPU layouts: everything of hmoe.hpp plus the `Placement<GPU>` layers (they run on the separately
/// compiled CUDA unit: link `hmoe::cuda`), and the ready-made hybrid and all-GPU model types.
#pragma once

#include "hmoe/gpu/kv_cache.hpp"
#include "hmoe/gpu/runtime.hpp"
#include "hmoe/hmoe.hpp"
#include "hmoe/layer/gpu/experts.hpp"
#include "hmoe/layer/gpu/mla.hpp"
#include "hmoe/layer/gpu/mlp.hpp"
#include "hmoe/layer/gpu/moe.hpp"
#include "hmoe/layer/gpu/router.hpp"
#include "hmoe/model/gpu_causal_lm.hpp"
#include "hmoe/model/gpu_decoder_layer.hpp"

namespace hmoe {

namespace detail {
/// Attention, dense layers, routers and shared experts on the GPU (weights as `GpuFormat` says), the routed
/// experts as `RoutedExperts` says.
template <model_dims D, class GpuFormat, class RoutedExperts, class PipelineP>
using GpuResidentModel =
    CausalLM<D,
             DecoderLayer<MlaAttention<D, Placement<GPU>, Quant<GpuFormat>>, Mlp<D, Placement<GPU>, Quant<GpuFormat>>>,
             DecoderLayer<MlaAttention<D, Placement<GPU>, Quant<GpuFormat>>,
                          MoeLayer<TopKRouter<D, Placement<GPU>>, RoutedExperts, Mlp<D, Placement<GPU>, Quant<GpuFormat>>>>,
             PipelineP>;
}  // namespace detail

/// The hybrid layout (KTransformers' split): routed experts in host RAM on the CPU kernels of `IsaTag` (AMX,
/// AVX512, or Generic for the f32 reference) with weights as `ExpertFormat` says; everything else on the GPU.
/// By default the shared experts run while the CPU runs the routed ones, and a prompt runs as one micro-batch:
/// more (CpuGpuOverlap<N>, or GpuOptions::micro_batches) measured slower on the H100 machine, where the CPU
/// experts take ~94 % of a prefill and each micro-batch streams their weights again (docs/pipeline.md).
template <class IsaTag, class ExpertFormat = Stored, class GpuFormat = Stored, model_dims D = dims::Dynamic,
          class PipelineP = Pipeline<CpuGpuOverlap<1>>>
using HybridModel =
    detail::GpuResidentModel<D, GpuFormat, Experts<D, Placement<CPU>, Quant<ExpertFormat>, Isa<IsaTag>>, PipelineP>;

/// Everything on the GPU, for models that fit in its memory.
template <class GpuFormat = Stored, model_dims D = dims::Dynamic>
using GpuModel =
    detail::GpuResidentModel<D, GpuFormat, Experts<D, Placement<GPU>, Quant<GpuFormat>>, Pipeline<Sequential>>;

}  // namespace hmoe
