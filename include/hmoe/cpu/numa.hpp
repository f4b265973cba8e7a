/// \file
/// \brief `NumaTopology`: the NUMA nodes this process may run on, each a list of CPU ids.
///
/// Read from Linux sysfs (`/sys/devices/system/node/node<N>/cpulist`) and intersected with the CPUs the calling
/// thread may run on; nodes left without CPUs (memory-only nodes, CPUs outside a cgroup or `taskset`) are
/// dropped. A machine without those files (not Linux, a container that hides them) is one node.
///
/// `HMOE_NUMA_NODES=N` replaces what sysfs says by a simulated split of the allowed CPUs into N contiguous groups:
/// the code paths of a multi-node machine (per-node threads, expert sharding, placement at load) then run on any
/// machine. Memory stays where the one real node puts it, so a simulation proves what runs where, not speed.
/// docs/numa.md says how hmoe uses the topology.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace hmoe::cpu {

/// The linux "cpulist" format: comma-separated CPU ids and inclusive ranges ("0-7,16-23"), surrounding
/// whitespace ignored, empty for no CPUs. Returns the ids sorted, without duplicates. `origin` (a file name)
/// starts the error message of malformed text.
inline std::vector<int> parse_cpulist(std::string_view text, const std::string& origin) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("hmoe: " + origin + ": malformed CPU list '" + std::string(text) + "': " + why);
  };
  const auto first = text.find_first_not_of(" \t\r\n"), last = text.find_last_not_of(" \t\r\n");
  std::vector<int> cpus;
  if (first == std::string_view::npos) return cpus;
  const auto body = text.substr(first, last - first + 1);
  // One id: digits only, below a bound that keeps the ranges' sizes sane (Linux's CPU_SETSIZE is 1024; sysfs
  // lists up to NR_CPUS, 8192 on the largest configurations).
  auto number = [&](std::string_view s) {
    if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      fail("'" + std::string(s) + "' is not a CPU id");
    const int v = std::stoi(std::string(s));
    if (v >= 65536) fail("CPU id " + std::string(s) + " is too large");
    return v;
  };
  for (std::size_t pos = 0; pos <= body.size();) {
    const auto end = std::min(body.find(',', pos), body.size());
    const auto item = body.substr(pos, end - pos);
    const auto dash = item.find('-');
    const int lo = number(item.substr(0, dash));
    const int hi = dash == std::string_view::npos ? lo : number(item.substr(dash + 1));
    if (hi < lo) fail("range " + std::string(item) + " ends before it starts");
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
    pos = end + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

/// The CPUs the calling thread may run on (its affinity mask); on other systems 0 .. hardware_concurrency - 1.
inline std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
#endif
  if (cpus.empty())
    for (unsigned c = 0; c < std::max(1u, std::thread::hardware_concurrency()); ++c) cpus.push_back(static_cast<int>(c));
  return cpus;
}

struct NumaNode {
  int id = 0;             ///< the system's node number (sysfs node<id>); the index for a simulated node
  std::vector<int> cpus;  ///< sorted, never empty
};

class NumaTopology {
 public:
  /// One node holding `cpus` (what a machine without NUMA information is).
  static NumaTopology single(std::vector<int> cpus) {
    if (cpus.empty()) throw std::invalid_argument("hmoe::cpu::NumaTopology: no CPUs");
    std::sort(cpus.begin(), cpus.end());
    return NumaTopology({NumaNode{0, std::move(cpus)}}, false);
  }

  /// `cpus` split into `nodes` contiguous groups of near-equal size (the first ones get one fewer when they
  /// do not divide evenly): a stand-in for a multi-node machine.
  static NumaTopology simulated(int nodes, std::vector<int> cpus) {
    if (nodes < 1) throw std::invalid_argument("hmoe: a simulated NUMA topology needs at least 1 node, got " + std::to_string(nodes));
    if (static_cast<std::size_t>(nodes) > cpus.size())
      throw std::invalid_argument("hmoe: cannot simulate " + std::to_string(nodes) + " NUMA nodes on " +
                                  std::to_string(cpus.size()) + " CPUs (each node needs at least one)");
    std::sort(cpus.begin(), cpus.end());
    std::vector<NumaNode> out;
    const auto n = static_cast<std::ptrdiff_t>(nodes), c = static_cast<std::ptrdiff_t>(cpus.size());
    for (std::ptrdiff_t i = 0; i < n; ++i)
      out.push_back(NumaNode{static_cast<int>(i), std::vector<int>(cpus.begin() + i * c / n, cpus.begin() + (i + 1) * c / n)});
    return NumaTopology(std::move(out), true);
  }

