#!/usr/bin/env python3
"""kt-kernel peer: one DeepSeek MoE layer's routed experts through KTransformers' CPU MoE
kernels (PyPI kt-kernel 0.6.1), timed like the C++ programs (moe_common.hpp): same shapes,
same routing (splitmix64 stream, ported below bit for bit), same decode protocol (rotate
over layer copies and routing tokens), one JSON line per measurement on stdout.

Backends (kt_kernel_ext.moe classes, the ones KTMoEWrapper builds):
  kt-amxint4  AMXInt4_MOE   bf16 weights quantized online to kt's AMX int4 layout
  kt-amxint8  AMXInt8_MOE   same, int8
  kt-llamafile MOE          llamafile sgemm over GGUF-layout blocks: the same Q4_K (and
                            Q5_0 for V2-Lite's down) random blocks ggml and hmoe read
API, as kt's own benchmarks use it: CPUInfer(WorkerPoolConfig); MOEConfig(E, k, H, I,
gpu_mask_ptr) with weight pointers; submit(moe.load_weights_task(map_ptr)); then per pass
submit(moe.forward_task(bsz_ptr, k, ids_ptr(int64), weights_ptr(f32), in_ptr(bf16),
out_ptr(bf16), False)); sync().

Each (backend, shape) runs in a child process: a missing wheel, a CPU without AMX or a
sandbox that refuses tile state (SIGILL) costs that row only, printed as "skipped: why".
Usage: kt_moe_bench.py [--quick] [--shapes V2-Lite,V3] [--tokens 1,128,512,2048]
                       [--backends amxint4,amxint8,llamafile] [--threads N] [--budget S]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

SHAPES = {  # name: (hidden, ffn, experts, top_k), as in moe_common.hpp
    "V3": (7168, 2048, 256, 8),
    "V2-Lite": (2048, 1408, 64, 6),
}
BACKENDS = ("amxint4", "amxint8", "llamafile")
ROUTE_SEED = 20240501
DECODE_STREAM = 1024
M64 = (1 << 64) - 1


# ---- shared protocol (mirrors moe_common.hpp) ------------------------------------------
class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53


def route(experts, k, tokens):
    """Uniform random top-k per token; weights 0.5+U[0,1) normalized to sum 1."""
    g = SplitMix64(ROUTE_SEED)
    ids, ws = [], []
    for _ in range(tokens):
        row = []
        while len(row) < k:
            e = g.next() % experts
            if e not in row:
                row.append(e)
        raw = [0.5 + g.uniform() for _ in range(k)]
        s = sum(raw)
        ids.append(row)
        ws.append([r / s for r in raw])
    return ids, ws


def rep_policy(tokens, quick):
    """(budget_s, min_reps, max_reps, warmup), as rep_policy() in moe_common.hpp."""
    if quick:
        return 0.05, 1, 3, 1
    if tokens == 1:
        return 1.0, 20, 400, 10
    return 1.5, 3, 50, 1


def expert_bytes(backend, hidden, ffn):
    """Bytes of one expert's three matrices in the backend's own format."""
    n = hidden * ffn
    if backend == "amxint8":  # int8 weights + one f32 scale per output row
        return 3 * n + 4 * (2 * ffn + hidden)
    if backend == "amxint4":  # packed nibbles + one f32 scale per output row
        return 3 * n // 2 + 4 * (2 * ffn + hidden)
    q4k = n // 256 * 144
    down = q4k if ffn % 256 == 0 else n // 32 * 22  # Q5_0 fallback, as llama.cpp
    return 2 * q4k + down


def emit(obj):
    print(json.dumps(obj), flush=True)


# ---- child: one backend, one shape ----------------------------------------------------
def random_bf16(torch, shape, pool=4):
    """[E, rows, cols] bf16 ~ N(0, 0.02): `pool` random experts tiled over E. Values don't
    change the timing; tiling keeps V3's 22 GB of bf16 source cheap to make."""
    e = shape[0]
    src = (torch.randn((min(pool, e),) + tuple(shape[1:]), dtype=torch.float32) * 0.02).to(torch.bfloat16)
    out = torch.empty(shape, dtype=torch.bfloat16)
    for i in range(0, e, src.shape[0]):
        n = min(src.shape[0], e - i)
        out[i:i + n].copy_(src[:n])
    return out


