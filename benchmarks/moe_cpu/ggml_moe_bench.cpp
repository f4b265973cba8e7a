// ggml peer: one DeepSeek MoE layer's routed experts, computed by ggml's CPU backend with
// the graph llama.cpp builds for a MoE FFN (llm_graph_context::build_moe_ffn): mul_mat_id
// for up and gate, fused SwiGLU, mul_mat_id for down, times the router weights, then the
// k expert outputs summed by a chain of adds. Router logits/top-k are inputs here (the
// same random routing every implementation gets), so only the expert work is timed.
// Weights go where llama.cpp's loader puts them: the first of the CPU device's "extra"
// buffer types (the repack one, when built with it) that supports the op, else plain CPU.
//
// Usage: ggml_moe_bench [--shape V2-Lite,V3|all] [--tokens 1,128,512,2048] [--threads N] [--quick]
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <algorithm>
#include <memory>
#include <sstream>

#include "moe_common.hpp"

using namespace moe_bench;

namespace {

ggml_type to_ggml(QType t) { return t == QType::Q4_K ? GGML_TYPE_Q4_K : GGML_TYPE_Q5_0; }

// One expert stack [cols, rows, experts] in its own context and buffer, so each can land
// in a different buffer type (V2-Lite's Q5_0 down has no repacked layout).
struct Weight {
  ggml_context* ctx = nullptr;
  ggml_backend_buffer_t buf = nullptr;
  ggml_tensor* t = nullptr;
  std::string buft_name;
  ~Weight() {
    if (buf) ggml_backend_buffer_free(buf);
    if (ctx) ggml_free(ctx);
  }
};

// Mirrors llama.cpp's weight placement: try each extra buffer type with a dummy
// mul_mat_id on this weight and keep the first the CPU device says it supports.
ggml_backend_buffer_type_t pick_buft(ggml_backend_dev_t dev, ggml_tensor* w, int hidden_in) {
  auto reg = ggml_backend_dev_backend_reg(dev);
  auto get_extra = (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
      reg, "ggml_backend_dev_get_extra_bufts");
  std::vector<ggml_backend_buffer_type_t> cands;
  if (get_extra && !std::getenv("MOE_NO_REPACK"))
    for (auto* p = get_extra(dev); p && *p; ++p) cands.push_back(*p);
  for (auto buft : cands) {
    ggml_init_params ip{16 * ggml_tensor_overhead(), nullptr, true};
    ggml_context* ctx = ggml_init(ip);
    ggml_tensor* b = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, hidden_in, 1, 1);
    ggml_tensor* ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, 1, 1);
    ggml_tensor* op = ggml_mul_mat_id(ctx, w, b, ids);
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
    w->buffer = dummy;
    bool ok = ggml_backend_dev_supports_op(dev, op);
    w->buffer = nullptr;
    ggml_backend_buffer_free(dummy);
    ggml_free(ctx);
    if (ok) return buft;
  }
  return ggml_backend_dev_buffer_type(dev);
}

