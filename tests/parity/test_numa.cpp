// NUMA sharding of the routed experts (docs/numa.md): the topology reader, the pool over NUMA nodes, and the
// sharded fused experts against the unsharded ones.
//
// How NUMA is simulated: the machines this runs on (CI's, the development one) have one NUMA node.
// NumaTopology::simulated(N, cpus), which is what HMOE_NUMA_NODES=N gives, splits the allowed CPUs into N groups
// that everything downstream treats as nodes: the pool pins each node's workers to its group, and the experts
// are sharded, run and bound (packed or copied) per node exactly as on a multi-node machine. With 2 CPUs each
// simulated node is one CPU, run by 2 workers (a pool may oversubscribe). The sysfs reader gets a fake tree.
//
// What this proves: the topology is read and simulated as documented; workers run on their node's CPUs only, and
// run_per_node's tasks only on their node's workers; each routed expert ran on (and only on) its owner node's
// threads, and each expert was packed or copied by them; sharding changes no bit of the result. What it does not prove: that Linux put the pages in that node's memory
// (there is one real node; first touch is Linux's default policy, not checked with numa_maps), and anything about
// speed: remote-memory latency and bandwidth, and the balance between nodes when routing is skewed, need a real
// multi-node machine.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <hmoe/hmoe.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <set>

#include "../support/error_of.hpp"
#include "../support/isa_skip.hpp"
#include "../unit/model/logits_compare.hpp"

namespace fs = std::filesystem;
using namespace hmoe;

namespace {

using test::error_of;

/// A directory under the system's temp dir, removed with its contents at scope exit.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("hmoe-numa-" + std::to_string(std::random_device{}()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& file, const std::string& text) const {
    fs::create_directories((path / file).parent_path());
    std::ofstream(path / file) << text;
  }
};

/// Sets an environment variable for one scope, restoring what was there.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old) setenv(name.c_str(), old->c_str(), 1);
    else unsetenv(name.c_str());
  }
};

const fs::path repo_models = fs::path(HMOE_TEST_DATA) / "models";

/// Two simulated nodes need two CPUs.
bool skip_on_one_cpu() {
  if (cpu::allowed_cpus().size() >= 2) return false;
  MESSAGE("skipped: this process may run on one CPU only, and each simulated node needs one");
  return true;
}

}  // namespace

TEST_CASE("parse_cpulist reads Linux CPU lists and names the file of a malformed one") {
  CHECK(cpu::parse_cpulist("0-3,8-9,5\n", "f") == std::vector<int>{0, 1, 2, 3, 5, 8, 9});
  CHECK(cpu::parse_cpulist("7", "f") == std::vector<int>{7});
  CHECK(cpu::parse_cpulist("  \n", "f").empty());  // a memory-only node
  CHECK(cpu::parse_cpulist("2,1-2", "f") == std::vector<int>{1, 2});
  for (const char* bad : {"0-", "-3", "a", "1,,2", "3-1", "0-7:2", "1 2", "99999999"}) {
    const auto e = error_of([&] { cpu::parse_cpulist(bad, "/x/node1/cpulist"); });
    INFO("'" << bad << "': " << e);
    CHECK(e.find("/x/node1/cpulist: malformed CPU list") != std::string::npos);
  }
}

