#!/usr/bin/env python3
"""Result files of benchmarks/e2e/run.sh: rows from llama-bench / hmoe-bench output, and the comparison table.

  make_table.py llama-rows --layout L [--variant V] [--measure FILE] [--args TEXT] < llama-bench -o jsonl
  make_table.py hmoe-rows  --layout L [--variant V] [--measure FILE] [--args TEXT] < hmoe-bench stdout
      print TSV rows (no header) for one benchmark run; FILE is what measure.py wrote for that run
      (exit status, peak host RSS, peak GPU memory). llama-bench rows run with -nopo 1 get the variant "nopo".
  make_table.py table [--out FILE] RESULTS.tsv...
      merges the stages' TSVs (llama.tsv, hmoe.tsv) into one markdown table with hmoe / llama.cpp ratios,
      decode speed as a share of the routed-expert decode floor, GPU memory and host RSS.

TSV columns: impl layout variant test tps sd reps gpu_peak_gib host_rss_gib rc args. Lines "#key=value" carry
what the table's header needs (bw_GBs, routed_bytes_per_token, commits, machine). Python standard library only.
"""
import argparse
import json
import re
import sys

COLUMNS = ["impl", "layout", "variant", "test", "tps", "sd", "reps", "gpu_peak_gib", "host_rss_gib", "rc", "args"]
LAYOUTS = {  # name in the table, legend
    "hybrid": ("hybrid", "routed experts on the CPU, everything else on the GPU (llama.cpp `-ngl 99 -ot exps=CPU`, "
                         "hmoe `--layout hybrid`)"),
    "cpu": ("CPU only", "everything on the CPU (llama.cpp `-ngl 0 -dev none`, hmoe `--layout cpu`)"),
    "gpu": ("all-GPU", "everything on the GPU (llama.cpp `-ngl 99`, hmoe `--layout gpu`)"),
}
VARIANTS = {
    ("llama", "nopo"): ("llama.cpp -nopo 1", "llama.cpp with `-nopo 1`: no op offload, so prompt batches do not copy "
                                             "the CPU-resident experts to the GPU; against hmoe's plain row"),
    ("hmoe", "cuda-graph"): ("hmoe --cuda-graph", "hmoe decoding through a CUDA graph; against llama.cpp's plain row"),
}


def read_measure(path):
    m = {}
    if path:
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.strip().partition("=")
                    if k:
                        m[k] = v
        except OSError:
            pass
    gpu = f"{int(m['gpu_peak_mib']) / 1024:.2f}" if "gpu_peak_mib" in m else ""
    rss = f"{int(m['peak_rss_kib']) / 1048576:.2f}" if "peak_rss_kib" in m else ""
    return m.get("rc", ""), gpu, rss


def emit(rows):
    for r in rows:
        print("\t".join(str(r.get(c, "")).replace("\t", " ") for c in COLUMNS))


def llama_rows(a):
    rc, gpu, rss = read_measure(a.measure)
    rows = []
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            t = json.loads(line)
        except json.JSONDecodeError:
            continue
        p, g, d = int(t.get("n_prompt", 0)), int(t.get("n_gen", 0)), int(t.get("n_depth", 0))
        test = f"pp{p}" if g == 0 else f"tg{g}" if p == 0 else f"pp{p}+tg{g}"
        if d:
            test += f" @ d{d}"  # llama-bench's -d, named as hmoe-bench names it
        variant = a.variant
        if int(t.get("no_op_offload", 0)) == 1 and "nopo" not in variant:
            variant = "nopo" if not variant else variant + "+nopo"
        rows.append(dict(impl="llama", layout=a.layout, variant=variant, test=test, tps=f"{t['avg_ts']:.2f}",
                         sd=f"{t.get('stddev_ts', 0):.2f}", reps=len(t.get("samples_ts", [])), gpu_peak_gib=gpu,
                         host_rss_gib=rss, rc=rc, args=a.args))
    if not rows:
        rows.append(dict(impl="llama", layout=a.layout, variant=a.variant, test="*", rc=rc or "?", args=a.args))
    emit(rows)