def random_blocks(torch, experts, rows, cols, qtype, pool=4):
    """[E, rows, cols/blk*bytes] uint8 of valid GGUF blocks: random bytes with the leading
    f16 scales forced into 0x1000..0x1BFF, as fill_quant() in moe_common.hpp."""
    blk, nbytes, nf16 = {"Q4_K": (256, 144, 2), "Q5_0": (32, 22, 1)}[qtype]
    p = min(pool, experts)
    src = torch.randint(0, 256, (p, rows, cols // blk, nbytes), dtype=torch.uint8)
    for f in range(nf16):
        h = torch.randint(0x1000, 0x1C00, (p, rows, cols // blk), dtype=torch.int32)
        src[..., 2 * f] = (h & 0xFF).to(torch.uint8)
        src[..., 2 * f + 1] = (h >> 8).to(torch.uint8)
    src = src.reshape(p, rows, -1)
    out = torch.empty((experts, rows, src.shape[-1]), dtype=torch.uint8)
    for i in range(0, experts, p):
        n = min(p, experts - i)
        out[i:i + n].copy_(src[:n])
    return out


def load_ext():
    """kt_kernel_ext, loaded straight from the wheel's .so the way kt_kernel/_cpu_detect.py
    does: `import kt_kernel` itself needs the gguf package (its GGUF loader), which the
    device image lacks and these kernels don't use. Returns (module, .so name)."""
    import glob
    import importlib.util

    spec = importlib.util.find_spec("kt_kernel")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("kt_kernel not installed (PYTHONPATH?)")
    pkg = list(spec.submodule_search_locations)[0]
    sos = sorted(glob.glob(os.path.join(pkg, "_kt_kernel_ext_amx.*.so"))) or \
        sorted(glob.glob(os.path.join(pkg, "kt_kernel_ext.*.so")))
    if not sos:
        raise SystemExit(f"no kt_kernel_ext .so in {pkg}")
    so_spec = importlib.util.spec_from_file_location("kt_kernel_ext", sos[0])
    ext = importlib.util.module_from_spec(so_spec)
    sys.modules["kt_kernel_ext"] = ext
    so_spec.loader.exec_module(ext)  # SIGILL here: the .so needs AVX-512
    return ext, os.path.basename(sos[0])


def child(backend, shape_name, tokens_list, threads, quick):
    import torch  # noqa: E402 (kept out of the parent: it only spawns)

    ext, variant = load_ext()
    hidden, ffn, experts, k = SHAPES[shape_name]
    max_t = max(tokens_list)
    torch.set_num_threads(threads)

    cls_name = {"amxint4": "AMXInt4_MOE", "amxint8": "AMXInt8_MOE", "llamafile": "MOE"}[backend]
    cls = getattr(ext.moe, cls_name, None)
    if cls is None:
        raise SystemExit(f"kt_kernel_ext.moe.{cls_name} not in {variant}")

    wp = ext.WorkerPoolConfig()
    wp.subpool_count = 1
    wp.subpool_numa_map = [0]
    wp.subpool_thread_count = [threads]
    cpu_infer = ext.CPUInfer(wp)

    t0 = time.perf_counter()
    mask = torch.zeros(experts, dtype=torch.bool)  # no expert on the GPU
    if backend == "llamafile":
        gt = ext.kvcache.ggml_type
        down_q = "Q4_K" if ffn % 256 == 0 else "Q5_0"
        gate = random_blocks(torch, experts, ffn, hidden, "Q4_K")
        up = random_blocks(torch, experts, ffn, hidden, "Q4_K")
        down = random_blocks(torch, experts, hidden, ffn, down_q)
        pmap = torch.arange(experts, dtype=torch.int64)
    else:
        gate = random_bf16(torch, (experts, ffn, hidden))
        up = random_bf16(torch, (experts, ffn, hidden))
        down = random_bf16(torch, (experts, hidden, ffn))
        pmap = torch.arange(experts, dtype=torch.int64)

    layer_bytes = experts * expert_bytes(backend, hidden, ffn)
    n_layers = max(1, math.ceil(2e9 / layer_bytes)) if 1 in tokens_list else 1

    def make_moe():
        cfg = ext.moe.MOEConfig(experts, k, hidden, ffn, mask.data_ptr())
        cfg.layer_idx = 0
        cfg.pool = cpu_infer.backend_
        cfg.max_len = max_t
        cfg.gate_proj, cfg.up_proj, cfg.down_proj = gate.data_ptr(), up.data_ptr(), down.data_ptr()
        if backend == "llamafile":  # as kt's LlamafileMoEWrapper sets them
            cfg.m_block = 32
            cfg.group_min_len = 10
            cfg.group_max_len = max(1, max_t)
            cfg.gate_type, cfg.up_type = gt.Q4_K, gt.Q4_K
            cfg.down_type = getattr(gt, down_q)
            cfg.hidden_type = gt.BF16
        moe = cls(cfg)
        cpu_infer.submit(moe.load_weights_task(pmap.data_ptr()))
        cpu_infer.sync()
        return moe

    moes = [make_moe() for _ in range(n_layers)]
    print(f"kt {backend} {shape_name}: {variant}, {n_layers} layer(s) ready in "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    for T in tokens_list:
        n_rot = n_layers if T == 1 else 1
        ids_l, ws_l = route(experts, k, DECODE_STREAM if T == 1 else T)
        ids = torch.tensor(ids_l, dtype=torch.int64).contiguous()
        ws = torch.tensor(ws_l, dtype=torch.float32).contiguous()
        x = (torch.rand((T, hidden), dtype=torch.float32) * 2 - 1).to(torch.bfloat16).contiguous()
        out = torch.zeros((T, hidden), dtype=torch.bfloat16)
        bsz = torch.tensor([T], dtype=torch.int32)
        state = {"i": 0}

        def run():
            i = state["i"]
            tok = i % DECODE_STREAM if T == 1 else 0
            moe = moes[i % n_rot]
            cpu_infer.submit(moe.forward_task(bsz.data_ptr(), k, ids.data_ptr() + tok * k * 8,
                                              ws.data_ptr() + tok * k * 4, x.data_ptr(),
                                              out.data_ptr(), False))
            cpu_infer.sync()
            state["i"] = i + 1

        budget, min_reps, max_reps, warmup = rep_policy(T, quick)
        t_est = 1e9
        for _ in range(max(warmup, n_rot + 1)):
            a = time.perf_counter()
            run()
            t_est = min(t_est, time.perf_counter() - a)
        reps = int(min(max(budget / max(t_est, 1e-7), min_reps), max_reps))
        ts = []
        for _ in range(reps):
            a = time.perf_counter()
            run()
            ts.append(time.perf_counter() - a)
        mean = sum(ts) / reps
        sd = math.sqrt(sum((t - mean) ** 2 for t in ts) / max(reps - 1, 1))
        if T == 1:
            nbytes = k * expert_bytes(backend, hidden, ffn)
        else:
            nbytes = len({e for row in ids_l for e in row}) * expert_bytes(backend, hidden, ffn)
        o = out.float()
        emit({"impl": f"kt-{backend}", "shape": shape_name, "tokens": T, "seconds": mean, "sd": sd,
              "min": min(ts), "reps": reps, "bytes": float(nbytes),
              "flops": 2.0 * T * k * 3 * hidden * ffn, "threads": threads, "so": variant,
              "layers": n_rot, "finite": bool(torch.isfinite(o).all()),
              "mean_abs_out": float(o.abs().mean())})


# ---- parent ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shapes", default="V2-Lite,V3")
    ap.add_argument("--tokens", default="1,128,512,2048")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("MOE_THREADS", os.cpu_count())))
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for all children together")
    ap.add_argument("--child", nargs=2, metavar=("BACKEND", "SHAPE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    tokens = [int(t) for t in a.tokens.split(",")]

    if a.child:
        child(a.child[0], a.child[1], tokens, a.threads, a.quick)
        return

    deadline = time.monotonic() + a.budget
    for shape in a.shapes.split(","):
        for backend in a.backends.split(","):
            def skip(reason, done=()):
                for t in tokens:
                    if t not in done:
                        emit({"impl": f"kt-{backend}", "shape": shape, "tokens": t, "skipped": reason})

            left = deadline - time.monotonic()
            if left < 20:
                skip("out of time budget")
                continue
            cmd = [sys.executable, os.path.abspath(__file__), "--child", backend, shape,
                   "--tokens", a.tokens, "--threads", str(a.threads)] + (["--quick"] if a.quick else [])
            done, reason = set(), None
            try:
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=left)
                out, err, rc = p.stdout, p.stderr, p.returncode
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
                rc, reason = None, f"timed out after {left:.0f} s"
            for line in out.splitlines():
                if line.startswith("{"):
                    print(line, flush=True)
                    done.add(json.loads(line).get("tokens"))
            sys.stderr.write(err)
            if rc is not None and rc < 0:
                reason = f"killed by signal {-rc}" + (" (SIGILL: AMX/ISA refused?)" if rc == -4 else "")
            elif rc:
                last = [l for l in err.strip().splitlines() if l.strip()]
                reason = last[-1][:160] if last else f"exit code {rc}"
            if reason:
                skip(reason, done)


if __name__ == "__main__":
    main()
