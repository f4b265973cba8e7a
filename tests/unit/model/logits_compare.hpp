/// \file
/// \brief Helpers for comparing logits with a reference: per-position relative L2 and argmax.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace hmoe::test {

inline std::vector<float> read_f32(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + p.string());
  in.seekg(0, std::ios::end);
  const auto bytes = static_cast<std::size_t>(in.tellg());
  std::vector<float> v(bytes / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(bytes));
  return v;
}

/// Token ids of a fixture's meta.json ("tokens": [ ... ]), read without a JSON library.
inline std::vector<std::int32_t> read_meta_tokens(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto k = s.find("\"tokens\"");
  if (k == std::string::npos) throw std::runtime_error(p.string() + ": no \"tokens\"");
  auto b = s.find('[', k), e = s.find(']', b);
  std::vector<std::int32_t> out;
  std::size_t i = b + 1;
  while (i < e) {
    while (i < e && (s[i] < '0' || s[i] > '9')) ++i;
    if (i >= e) break;
    std::size_t used = 0;
    out.push_back(std::stoi(s.substr(i), &used));
    i += used;
  }
  return out;
}

/// Every .gguf one level below dir (dir/<model>/<file>.gguf), sorted; empty when dir does not exist.
inline std::vector<std::filesystem::path> model_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& m : std::filesystem::directory_iterator(dir))
    if (m.is_directory())
      for (const auto& f : std::filesystem::directory_iterator(m.path()))
        if (f.path().extension() == ".gguf") out.push_back(f.path());
  std::sort(out.begin(), out.end());
  return out;
}

struct Agreement {
  double worst_rel_l2 = 0, mean_rel_l2 = 0;
  std::int64_t worst_position = -1, argmax_mismatches = 0;
};

inline Agreement compare_logits(const std::vector<float>& got, const std::vector<float>& want, std::int64_t vocab) {
  Agreement a;
  const auto rows = static_cast<std::int64_t>(want.size()) / vocab;
  for (std::int64_t t = 0; t < rows; ++t) {
    double num = 0, den = 0;
    std::int64_t ag = 0, aw = 0;
    for (std::int64_t v = 0; v < vocab; ++v) {
      const double g = got[static_cast<std::size_t>(t * vocab + v)], w = want[static_cast<std::size_t>(t * vocab + v)];
      num += (g - w) * (g - w);
      den += w * w;
      if (g > got[static_cast<std::size_t>(t * vocab + ag)]) ag = v;
      if (w > want[static_cast<std::size_t>(t * vocab + aw)]) aw = v;
    }
    const double rel = std::sqrt(num / den);
    if (!(rel <= a.worst_rel_l2)) a.worst_rel_l2 = rel, a.worst_position = t;  // NaN counts as worst
    a.mean_rel_l2 += rel / static_cast<double>(rows);
    a.argmax_mismatches += ag != aw;
  }
  return a;
}

}  // namespace hmoe::test
