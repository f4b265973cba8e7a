#!/usr/bin/env python3
"""How far one logits file is from another: mean/max KL, top-1 agreement, mean relative L2 per position.

    python tools/logits_drift.py REFERENCE.f32 OTHER.f32 VOCAB

Both files float32 little-endian, row-major (tokens x vocab), as `hmoe-eval --logits-out` writes them. KL is
KL(reference || other) of the softmax of each row, in float64. Used for the drift of `--experts-per-token`
(docs/selective-experts.md): REFERENCE = the trained count, OTHER = fewer experts per token.
"""
import sys

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    vocab = int(sys.argv[3])
    a, b = (np.fromfile(p, dtype="<f4").astype(np.float64) for p in sys.argv[1:3])
    if a.size != b.size or a.size % vocab:
        raise SystemExit(f"sizes {a.size} and {b.size} are not the same whole number of rows of {vocab}")
    a, b = a.reshape(-1, vocab), b.reshape(-1, vocab)
    lp, lq = log_softmax(a), log_softmax(b)
    kl = (np.exp(lp) * (lp - lq)).sum(1)
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    print(f"{len(a)} positions: mean KL {kl.mean():.3e}, max KL {kl.max():.3e}, "
          f"top-1 agreement {100 * (a.argmax(1) == b.argmax(1)).mean():.1f} %, mean rel-L2 {rel.mean():.3f}")


if __name__ == "__main__":
    main()