std::unique_ptr<Weight> make_weight(ggml_backend_dev_t dev, const char* name, QType qt, int cols,
                                    int rows, int experts) {
  auto w = std::make_unique<Weight>();
  ggml_init_params ip{ggml_tensor_overhead() * 2, nullptr, true};
  w->ctx = ggml_init(ip);
  w->t = ggml_new_tensor_3d(w->ctx, to_ggml(qt), cols, rows, experts);
  ggml_set_name(w->t, name);
  auto buft = pick_buft(dev, w->t, cols);
  w->buft_name = ggml_backend_buft_name(buft);
  w->buf = ggml_backend_alloc_ctx_tensors_from_buft(w->ctx, buft);
  if (!w->buf) {
    std::fprintf(stderr, "ggml: cannot allocate %s\n", name);
    std::exit(1);
  }
  ggml_backend_buffer_set_usage(w->buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
  return w;
}

struct Layer {
  std::unique_ptr<Weight> gate, up, down;
};

Layer load_layer(ggml_backend_dev_t dev, const Shape& s, int threads, int layer) {
  Layer L;
  L.gate = make_weight(dev, "ffn_gate_exps", s.gate_up_type(), s.hidden, s.ffn, s.experts);
  L.up = make_weight(dev, "ffn_up_exps", s.gate_up_type(), s.hidden, s.ffn, s.experts);
  L.down = make_weight(dev, "ffn_down_exps", s.down_type(), s.ffn, s.hidden, s.experts);
  // Random blocks in host memory, then tensor_set (which repacks for CPU_REPACK). The
  // repack is single-threaded per tensor, so the three tensors go in parallel.
  Weight* ws[3] = {L.gate.get(), L.up.get(), L.down.get()};
  QType qs[3] = {s.gate_up_type(), s.gate_up_type(), s.down_type()};
  std::vector<std::thread> th;
  for (int i = 0; i < 3; ++i)
    th.emplace_back([&, i] {
      size_t nb = ggml_nbytes(ws[i]->t);
      std::vector<uint8_t> host(nb);
      fill_quant(host.data(), nb / block_bytes(qs[i]), qs[i], 1000 + 3 * layer + i,
                 std::max(1, threads / 3));
      ggml_backend_tensor_set(ws[i]->t, host.data(), 0, nb);
    });
  for (auto& t : th) t.join();
  return L;
}

// The per-token-count graph: inputs, compute graph and its allocation.
struct Pass {
  ggml_context* ctx = nullptr;
  ggml_cgraph* gf = nullptr;
  ggml_gallocr_t galloc = nullptr;
  ggml_tensor *x = nullptr, *ids = nullptr, *w = nullptr, *out = nullptr;
  ~Pass() {
    if (galloc) ggml_gallocr_free(galloc);
    if (ctx) ggml_free(ctx);
  }
};

std::unique_ptr<Pass> build_pass(const Layer& L, const Shape& s, int T) {
  auto p = std::make_unique<Pass>();
  const int k = s.top_k;
  ggml_init_params ip{ggml_tensor_overhead() * (64 + 2 * k) + ggml_graph_overhead(), nullptr, true};
  p->ctx = ggml_init(ip);
  auto ctx = p->ctx;
  p->x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, s.hidden, T);
  p->ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, k, T);  // [n_expert_used, n_tokens]
  p->w = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 1, k, T);   // [1, n_expert_used, n_tokens]
  // Inputs are set once and reused by every timed repetition, so they are also marked as
  // outputs: otherwise the allocator recycles their memory for intermediates.
  for (auto* t : {p->x, p->ids, p->w}) ggml_set_input(t), ggml_set_output(t);

  ggml_tensor* cur = ggml_reshape_3d(ctx, p->x, s.hidden, 1, T);
  ggml_tensor* up = ggml_mul_mat_id(ctx, L.up->t, cur, p->ids);      // [ffn, k, T]
  ggml_tensor* gate = ggml_mul_mat_id(ctx, L.gate->t, cur, p->ids);  // [ffn, k, T]
  ggml_tensor* act = ggml_swiglu_split(ctx, gate, up);               // silu(gate) * up
  ggml_tensor* experts = ggml_mul_mat_id(ctx, L.down->t, act, p->ids);  // [hidden, k, T]
  experts = ggml_mul(ctx, experts, p->w);

  p->gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(p->gf, experts);
  std::vector<ggml_tensor*> views(k);
  for (int i = 0; i < k; ++i) {  // order the views before the adds, as llama.cpp does
    views[i] = ggml_view_2d(ctx, experts, s.hidden, T, experts->nb[2], i * experts->nb[1]);
    ggml_build_forward_expand(p->gf, views[i]);
  }
  ggml_tensor* out = views[0];
  for (int i = 1; i < k; ++i) {
    out = ggml_add(ctx, out, views[i]);
    ggml_build_forward_expand(p->gf, out);
  }
  ggml_set_output(out);
  p->out = out;

  p->galloc = ggml_gallocr_new(ggml_backend_cpu_buffer_type());
  if (!ggml_gallocr_alloc_graph(p->galloc, p->gf)) {
    std::fprintf(stderr, "ggml: graph allocation failed\n");
    std::exit(1);
  }
  std::vector<float> x(size_t(s.hidden) * T);
  fill_activations(x.data(), x.size(), 7);
  ggml_backend_tensor_set(p->x, x.data(), 0, ggml_nbytes(p->x));
  return p;
}