TEST_CASE("the topology is read from a sysfs tree and cut to the CPUs this process may use") {
  TempDir sys;
  sys.write("node0/cpulist", "0-3\n");
  sys.write("node1/cpulist", "4-7\n");
  sys.write("node2/cpulist", "\n");  // memory only (CXL, HBM): dropped
  sys.write("node10/cpulist", "8-9\n");
  sys.write("online", "0-2,10\n");  // files beside the node directories are not nodes
  sys.write("has_cpu", "0-1,10\n");

  const auto all = cpu::NumaTopology::from_sysfs(sys.path, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  REQUIRE(all.size() == 3);
  CHECK(!all.is_simulated());
  CHECK(all.nodes()[0].id == 0);
  CHECK(all.nodes()[1].id == 1);
  CHECK(all.nodes()[2].id == 10);  // numeric order, not "node10" < "node2"
  CHECK(all.nodes()[2].cpus == std::vector<int>{8, 9});
  CHECK(all.describe() == "3 NUMA nodes: node 0 CPUs 0-3, node 1 CPUs 4-7, node 10 CPUs 8-9");

  // taskset / cgroup: only the allowed CPUs count, and a node left without any is dropped.
  const auto some = cpu::NumaTopology::from_sysfs(sys.path, {6, 1, 2});
  REQUIRE(some.size() == 2);
  CHECK(some.nodes()[0].cpus == std::vector<int>{1, 2});
  CHECK(some.nodes()[1].id == 1);
  CHECK(some.nodes()[1].cpus == std::vector<int>{6});
  CHECK(some.cpu_count() == 3);

  // No node directory, or no such directory: one node of the allowed CPUs.
  TempDir empty;
  const auto one = cpu::NumaTopology::from_sysfs(empty.path, {3, 1});
  REQUIRE(one.size() == 1);
  CHECK(one.nodes()[0].cpus == std::vector<int>{1, 3});
  CHECK(cpu::NumaTopology::from_sysfs(empty.path / "absent", {0}).size() == 1);

  // Errors name the file.
  sys.write("node3/cpulist", "4-x\n");
  auto e = error_of([&] { cpu::NumaTopology::from_sysfs(sys.path, {0}); });
  CHECK(e.find((sys.path / "node3" / "cpulist").string() + ": malformed CPU list '4-x\n'") != std::string::npos);
  fs::remove(sys.path / "node3" / "cpulist");
  e = error_of([&] { cpu::NumaTopology::from_sysfs(sys.path, {0}); });
  CHECK(e == "hmoe: cannot read " + (sys.path / "node3" / "cpulist").string());

  // This machine's sysfs reads without error and covers only allowed CPUs.
  const auto here = cpu::NumaTopology::from_sysfs("/sys/devices/system/node", cpu::allowed_cpus());
  MESSAGE("this machine: " << here.describe());
  CHECK(here.size() >= 1);
  CHECK(here.cpu_count() <= cpu::allowed_cpus().size());
}

TEST_CASE("simulated topologies, HMOE_NUMA_NODES and their errors") {
  const auto t = cpu::NumaTopology::simulated(2, {5, 0, 1, 2, 3});
  CHECK(t.is_simulated());
  REQUIRE(t.size() == 2);
  CHECK(t.nodes()[0].cpus == std::vector<int>{0, 1});
  CHECK(t.nodes()[1].cpus == std::vector<int>{2, 3, 5});
  CHECK(t.describe() == "2 NUMA nodes (simulated): node 0 CPUs 0-1, node 1 CPUs 2-3,5");
  CHECK(cpu::NumaTopology::simulated(1, {4}).size() == 1);
  CHECK(error_of([] { cpu::NumaTopology::simulated(0, {0, 1}); }) ==
        "hmoe: a simulated NUMA topology needs at least 1 node, got 0");
  CHECK(error_of([] { cpu::NumaTopology::simulated(3, {0, 1}); }) ==
        "hmoe: cannot simulate 3 NUMA nodes on 2 CPUs (each node needs at least one)");

  const auto allowed = cpu::allowed_cpus();
  if (!skip_on_one_cpu()) {
    ScopedEnv env("HMOE_NUMA_NODES", "2");
    const auto sim = cpu::NumaTopology::detect("/nonexistent");
    CHECK(sim.is_simulated());
    CHECK(sim.size() == 2);
    CHECK(sim.cpu_count() == allowed.size());
  }
  {
    ScopedEnv env("HMOE_NUMA_NODES", "");  // empty: not set
    CHECK(!cpu::NumaTopology::detect().is_simulated());
  }
  for (const char* bad : {"two", "-1", "1.5", "123456"}) {
    ScopedEnv env("HMOE_NUMA_NODES", bad);
    const auto e = error_of([] { cpu::NumaTopology::detect(); });
    INFO(bad << ": " << e);
    CHECK(e == std::string("hmoe: HMOE_NUMA_NODES must be a whole number of simulated NUMA nodes, got '") + bad + "'");
  }
  {
    ScopedEnv env("HMOE_NUMA_NODES", "0");
    CHECK(error_of([] { cpu::NumaTopology::detect(); }) ==
          "HMOE_NUMA_NODES=0: hmoe: a simulated NUMA topology needs at least 1 node, got 0");
  }
  {
    ScopedEnv env("HMOE_NUMA_NODES", std::to_string(allowed.size() + 1));
    CHECK(error_of([] { cpu::NumaTopology::detect(); }).find("NUMA nodes on " + std::to_string(allowed.size()) + " CPUs") !=
          std::string::npos);
  }
}

TEST_CASE("a pool over NUMA nodes pins each node's workers there and gives each node only its own tasks") {
  if (skip_on_one_cpu()) return;
  const auto allowed = cpu::allowed_cpus();
  const auto topology = cpu::NumaTopology::simulated(2, allowed);
  cpu::ThreadPool pool(topology, 5);  // 4 workers, 2 per node: on a 2-CPU machine, 2 per CPU
  REQUIRE(pool.size() == 5);
  CHECK(pool.nodes() == 2);
  CHECK(pool.node_of(0) == -1);  // the caller belongs to no node
  CHECK(pool.node_of(1) == 0);
  CHECK(pool.node_of(2) == 0);
  CHECK(pool.node_of(3) == 1);
  CHECK(pool.node_of(4) == 1);

  // Each worker's affinity is its node's CPUs, and it runs on one of them.
  std::vector<std::vector<int>> affinity(pool.size());
  std::vector<int> running_on(pool.size(), -1);
  pool.parallel_for(pool.size(), [&](std::int64_t t, std::int64_t) {
    cpu_set_t set;
    CPU_ZERO(&set);
    pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) affinity[static_cast<std::size_t>(t)].push_back(c);
    running_on[static_cast<std::size_t>(t)] = sched_getcpu();
  });
  for (unsigned t = 1; t < pool.size(); ++t) {
    const auto& cpus = topology.nodes()[static_cast<std::size_t>(pool.node_of(t))].cpus;
    INFO("worker " << t << " on CPU " << running_on[t]);
    CHECK(affinity[t] == cpus);
    CHECK(std::find(cpus.begin(), cpus.end(), running_on[t]) != cpus.end());
  }

  // run_per_node: every task exactly once, on a thread of its node; repeated, so that timing varies.
  for (int round = 0; round < 50; ++round) {
    const std::vector<std::int64_t> tasks{37, round % 3 == 0 ? 0 : 11};  // a node with nothing to do, too
    std::vector<std::atomic<int>> ran_on_cpu_of(static_cast<std::size_t>(tasks[0] + tasks[1]));
    std::vector<std::atomic<int>> count(ran_on_cpu_of.size());
    pool.run_per_node(tasks, [&](int node, std::int64_t i) {
      const auto k = static_cast<std::size_t>(node == 0 ? i : tasks[0] + i);
      count[k].fetch_add(1);
      const auto& cpus = topology.nodes()[static_cast<std::size_t>(node)].cpus;
      const bool on_node = std::find(cpus.begin(), cpus.end(), sched_getcpu()) != cpus.end();
      ran_on_cpu_of[k].store(on_node ? 1 : -1);
    });
    for (std::size_t k = 0; k < count.size(); ++k) {
      INFO("round " << round << " task " << k);
      CHECK(count[k].load() == 1);
      CHECK(ran_on_cpu_of[k].load() == 1);
    }
  }

  // parallel_for is unchanged on it.
  std::vector<int> hit(1000, 0);
  pool.parallel_for(1000, [&](std::int64_t b, std::int64_t e) {
    for (auto i = b; i < e; ++i) ++hit[static_cast<std::size_t>(i)];
  });
  CHECK(std::count(hit.begin(), hit.end(), 1) == 1000);

  // A pool without a topology is one node, the caller included.
  cpu::ThreadPool flat(3);
  CHECK(flat.nodes() == 1);
  CHECK(flat.node_of(0) == 0);
  std::atomic<int> ran{0};
  flat.run_per_node(std::vector<std::int64_t>{20}, [&](int node, std::int64_t) { ran += node == 0; });
  CHECK(ran.load() == 20);

  // Errors.
  CHECK(error_of([&] { cpu::ThreadPool(topology, 2); }) ==
        "hmoe::cpu::ThreadPool: 2 threads for 2 NUMA nodes; each node needs a worker, and the calling thread counts "
        "as none (at least 3)");
  CHECK(error_of([&] { pool.run_per_node(std::vector<std::int64_t>{1}, [](int, std::int64_t) {}); }) ==
        "hmoe::cpu::ThreadPool::run_per_node: 1 task counts for 2 nodes");
  CHECK(error_of([&] {
          pool.run_per_node(std::vector<std::int64_t>{4, 4}, [](int node, std::int64_t) {
            if (node == 1) throw std::runtime_error("task failed");
          });
        }) == "task failed");
}

