#!/usr/bin/env python3
"""Encoding speed of HF `tokenizers` on the same text as bench_tokenizer, and the ratio to hmoe.

The corpus (one JSON string per line) is repeated until it holds --mb megabytes (10^6 bytes of UTF-8), exactly as
bench_tokenizer does, then timed with
  loop:   Tokenizer.encode(s, add_special_tokens=False) for each string in turn (one thread)
  batch:  Tokenizer.encode_batch(strings, add_special_tokens=False) (HF's Rust thread pool, all cores unless
          RAYON_NUM_THREADS says otherwise)
  batch1: encode_batch with TOKENIZERS_PARALLELISM=false: one thread, without Python's cost per call
Best of --repeat runs each; the first loop pass is shown too. With --hmoe BIN it runs
`BIN --tokenizer TOKENIZER --corpus CORPUS --mb MB --repeat N` (benchmarks/tokenizer/bench_tokenizer) and prints
both sets of numbers and the ratios.

  python benchmarks/tokenizer/bench_hf.py --tokenizer ../shared/data/deepseek-v3-tokenizer/tokenizer.json \\
      --corpus tests/data/tokenizer/corpus.jsonl --hmoe build/benchmarks/tokenizer/bench_tokenizer
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import tokenizers
from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--mb", type=float, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hmoe", help="path of bench_tokenizer, to run it too and print ratios")
    ap.add_argument("--batch-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    corpus = [json.loads(line) for line in open(args.corpus, encoding="utf-8")]
    texts, size = [], 0
    while size < args.mb * 1e6:
        for s in corpus:
            texts.append(s)
            size += len(s.encode("utf-8"))
    tok = Tokenizer.from_file(args.tokenizer)
    if args.batch_only:
        best = 1e30
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            n = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
            best = min(best, time.perf_counter() - t0)
        print(f"RESULT {size / 1e6 / best:.3f} {n}")
        return
    print(f"HF tokenizers {tokenizers.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', '(unset)')}")
    print(f"text: {len(texts)} strings, {size / 1e6:.2f} MB ({len(corpus)} corpus lines repeated)")

    hf = {}

    def report(name, seconds, tokens):
        hf[name] = size / 1e6 / seconds
        print(f"{name:<8} {hf[name]:8.2f} MB/s  {seconds:7.3f} s  {tokens} tokens")

    best, tokens = 1e30, 0
    for r in range(args.repeat):
        t0 = time.perf_counter()
        n = sum(len(tok.encode(s, add_special_tokens=False).ids) for s in texts)
        dt = time.perf_counter() - t0
        if r == 0:
            report("first", dt, n)
        best, tokens = min(best, dt), n
    report("loop", best, tokens)
    best = 1e30
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        n = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
        best = min(best, time.perf_counter() - t0)
        assert n == tokens
    report("batch", best, tokens)
    # encode_batch on one thread (TOKENIZERS_PARALLELISM=false): HF's Rust encoder without Python's per-call cost.
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    out = subprocess.run([sys.executable, __file__, "--batch-only", "--tokenizer", args.tokenizer, "--corpus",
                          args.corpus, "--mb", str(args.mb), "--repeat", str(args.repeat)],
                         env=env, check=True, capture_output=True, text=True).stdout.split()
    assert int(out[2]) == tokens
    hf["batch1"] = float(out[1])
    print(f"{'batch1':<8} {hf['batch1']:8.2f} MB/s  (encode_batch with TOKENIZERS_PARALLELISM=false)")

    if args.hmoe:
        cmd = [args.hmoe, "--tokenizer", args.tokenizer, "--corpus", args.corpus, "--mb", str(args.mb),
               "--repeat", str(args.repeat)]
        print("\n$ " + " ".join(cmd))
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        print(out, end="")
        hmoe = {}
        for line in out.splitlines():
            if line.startswith("RESULT "):
                _, name, mbs, n = line.split()
                hmoe[name] = float(mbs)
                if int(n) != tokens:
                    raise SystemExit(f"token counts differ: hmoe {n}, HF {tokens}")
        threads = next(k for k in hmoe if k.startswith("threads"))
        print("\nratios (hmoe / HF):")
        print(f"  single thread, encode loop:       {hmoe['loop']:8.2f} / {hf['loop']:7.2f} MB/s = {hmoe['loop'] / hf['loop']:6.1f}x")
        print(f"  first pass (cold caches):         {hmoe['first']:8.2f} / {hf['first']:7.2f} MB/s = {hmoe['first'] / hf['first']:6.1f}x")
        print(f"  hmoe without its cache vs HF loop:{hmoe['nocache']:8.2f} / {hf['loop']:7.2f} MB/s = {hmoe['nocache'] / hf['loop']:6.1f}x")
        print(f"  single thread vs HF encode_batch on one thread:"
              f" {hmoe['loop']:8.2f} / {hf['batch1']:7.2f} MB/s = {hmoe['loop'] / hf['batch1']:6.1f}x")
        print(f"  all cores ({threads} vs encode_batch): {hmoe[threads]:8.2f} / {hf['batch']:7.2f} MB/s = {hmoe[threads] / hf['batch']:6.1f}x")


if __name__ == "__main__":
    main()