  /// The nodes under `sysfs` (a directory of node<N>/cpulist files) restricted to `allowed`, in node order;
  /// one node of `allowed` when the directory has no node with an allowed CPU.
  static NumaTopology from_sysfs(const std::filesystem::path& sysfs, std::vector<int> allowed) {
    std::sort(allowed.begin(), allowed.end());
    std::vector<NumaNode> nodes;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(sysfs, ec)) {
      const auto name = entry.path().filename().string();
      if (name.size() <= 4 || name.size() > 9 || name.compare(0, 4, "node") != 0 ||
          !std::all_of(name.begin() + 4, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
        continue;  // "online", "possible", "has_cpu", ...
      const auto file = entry.path() / "cpulist";
      std::ifstream in(file);
      if (!in) throw std::runtime_error("hmoe: cannot read " + file.string());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      NumaNode node{std::stoi(name.substr(4)), {}};
      for (int c : parse_cpulist(text, file.string()))
        if (std::binary_search(allowed.begin(), allowed.end(), c)) node.cpus.push_back(c);
      if (!node.cpus.empty()) nodes.push_back(std::move(node));
    }
    if (nodes.empty()) return single(std::move(allowed));
    std::sort(nodes.begin(), nodes.end(), [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
    return NumaTopology(std::move(nodes), false);
  }

  /// This machine's topology as the calling thread sees it: `HMOE_NUMA_NODES=N`'s simulation when the variable
  /// is set (and not empty), else sysfs (`sysfs` is a parameter for tests).
  static NumaTopology detect(const std::filesystem::path& sysfs = "/sys/devices/system/node") {
    auto allowed = allowed_cpus();
    const char* env = std::getenv("HMOE_NUMA_NODES");
    if (env == nullptr || *env == '\0') return from_sysfs(sysfs, allowed);
    const std::string v = env;
    if (v.size() > 4 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw std::invalid_argument("hmoe: HMOE_NUMA_NODES must be a whole number of simulated NUMA nodes, got '" + v + "'");
    try {
      return simulated(std::stoi(v), std::move(allowed));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("HMOE_NUMA_NODES=" + v + ": " + e.what());
    }
  }

  const std::vector<NumaNode>& nodes() const { return nodes_; }
  int size() const { return static_cast<int>(nodes_.size()); }
  bool is_simulated() const { return simulated_; }

  std::size_t cpu_count() const {
    std::size_t n = 0;
    for (const auto& node : nodes_) n += node.cpus.size();
    return n;
  }

  /// "2 NUMA nodes (simulated): node 0 CPUs 0-3, node 1 CPUs 4-7".
  std::string describe() const {
    std::ostringstream s;
    s << size() << (size() == 1 ? " NUMA node" : " NUMA nodes") << (simulated_ ? " (simulated)" : "") << ":";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      s << (i ? ", node " : " node ") << nodes_[i].id << " CPUs ";
      const auto& c = nodes_[i].cpus;
      for (std::size_t a = 0; a < c.size();) {  // back to ranges
        std::size_t b = a;
        while (b + 1 < c.size() && c[b + 1] == c[b] + 1) ++b;
        s << (a ? "," : "") << c[a];
        if (b > a) s << "-" << c[b];
        a = b + 1;
      }
    }
    return s.str();
  }

 private:
  NumaTopology(std::vector<NumaNode> nodes, bool simulated) : nodes_(std::move(nodes)), simulated_(simulated) {}

  std::vector<NumaNode> nodes_;
  bool simulated_ = false;
};

}  // namespace hmoe::cpu
