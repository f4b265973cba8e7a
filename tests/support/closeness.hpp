/// \file
/// \brief How close a model's logits are to a reference (mean KL, top-1 agreement), and llama.cpp's figures for
/// the same file, so a test can demand "at least as close as llama.cpp".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <hmoe/tokenizer/json.hpp>

#include "../unit/model/logits_compare.hpp"

namespace hmoe::test {

struct Closeness {
  double kl = 0, top1 = 0;
};

inline Closeness closeness(const std::vector<float>& got, const std::vector<float>& want, std::int64_t vocab) {
  Closeness c;
  const auto rows = static_cast<std::int64_t>(want.size()) / vocab;
  for (std::int64_t t = 0; t < rows; ++t) {
    const float* p = want.data() + t * vocab;
    const float* q = got.data() + t * vocab;
    const double mp = *std::max_element(p, p + vocab), mq = *std::max_element(q, q + vocab);
    double zp = 0, zq = 0;
    for (std::int64_t v = 0; v < vocab; ++v) zp += std::exp(p[v] - mp), zq += std::exp(q[v] - mq);
    double kl = 0;
    for (std::int64_t v = 0; v < vocab; ++v) {
      const double lp = p[v] - mp - std::log(zp), lq = q[v] - mq - std::log(zq);
      kl += std::exp(lp) * (lp - lq);
    }
    c.kl += kl / static_cast<double>(rows);
    c.top1 += (std::max_element(p, p + vocab) == p + (std::max_element(q, q + vocab) - q)) / static_cast<double>(rows);
  }
  return c;
}

/// llama.cpp's closeness for a file: from the fixture's llamacpp-*.f32, or the repo meta.json's llama_cpp_check.
inline std::optional<Closeness> llama_cpp_closeness(const std::filesystem::path& file, const std::vector<float>& want, std::int64_t vocab) {
  const auto stem = file.stem().string();
  const auto logits = file.parent_path() / ("llamacpp-" + stem + ".f32");
  if (std::filesystem::exists(logits)) return closeness(test::read_f32(logits), want, vocab);
  std::ifstream in(file.parent_path() / "meta.json");
  std::stringstream text;
  text << in.rdbuf();
  const auto meta = hmoe::tokenizer::json::parse(text.str());
  const auto* check = meta.find("llama_cpp_check");
  const auto* entry = check ? check->find(file.filename().string()) : nullptr;
  if (!entry || !entry->find("kl_mean") || !entry->find("top1_agreement")) return std::nullopt;
  return Closeness{entry->find("kl_mean")->as_double(), entry->find("top1_agreement")->as_double()};
}

}  // namespace hmoe::test
