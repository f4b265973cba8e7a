#!/usr/bin/env python3
"""Summarises an hmoe trace (the Chrome-trace JSON that `--trace FILE` writes): busy time per track, how much of
the GPU's and the CPU experts' busy time overlaps, and the largest span kinds. Optionally draws the timeline of
a window as a PNG (needs matplotlib), which is what docs/ shows as the trace screenshot.

    python3 tools/trace_summary.py trace.json                     # markdown summary on stdout
    python3 tools/trace_summary.py trace.json --png out.png --from-ms 100 --to-ms 160
"""
import argparse
import json
import re
from collections import defaultdict

TRACKS = {1: "GPU stream", 2: "CPU routed experts", 3: "host (orchestrator)"}


def union(intervals):
    """Merged, sorted [begin, end) intervals."""
    out = []
    for b, e in sorted(intervals):
        if out and b <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([b, e])
    return out


def length(intervals):
    return sum(e - b for b, e in intervals)


def intersect(a, b):
    i = j = 0
    out = []
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append([lo, hi])
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def load(path):
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    return [e for e in events if e.get("ph") == "X"]


def summary(spans, lo=None, hi=None):
    if lo is not None:
        spans = [s for s in spans if s["ts"] >= lo and s["ts"] + s["dur"] <= hi]
    busy = {t: union([(s["ts"], s["ts"] + s["dur"]) for s in spans if s["tid"] == t]) for t in TRACKS}
    start = min(s["ts"] for s in spans)
    end = max(s["ts"] + s["dur"] for s in spans)
    wall = end - start
    both = length(intersect(busy[1], busy[2]))
    lines = [f"wall {wall / 1e3:.2f} ms over {len(spans)} spans",
             "",
             "| track | busy ms | % of wall |",
             "|---|---:|---:|"]
    for t, name in TRACKS.items():
        lines.append(f"| {name} | {length(busy[t]) / 1e3:.2f} | {100 * length(busy[t]) / wall:.1f} % |")
    lines.append(f"| GPU and CPU experts at once | {both / 1e3:.2f} | {100 * both / wall:.1f} % |")
    kinds = defaultdict(float)
    for s in spans:
        kinds[(s["tid"], re.sub(r" L\d+$", "", s["name"]))] += s["dur"]
    lines += ["", "| track | span kind | total ms |", "|---|---|---:|"]
    for (t, k), d in sorted(kinds.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| {TRACKS[t]} | {k} | {d / 1e3:.2f} |")
    return "\n".join(lines)


def draw(spans, path, lo, hi, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"attention": "#4c72b0", "router": "#55a868", "copy in": "#c44e52", "block": "#8172b2", "output head": "#937860",
              "routed experts on the GPU": "#da8bc3",
              "routed experts": "#dd8452", "wait for GPU": "#cccccc", "wait for turn": "#eeeeee"}
    fig, ax = plt.subplots(figsize=(14, 3.2))
    rows = {1: 2, 2: 1, 3: 0}
    for s in spans:
        b, e = s["ts"], s["ts"] + s["dur"]
        if e < lo or b > hi:
            continue
        kind = max((k for k in colors if s["name"].startswith(k)), key=len, default=None)
        mb = s.get("args", {}).get("micro_batch", 0)
        ax.broken_barh([((b - lo) / 1e3, max(s["dur"], 1) / 1e3)], (rows[s["tid"]] - 0.35, 0.7),
                       facecolors=colors.get(kind, "#999999"), edgecolor="black" if mb % 2 else "white",
                       linewidth=0.4)
    ax.set_yticks([0, 1, 2])
    ax.set_yticklabels([TRACKS[3], TRACKS[2], TRACKS[1]])
    ax.set_xlabel("ms")
    ax.set_title(title)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=c, label=k) for k, c in colors.items()], loc="upper center",
              bbox_to_anchor=(0.5, -0.25), ncol=len(colors), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--png", help="draw the window [--from-ms, --to-ms] (ms from the trace's start) to this file")
    ap.add_argument("--from-ms", type=float, default=0.0)
    ap.add_argument("--to-ms", type=float, default=None)
    ap.add_argument("--title", default="hmoe trace")
    a = ap.parse_args()
    spans = load(a.trace)
    if not spans:
        raise SystemExit(f"{a.trace}: no spans")
    t0 = min(s["ts"] for s in spans)
    lo = t0 + a.from_ms * 1e3
    hi = t0 + a.to_ms * 1e3 if a.to_ms is not None else max(s["ts"] + s["dur"] for s in spans)
    print(summary(spans, lo, hi))
    if a.png:
        draw(spans, a.png, lo, hi, a.title)


if __name__ == "__main__":
    main()