// Routes the pass like tokens [t0, t0 + T) of r.
void set_routing(Pass& p, const Routing& r, int t0) {
  ggml_backend_tensor_set(p.ids, &r.ids[size_t(t0) * r.k], 0, ggml_nbytes(p.ids));
  ggml_backend_tensor_set(p.w, &r.weights[size_t(t0) * r.k], 0, ggml_nbytes(p.w));
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string tok; std::getline(ss, tok, ',');) v.push_back(std::atoi(tok.c_str()));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape_arg = "all";
  std::vector<int> tokens = {1, 128, 512, 2048};
  bool quick = false;
  int threads = hw_threads();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--shape") shape_arg = val();
    else if (a == "--tokens") tokens = parse_list(val());
    else if (a == "--threads") threads = std::atoi(val().c_str());
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--shape V2-Lite,V3] [--tokens 1,128] [--threads N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  setenv("MOE_THREADS", std::to_string(threads).c_str(), 1);  // so print_result reports it

  ggml_backend_t backend = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(backend, threads);
  ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  std::fprintf(stderr, "ggml: %s, threads %d, avx512 %d, avx512_vnni %d, avx512_bf16 %d, amx_int8 %d\n",
               ggml_backend_dev_description(dev), threads, ggml_cpu_has_avx512(),
               ggml_cpu_has_avx512_vnni(), ggml_cpu_has_avx512_bf16(), ggml_cpu_has_amx_int8());

  std::vector<const Shape*> shapes;
  std::stringstream ss(shape_arg == "all" ? "V2-Lite,V3" : shape_arg);
  for (std::string name; std::getline(ss, name, ',');) {
    if (auto* s = shape_by_name(name)) shapes.push_back(s);
    else {
      std::fprintf(stderr, "unknown shape %s\n", name.c_str());
      return 2;
    }
  }

  for (const Shape* s : shapes) {
    double t0 = now_s();
    const bool decode = std::find(tokens.begin(), tokens.end(), 1) != tokens.end();
    const int n_layers = decode ? decode_layers(*s) : 1;
    std::vector<Layer> layers;
    for (int l = 0; l < n_layers; ++l) layers.push_back(load_layer(dev, *s, threads, l));
    std::fprintf(stderr, "ggml: %s: %d layer(s) ready in %.1f s (gate/up %s in %s, down %s in %s)\n",
                 s->name, n_layers, now_s() - t0, qname(s->gate_up_type()),
                 layers[0].gate->buft_name.c_str(), qname(s->down_type()),
                 layers[0].down->buft_name.c_str());
    for (int T : tokens) {
      // Decode rotates over layer copies and routing tokens (see decode_layers); prefill
      // runs tokens [0, T) through layer 0.
      const int n_pass = T == 1 ? n_layers : 1;
      std::vector<std::unique_ptr<Pass>> passes;
      for (int l = 0; l < n_pass; ++l) passes.push_back(build_pass(layers[l], *s, T));
      Routing r = route(*s, T == 1 ? kDecodeStream : T);
      for (auto& p : passes) set_routing(*p, r, 0);
      size_t i = 0;
      auto run = [&] {
        Pass& p = *passes[i % n_pass];
        if (T == 1) set_routing(p, r, int(i % kDecodeStream));
        ggml_backend_graph_compute(backend, p.gf);
        ++i;
      };
      RepPolicy rp = rep_policy(T, quick);
      // Warm-up touches every layer copy once, so first-touch page faults are not timed.
      Stats st = time_it(run, rp.budget_s, rp.min_reps, rp.max_reps, std::max(rp.warmup, n_pass + 1));
      // Sanity: token 0 through layer 0 must give finite output (random weights can't
      // excuse NaNs); its mean |out| is reported so runs can be compared.
      Pass& p0 = *passes[0];
      set_routing(p0, r, 0);
      ggml_backend_graph_compute(backend, p0.gf);
      std::vector<float> out(ggml_nelements(p0.out));
      ggml_backend_tensor_get(p0.out, out.data(), 0, out.size() * sizeof(float));
      size_t bad = 0;
      double sum = 0;
      for (float v : out) std::isfinite(v) ? (void)(sum += std::fabs(v)) : (void)++bad;
      if (bad) std::fprintf(stderr, "ggml: WARNING %zu non-finite outputs\n", bad);
      if (std::getenv("MOE_DEBUG"))
        std::fprintf(stderr, "ggml: T=%d out[0..3] = %g %g %g %g\n", T, out[0], out[1], out[2], out[3]);
      const double bytes = T == 1 ? decode_bytes(*s) : weight_bytes(*s, r);
      std::string extra = "\"buft\": \"" + layers[0].gate->buft_name + "\", \"amx\": " +
                          std::to_string(ggml_cpu_has_amx_int8()) + ", \"layers\": " +
                          std::to_string(n_pass) + ", \"mean_abs_out\": " +
                          std::to_string(sum / std::max<size_t>(out.size(), 1));
      print_result("ggml", *s, T, st, bytes, extra);
    }
  }
  ggml_backend_free(backend);
  return 0;
}