namespace {

using test::skip_without;

/// One layer's routed experts loaded twice, sharded over 2 simulated nodes (bound inside a PlaceExpertsOn scope,
/// as the examples load models) and unsharded, run on pools of the same size: equal bits, for decode (1 token)
/// and prefill (40 tokens), with and without pairs marked -1 (experts that run on the GPU); every routed expert
/// run on its owner node's threads only; every expert bound (packed or copied) by its owner node's threads.
template <class IsaTag, class Format>
void check_sharded(const fs::path& file, int layer) {
  if (skip_without<IsaTag>() || skip_on_one_cpu()) return;
  using Layer = Experts<dims::Dynamic, Isa<IsaTag>, Quant<Format>>;
  const auto f = gguf::File::open(file);
  const auto h = read_hparams(f);
  const auto name = file.parent_path().filename().string() + "/" + file.filename().string();
  INFO(name << " layer " << layer << " " << IsaTag::name << "/" << Format::name);

  cpu::ThreadPool numa(cpu::NumaTopology::simulated(2, cpu::allowed_cpus()), 5);
  cpu::ThreadPool flat(5);
  std::optional<Layer> sharded;
  {
    cpu::PlaceExpertsOn placing(numa);
    sharded.emplace(f, h, layer);
  }
  CHECK(cpu::PlaceExpertsOn::pool() == nullptr);
  const Layer unsharded(f, h, layer);
  MESSAGE(IsaTag::name << "/" << Format::name << " " << name << " layer " << layer << ": " << sharded->kernels());

  // Placement: each expert bound by its owner node; no sharded matrix reads the file's mapping.
  const auto& sf = sharded->fused();
  const auto& uf = unsharded.fused();
  int in_mapping = 0;
  for (std::int64_t e = 0; e < h.experts; ++e) {
    INFO("expert " << e);
    CHECK(sf.placed_on(e) == cpu::expert_node(e, h.experts, 2));
    CHECK(uf.placed_on(e) == -1);
    const auto u = static_cast<std::size_t>(e);
    for (const auto* m : {&sf.matrices().gate[u], &sf.matrices().up[u], &sf.matrices().down[u]}) CHECK(!m->reads_mapping());
    // Unplaced, rows that run as stored ("AVX512 Q6_K", not "AVX512 packed ..." or "AMX ...") read the mapping.
    for (const auto* m : {&uf.matrices().gate[u], &uf.matrices().up[u], &uf.matrices().down[u]}) {
      const auto k = m->kernel_name();
      CHECK(m->reads_mapping() == (k.rfind("AVX512 ", 0) == 0 && k.rfind("AVX512 packed", 0) != 0));
      in_mapping += m->reads_mapping();
    }
  }
  if (std::is_same_v<IsaTag, AVX512>) CHECK(in_mapping == 3 * h.experts);  // so the sharded copy moved them all

  std::random_device rd;
  const auto seed = rd();
  MESSAGE("seed " << seed);
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const std::int64_t tokens : {1, 40}) {
    for (const bool skip_some : {false, true}) {
      INFO("tokens " << tokens << (skip_some ? ", some pairs -1" : ""));
      std::vector<float> x(static_cast<std::size_t>(tokens * h.hidden));
      for (auto& v : x) v = normal(rng);
      Routing r{tokens, h.experts_used, {}, {}};
      std::uniform_real_distribution<float> weight(0.1f, 1.0f);
      std::bernoulli_distribution elsewhere(0.3);
      for (std::int64_t t = 0; t < tokens; ++t) {
        std::vector<std::int32_t> ids(static_cast<std::size_t>(h.experts));
        std::iota(ids.begin(), ids.end(), 0);
        std::shuffle(ids.begin(), ids.end(), rng);
        for (std::int64_t j = 0; j < h.experts_used; ++j) {
          r.expert.push_back(skip_some && j > 0 && elsewhere(rng) ? -1 : ids[static_cast<std::size_t>(j)]);
          r.weight.push_back(weight(rng));
        }
      }
      // Outputs start from the same random values (the layer adds to them; never zeros, so a missing add shows).
      std::vector<float> base(x.size());
      for (auto& v : base) v = normal(rng);
      auto want = base, got = base, got_flat = base;
      // The layer's scratch outlives a call: a decoy call on other inputs first, so that a task the sharded
      // call skipped leaves the decoy's values, not this input's.
      std::vector<float> decoy_x(x.size()), decoy_out(x.size());
      for (auto& v : decoy_x) v = normal(rng);
      sharded->forward(numa, decoy_x.data(), r, decoy_out.data());
      sf.reset_expert_runs();
      sharded->forward(numa, x.data(), r, got.data());
      unsharded.forward(flat, x.data(), r, want.data());

      std::size_t differ = 0, first = 0;
      for (std::size_t i = got.size(); i-- > 0;)
        if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) ++differ, first = i;
      INFO(differ << " values differ, first at " << first << ": " << got[first] << " vs " << want[first]);
      CHECK(differ == 0);
      CHECK(want != base);

      // Each routed expert ran on its owner node's threads, once in gate/up and once in down; never elsewhere.
      std::set<std::int32_t> routed(r.expert.begin(), r.expert.end());
      for (std::int64_t e = 0; e < h.experts; ++e) {
        const int owner = cpu::expert_node(e, h.experts, 2);
        INFO("expert " << e << " owned by node " << owner << ": runs on node 0 " << sf.expert_runs(0, e)
                       << ", node 1 " << sf.expert_runs(1, e));
        CHECK(sf.expert_runs(1 - owner, e) == 0);
        CHECK(sf.expert_runs(owner, e) == (routed.count(static_cast<std::int32_t>(e)) ? 2 : 0));
      }

      // The sharded layer on a pool without nodes (placement kept, any thread takes any expert): also equal.
      sharded->forward(numa, decoy_x.data(), r, decoy_out.data());
      sharded->forward(flat, x.data(), r, got_flat.data());
      CHECK(std::memcmp(got_flat.data(), want.data(), want.size() * sizeof(float)) == 0);
    }
  }
}

}  // namespace

TEST_CASE("experts sharded over 2 simulated NUMA nodes equal the unsharded ones bit for bit") {
  const auto files = test::model_files(repo_models);
  REQUIRE(files.size() >= 6);
  for (const auto& file : files) {
    check_sharded<AVX512, Stored>(file, 1);  // rows as stored: copied per node
    check_sharded<AMX, Stored>(file, 1);     // packed per node (Q6_K rows copied)
  }
}