def hmoe_rows(a):
    rc, gpu, rss = read_measure(a.measure)
    rows = []
    for line in sys.stdin:
        # | model | layout | threads | test | 700.00 ± 75.13 |
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"(pp|tg)\d+( @ d\d+)?", cells[3]):
            continue
        m = re.fullmatch(r"([0-9.]+)\s*±\s*([0-9.]+)", cells[4])
        if not m:
            continue
        rows.append(dict(impl="hmoe", layout=a.layout, variant=a.variant, test=cells[3], tps=m.group(1),
                         sd=m.group(2), reps=a.reps, gpu_peak_gib=gpu, host_rss_gib=rss, rc=rc, args=a.args))
    if not rows:
        rows.append(dict(impl="hmoe", layout=a.layout, variant=a.variant, test="*", rc=rc or "?", args=a.args))
    emit(rows)


def load(paths):
    rows, meta = [], {}
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                if line.startswith("#"):
                    k, _, v = line[1:].partition("=")
                    meta.setdefault(k.strip(), []).append(v.strip())
                    continue
                cells = line.split("\t")
                if cells[0] == "impl":
                    continue
                rows.append(dict(zip(COLUMNS, cells + [""] * (len(COLUMNS) - len(cells)))))
    return rows, meta


def test_key(t):
    m = re.fullmatch(r"(pp|tg)(\d+)(?: @ d(\d+))?", t)
    if not m:
        return (2, 0, 0, t)
    return (0 if m.group(1) == "pp" else 1, int(m.group(3) or 0), int(m.group(2)), t)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def rate(r):
    if not r or num(r.get("tps")) is None:
        return "–"
    reps = int(r["reps"]) if (r.get("reps") or "").isdigit() else 0
    sd = f" ± {float(r['sd']):.1f}" if reps > 1 and num(r.get("sd")) is not None else ""
    one = " (1 run)" if reps == 1 else ""
    return f"{float(r['tps']):.1f}{sd}{one}"


def pair(a, b):
    return f"{a or '–'} / {b or '–'}"


