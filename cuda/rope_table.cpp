/// \file
/// \brief RopeTable: YaRN's per-pair frequencies from layer/rope.hpp's YarnRotary (the CPU reference), copied
/// to the device; tests/gpu/test_rope.cpp checks the two rotations agree.
#include "hmoe/cuda/rope.hpp"
#include "hmoe/layer/rope.hpp"

namespace hmoe::cuda {

RopeTable::RopeTable(const YarnRope& r)
    : pairs_(r.dims / 2), host_(YarnRotary(r).inv_freq()), inv_freq_(Buffer::from(host_.data(), host_.size())) {}

}  // namespace hmoe::cuda
