#!/usr/bin/env python3
"""Turns the benchmark's JSON lines (README.md, "Output contract") into markdown tables.
Usage: report.py results.jsonl [...] [--out moe_cpu.md] [--title TEXT]"""
import argparse
import json
import sys

# Which measured limit bounds a prefill row: AMX implementations the AMX int8 unit (Q4_K /
# int4 / int8 kernels compute in int8), everything else the AVX-512 VNNI int8 unit. A CPU
# without them falls back to the next entry, so a local run still fills the column.
COMPUTE_LIMITS = {
    "amx": ["amx_int8_TOPS", "avx512_vnni_int8_TOPS", "avx2_fma_fp32_TFLOPS"],
    "other": ["avx512_vnni_int8_TOPS", "avx2_fma_fp32_TFLOPS"],
}
SHAPE_ORDER = {"V3": 0, "V2-Lite": 1}


def load(paths):
    rows, limits, bad = [], {}, 0
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    o = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1
                    continue
                if "limit" in o:
                    limits[(o["limit"], o.get("threads"))] = o
                elif "impl" in o:
                    rows.append(o)
    return rows, limits, bad


def limit_value(limits, name):
    """The all-threads value of a limit (the largest thread count measured)."""
    c = [(t or 0, o) for (n, t), o in limits.items() if n == name and o.get("value") is not None]
    return max(c, key=lambda x: x[0])[1]["value"] if c else None


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out")
    ap.add_argument("--title", default="MoE layer on the CPU: hmoe vs peers")
    a = ap.parse_args()
    rows, limits, bad = load(a.files)
    md = [f"## {a.title}", ""]

    # Limits first: what the rows are measured against.
    names = sorted({n for n, _ in limits})
    if names:
        md += ["| limit | 1 thread | all threads | note |", "|---|---:|---:|---|"]
        for n in names:
            one = limits.get((n, 1), {})
            allt = [o for (m, t), o in limits.items() if m == n and t != 1]
            al = allt[0] if allt else {}
            note = one.get("note") or al.get("note") or ""
            thr = f" ({al.get('threads')})" if al else ""
            md.append(f"| {n} | {fmt(one.get('value'), '.4g') or 'n/a'} | "
                      f"{(fmt(al.get('value'), '.4g') or 'n/a') + thr} | {note} |")
        md.append("")

    bw = limit_value(limits, "read_bw_GBs")
    # Best hmoe time per case, for the speedup column.
    best_hmoe = {}
    for r in rows:
        if r["impl"].startswith("hmoe") and r.get("seconds"):
            k = (r["shape"], r["tokens"])
            best_hmoe[k] = min(best_hmoe.get(k, 1e30), r["seconds"])

    md += ["| shape | tokens | impl | time ms | ± sd | reps | tok/s | weights GB | GB/s | TFLOP/s "
           "| % of limit | hmoe speedup |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows.sort(key=lambda r: (SHAPE_ORDER.get(r["shape"], 9), r["tokens"],
                             not r["impl"].startswith("hmoe"), r["impl"]))
    for r in rows:
        head = f"| {r['shape']} | {r['tokens']} | {r['impl']} |"
        if r.get("skipped") or not r.get("seconds"):
            md.append(f"{head} skipped: {r.get('skipped', 'no time')} | | | | | | | | |")
            continue
        t, T = r["seconds"], r["tokens"]
        gbs = r["bytes"] / t / 1e9 if r.get("bytes") else None
        tf = r["flops"] / t / 1e12 if r.get("flops") else None
        if T == 1:  # decode streams weights: memory bound
            pct = 100 * gbs / bw if gbs and bw else None
            lim = "read BW"
        else:       # prefill reuses each expert over many tokens: compute bound
            chain = COMPUTE_LIMITS["amx" if "amx" in r["impl"] else "other"]
            peak, lim = None, ""
            for n in chain:
                peak = limit_value(limits, n)
                if peak:
                    lim = n.split("_TOPS")[0].split("_TFLOPS")[0]
                    break
            pct = 100 * tf / peak if tf and peak else None
        hm = best_hmoe.get((r["shape"], T))
        speed = "" if r["impl"].startswith("hmoe") or not hm else f"{t / hm:.2f}x"
        md.append(f"{head} {t * 1e3:.3f} | {r.get('sd', 0) * 1e3:.3f} | {r.get('reps', '')} | "
                  f"{T / t:,.1f} | {fmt(r.get('bytes', 0) / 1e9, '.3f')} | {fmt(gbs, '.1f')} | "
                  f"{fmt(tf, '.3f')} | {fmt(pct, '.1f') + ('% ' + lim if pct is not None else '')} | "
                  f"{speed} |")
    md += ["", "time: mean of the timed repetitions (± sample sd); decode (1 token) rotates over "
           "layer copies and routings (README.md). weights GB: distinct routed experts' weight "
           "bytes in each implementation's own format. % of limit: decode GB/s against the "
           "all-thread read bandwidth, prefill TFLOP/s (2·tokens·top_k·3·hidden·ffn) against the "
           "named all-thread peak. hmoe speedup: this row's time / best hmoe time (>1: hmoe faster)."]
    if bad:
        md.append(f"\n({bad} malformed JSON line(s) ignored)")
    text = "\n".join(md) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
