#!/usr/bin/env python3
"""Greedy continuations from hmoe-eval and from llama.cpp's llama-simple (greedy) on the same GGUF and prompts.

Both decode greedily; llama-simple stops at EOS, so hmoe's text is cut at the first EOS too. Prints, per prompt,
how many generated characters agree and whether the two continuations are identical.

usage: tools/compare_greedy_llamacpp.py MODEL.gguf N_TOKENS [--hmoe build/examples/eval/hmoe-eval]
       [--llama .deps/llama-build/bin/llama-simple] PROMPT...
"""
import argparse
import subprocess

EOS = "<｜end▁of▁sentence｜>"
BOS = "<｜begin▁of▁sentence｜>"


def run(cmd: list[str]) -> str:
    """stdout of cmd; stderr (llama.cpp's log, not always valid UTF-8) is dropped."""
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    return out.decode("utf-8", errors="surrogateescape")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("n", type=int)
    ap.add_argument("prompts", nargs="+")
    ap.add_argument("--hmoe", default="build/examples/eval/hmoe-eval")
    ap.add_argument("--llama", default=".deps/llama-build/bin/llama-simple")
    a = ap.parse_args()
    bad = 0
    for p in a.prompts:
        llama = run([a.llama, "-m", a.model, "-n", str(a.n), p])
        llama = llama.removeprefix(BOS).removeprefix(p).removesuffix("\n")  # llama-simple ends with a newline
        out = run([a.hmoe, "--model", a.model, "--prompt", p, "--generate", str(a.n)])
        ids = out.split("generated ids:")[1].split("\n")[0].split()
        text = out.split("generated text: ", 1)[1].rsplit("\ntop-5 at position", 1)[0]
        text = text.split(EOS)[0]
        common = 0
        while common < min(len(text), len(llama)) and text[common] == llama[common]:
            common += 1
        same = text == llama
        bad += not same
        eos = " (EOS)" if EOS in out.split("generated text: ", 1)[1] else ""
        print(f"{'SAME' if same else 'DIFF'} {len(ids)} tokens{eos}, {common}/{len(llama)} chars agree | {p!r}")
        if not same:
            print(f"  hmoe : {text!r}\n  llama: {llama!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