def table(a):
    rows, meta = load(a.files)
    by = {}
    failed = []
    for r in rows:
        if r["test"] == "*" or num(r.get("tps")) is None:
            failed.append(r)
            continue
        by[(r["impl"], r["layout"], r["variant"], r["test"])] = r

    bws = [float(v) for v in meta.get("bw_GBs", []) if num(v) is not None]
    bw = max(bws) if bws else None  # the best the host showed: the floor must not be beatable
    routed = next((float(v) for v in meta.get("routed_bytes_per_token", []) if num(v)), None)
    floor = bw * 1e9 / routed if bw and routed else None

    def first(key):
        return meta.get(key, ["?"])[0]

    out = []
    out.append(f"# End to end: hmoe vs llama.cpp on {first('model')}")
    out.append("")
    out.append(f"Machine: {first('gpu')} + {first('cpu')}, {first('threads')} threads. "
               f"llama.cpp {first('llama_commit')} ({first('llama_source')}; {first('llama_build')}). "
               f"hmoe {first('hmoe_commit')}.")
    if bw and routed:
        out.append(f"Decode floor: the routed experts one token reads ({routed / 1e9:.3f} GB: experts used × one "
                   f"expert's gate + up + down, over the MoE layers) at the host's measured read bandwidth "
                   f"({bw:.1f} GB/s, {first('bw_how')}; the best of {', '.join(f'{b:.1f}' for b in bws)} measured by the "
                   f"stages) = **{floor:.1f} tok/s**; "
                   f"'% of floor' is decode tok/s over that (layouts whose routed experts run on the CPU).")
    out.append("tok/s are mean ± sd over the runs (llama-bench `-r`, hmoe-bench `-r`; each after one warm-up); "
               "GPU memory is the peak of nvidia-smi's memory.used during the run minus before it; host RSS is the "
               "process's peak resident set (wait4). Both are per program run, which covers all tests of its row "
               "group.")
    out.append("")
    out.append("| layout | test | llama.cpp tok/s | hmoe tok/s | hmoe / llama.cpp | % of decode floor (llama.cpp / hmoe) "
               "| GPU memory GiB (llama.cpp / hmoe) | host RSS GiB (llama.cpp / hmoe) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")

    layouts = [l for l in LAYOUTS if any(k[1] == l for k in by)] + sorted({k[1] for k in by} - set(LAYOUTS))
    legend = {}
    for layout in layouts:
        variants = sorted({(k[0], k[2]) for k in by if k[1] == layout and k[2]})
        groups = [("", "")] + [(v, "") if impl == "llama" else ("", v) for impl, v in variants]
        for lv, hv in groups:
            tests = sorted({k[3] for k in by if k[1] == layout and ((k[0] == "llama" and k[2] == lv) or
                                                                    (k[0] == "hmoe" and k[2] == hv))}, key=test_key)
            for test in tests:
                l = by.get(("llama", layout, lv, test))
                h = by.get(("hmoe", layout, hv, test))
                if lv and not l or hv and not h:
                    continue
                name, what = LAYOUTS.get(layout, (layout, ""))
                legend[name] = what
                for impl, v in (("llama", lv), ("hmoe", hv)):
                    if v:
                        vname, vwhat = VARIANTS.get((impl, v), (f"{impl} {v}", ""))
                        name += f", {vname}"
                        legend[vname] = vwhat
                lt, ht = (num(l["tps"]) if l else None), (num(h["tps"]) if h else None)
                ratio = f"{ht / lt:.2f}×" if lt and ht else "–"
                pct = "–"
                if floor and test.startswith("tg") and layout in ("hybrid", "cpu"):
                    pct = pair(f"{100 * lt / floor:.0f} %" if lt else None, f"{100 * ht / floor:.0f} %" if ht else None)
                gpu = pair(l and l["gpu_peak_gib"], h and h["gpu_peak_gib"]) if layout != "cpu" else "–"
                rss = pair(l and l["host_rss_gib"], h and h["host_rss_gib"])
                out.append(f"| {name} | {test} | {rate(l)} | {rate(h)} | {ratio} | {pct} | {gpu} | {rss} |")

    out.append("")
    for name, what in legend.items():
        if what:
            out.append(f"- *{name}*: {what}")
    if failed:
        out.append("")
        out.append("Runs that gave no rows (exit status 124: the time limit; skipped: the stage's time budget):")
        for r in failed:
            what = " ".join(x for x in (r["impl"], r["layout"], r["variant"]) if x)
            out.append(f"- {what}: exit {r['rc'] or '?'} — `{r['args']}`")
    out.append("")
    out.append("Commands (MODEL = the random-weight file):")
    seen = set()
    for r in rows:
        key = (r["impl"], r["args"])
        if r["args"] and key not in seen:
            seen.add(key)
            out.append(f"- {'llama-bench' if r['impl'] == 'llama' else 'hmoe-bench'} `{r['args']}`")
    for k in ("notes",):
        for v in meta.get(k, []):
            out.append(f"- {v}")
    text = "\n".join(out) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    sys.stdout.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("llama-rows", "hmoe-rows"):
        p = sub.add_parser(name)
        p.add_argument("--layout", required=True)
        p.add_argument("--variant", default="")
        p.add_argument("--measure")
        p.add_argument("--args", default="")
        p.add_argument("--reps", default="")
    p = sub.add_parser("table")
    p.add_argument("--out")
    p.add_argument("files", nargs="+")
    a = ap.parse_args()
    {"llama-rows": llama_rows, "hmoe-rows": hmoe_rows, "table": table}[a.cmd](a)


if __name__ == "__main__":
    main()
