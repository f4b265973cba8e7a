/// \file
/// \brief Everything a user composing a DeepSeek model type needs, and the ready-made reference layout.
#pragma once

#include "hmoe/cpu/thread_pool.hpp"
#include "hmoe/io/gguf.hpp"
#include "hmoe/layer/experts.hpp"
#include "hmoe/layer/mla.hpp"
#include "hmoe/layer/mlp.hpp"
#include "hmoe/layer/moe.hpp"
#include "hmoe/layer/router.hpp"
#include "hmoe/model/causal_lm.hpp"
#include "hmoe/model/decoder_layer.hpp"
#include "hmoe/model/dims.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/policy/isa.hpp"
#include "hmoe/policy/placement.hpp"
#include "hmoe/policy/quant.hpp"
#include "hmoe/policy/select.hpp"

namespace hmoe {

namespace detail {
/// Everything on the CPU: attention, dense layers, router and shared experts on the f32 reference path, the
/// routed experts as `RoutedExperts` says.
template <model_dims D, class RoutedExperts>
using AllCpuModel =
    CausalLM<D,
             DecoderLayer<MlaAttention<D, Placement<CPU>>, Mlp<D, Placement<CPU>>>,
             DecoderLayer<MlaAttention<D, Placement<CPU>>,
                          MoeLayer<TopKRouter<D, Placement<CPU>>, RoutedExperts, Mlp<D, Placement<CPU>>>>>;
}  // namespace detail

/// The all-CPU f32 reference layout: every weight read in its stored format and dequantized on access,
/// activations in f32. Exact for any file up to f32 rounding; what the fast layouts are tested against.
template <model_dims D = dims::Dynamic>
using ReferenceModel = detail::AllCpuModel<D, Experts<D, Placement<CPU>, Quant<Stored>, Isa<Generic>>>;

/// All on the CPU, with the routed experts on the fused AVX-512 or AMX kernels (`IsaTag` = AVX512 or AMX) and
/// their weights as `Format` says (Stored: as the file has them; Int8 / BF16: converted at load). Attention,
/// the dense layers and the shared experts stay on the f32 reference path.
template <class IsaTag, class Format = Stored, model_dims D = dims::Dynamic>
using CpuModel = detail::AllCpuModel<D, Experts<D, Placement<CPU>, Quant<Format>, Isa<IsaTag>>>;

}  // namespace hmoe
