#!/usr/bin/env python3
"""(Re)generate tests/data/selective-experts/: HF transformers logits with fewer routed experts per token.

    python tools/make_selective_experts_fixtures.py

"Selective experts" (hmoe's `--experts-per-token K`, KTransformers' 6-of-8 mode) runs a model with K routed experts
per token instead of the `num_experts_per_tok` it was trained with. The external reference for what that means is
HF transformers' own modelling code with `num_experts_per_tok = K` in the config (DeepseekV3TopkRouter: sigmoid +
bias, group-limited, top-K, weights normalized over those K, scaled; DeepseekV2TopkRouter: softmax, top-K,
scaled). For each case below this script writes, per K, the float64 logits of that code over a token sequence:

  <case>/hf-k<K>.f32   float32 little-endian, row-major (tokens x vocab); K = the trained count is included
  <case>/meta.json     tokens, the GGUF it belongs to, trained K, the K list, routing margins, HF-side drift
  <case>/BF16.gguf     only for the cases made here (the others use tests/data/models/<model>/BF16.gguf)
  SOURCE.md            how the files were made, with the drift HF itself shows

Cases:
  dsv3-tiny, dsv2lite-tiny   the repo's test models (tools/make_test_models.py), trained top-2: K = 2, 1
  dsv3-top8                  a V3-shaped model made here with V3's 8 experts per token (32 experts, 4 groups,
                             2 kept), so that 6-of-8 is tested: K = 8, 6, 4, 1
  dsv2lite-top6              a V2-Lite-shaped model made here with V2-Lite's 6 experts per token (16 experts,
                             greedy softmax): K = 6, 4, 1

Tokens are chosen so that every routing decision at every K has a safe margin (see choose_tokens): an f32
implementation then selects exactly the experts float64 HF selects. Reuses tools/make_test_models.py (HF model
in strict float64, checkpoint layout, llama.cpp's convert_hf_to_gguf.py from the llama-cpp-python sdist in .deps/,
GGUF -> HF weights through gguf.quants.dequantize). Deterministic for fixed package versions.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_test_models as m  # noqa: E402

ROOT = m.ROOT
DATA = ROOT / "tests" / "data"
OUT_DEFAULT = DATA / "selective-experts"

# Safety margin of every routing decision (score of the K-th chosen minus the first rejected candidate, at every K
# of the case, and of the group choice for V3). f32 rounding moves router scores by ~1e-7 here; 5e-3 is the margin
# tools/make_test_models.py asks for, kept where the search can reach it.
MIN_MARGIN = 5e-3

_V3_TOP8 = dict(
    vocab_size=288, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
    num_hidden_layers=2, first_k_dense_replace=1,
    num_attention_heads=2, num_key_value_heads=2,
    q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=16,
    n_routed_experts=32, num_experts_per_tok=8, n_group=4, topk_group=2, n_shared_experts=1,
    scoring_func="sigmoid", topk_method="noaux_tc", norm_topk_prob=True, routed_scaling_factor=2.5,
    rope_parameters=dict(m._YARN, mscale=1.0, mscale_all_dim=1.0), rope_interleave=True,
    max_position_embeddings=163840, rms_norm_eps=1e-6, num_mtp_layers=0,
    bos_token_id=0, eos_token_id=1, tie_word_embeddings=False, attention_bias=False,
)
_V2_TOP6 = dict(
    vocab_size=288, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
    num_hidden_layers=2, first_k_dense_replace=1,
    num_attention_heads=2, num_key_value_heads=2,
    q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=16,
    n_routed_experts=16, num_experts_per_tok=6, n_group=None, topk_group=None, n_shared_experts=2,
    scoring_func="softmax", topk_method="greedy", norm_topk_prob=False, routed_scaling_factor=1.0,
    rope_parameters=dict(m._YARN, mscale=0.707, mscale_all_dim=0.707),
    max_position_embeddings=163840, rms_norm_eps=1e-6,
    bos_token_id=0, eos_token_id=1, tie_word_embeddings=False, attention_bias=False,
)

CASES = {
    "dsv3-tiny": dict(source="models/dsv3-tiny/BF16.gguf", spec=m.MODELS["dsv3-tiny"], ks=[2, 1],
                      meta="models/dsv3-tiny/meta.json"),
    "dsv2lite-tiny": dict(source="models/dsv2lite-tiny/BF16.gguf", spec=m.MODELS["dsv2lite-tiny"], ks=[2, 1],
                          meta="models/dsv2lite-tiny/meta.json"),
    "dsv3-top8": dict(spec=dict(arch="DeepseekV3ForCausalLM", like="DeepSeek-V3/R1 routing (8 of 256 -> 8 of 32)",
                                config=_V3_TOP8), ks=[8, 6, 4, 1]),
    "dsv2lite-top6": dict(spec=dict(arch="DeepseekV2ForCausalLM", like="DeepSeek-V2-Lite routing (6 of 64 -> 6 of 16)",
                                    config=_V2_TOP6), ks=[6, 4, 1]),
}


def log(*a):
    print(*a, flush=True)


def spec_with_k(spec: dict, k: int) -> dict:
    s = copy.deepcopy(spec)
    s["config"]["num_experts_per_tok"] = k
    return s


class Margins:
    """Forward hook on every router: per token (batch x seq), the smallest routing margin over the given Ks (and the
    group choice), recomputed in float64 from the router's input the way HF's routers decide."""

    def __init__(self, model, cfg, ks):
        import torch

        self.torch, self.cfg, self.ks, self.out, self.handles = torch, cfg, ks, [], []
        for name, mod in model.named_modules():
            if name.endswith("mlp.gate") and hasattr(mod, "weight"):
                self.handles.append(mod.register_forward_hook(self._hook))

    def _hook(self, mod, inputs, output):
        torch, c = self.torch, self.cfg
        shape = inputs[0].shape[:-1]
        x = inputs[0].reshape(-1, c.hidden_size).to(torch.float64)
        logits = x @ mod.weight.to(torch.float64).T
        worst = torch.full((x.shape[0],), float("inf"), dtype=torch.float64)
        if getattr(c, "topk_method", None) == "noaux_tc":
            s = logits.sigmoid() + mod.e_score_correction_bias.to(torch.float64)
            G, TG = c.n_group, c.topk_group
            g = s.view(s.shape[0], G, -1).topk(2, dim=-1).values.sum(-1)
            if TG < G:
                gs = g.sort(dim=-1, descending=True).values
                worst = torch.minimum(worst, gs[:, TG - 1] - gs[:, TG])
            keep = torch.zeros_like(g, dtype=torch.bool).scatter_(1, g.topk(TG, dim=-1).indices, True)
            s = s.masked_fill(~keep.repeat_interleave(c.n_routed_experts // G, dim=1), float("-inf"))
        else:
            assert c.topk_method == "greedy", c.topk_method
            s = logits.softmax(dim=-1)
        ss = s.sort(dim=-1, descending=True).values
        for k in self.ks:
            if k < ss.shape[1]:
                worst = torch.minimum(worst, ss[:, k - 1] - ss[:, k])  # -inf rejected: margin inf
        self.out.append(worst.view(shape))

    def worst(self):
        return self.torch.stack(self.out).min(0).values  # (batch, seq)

    def close(self):
        for h in self.handles:
            h.remove()


def choose_tokens(model, cfg, ks, seed: int, n: int, min_margin: float, prefer=None):
    """N token ids (BOS first) whose routing margins are >= min_margin at every position and every K.

    `prefer` (an existing sequence) is taken as is when it qualifies. Otherwise tokens are chosen one position at a
    time: the model is causal, so the margins up to position i do not depend on later tokens; at each position the
    candidates are tried in a seeded random order and the first that qualifies is kept. Screened with the stock
    forward (float32 islands; the margins are recomputed in float64 from the router inputs), verified in strict
    float64 by the caller."""
    import torch

    def margins(batch):
        mm = Margins(model, cfg, ks)
        with torch.no_grad():
            model(input_ids=torch.tensor(batch), use_cache=False)
        mm.close()
        return mm.worst()

    if prefer is not None and float(margins([prefer]).min()) >= min_margin:
        return list(prefer), "the repo model's own tokens (tests/data/models/<model>/meta.json)"
    rng = random.Random(seed)
    tokens = [0]
    if float(margins([tokens])[0, 0]) < min_margin:
        return None, "BOS alone misses the margin"
    for i in range(1, n):
        cands = list(range(2, cfg.vocab_size))
        rng.shuffle(cands)
        for start in range(0, len(cands), 16):
            chunk = cands[start:start + 16]
            ok = (margins([tokens + [c] for c in chunk])[:, i] >= min_margin).nonzero().flatten().tolist()
            if ok:
                tokens.append(chunk[ok[0]])
                break
        else:
            return None, f"no token qualifies at position {i}"
    return tokens, f"chosen position by position (seed {seed})"


def log_softmax(x):
    import numpy as np

    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def drift(a, b) -> dict:
    """a: logits with the trained K (reference), b: with fewer; float64 numpy (tokens x vocab)."""
    import numpy as np

    lp, lq = log_softmax(a), log_softmax(b)
    kl = (np.exp(lp) * (lp - lq)).sum(-1)
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    return {"kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
            "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).mean()),
            "rel_l2_mean": float(rel.mean())}


def make_case(name: str, case: dict, out_root: Path, work: Path, llama_dir: Path | None, min_margin: float) -> dict:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    t0 = time.time()
    spec, ks = case["spec"], case["ks"]
    trained = spec["config"]["num_experts_per_tok"]
    assert ks[0] == trained and all(1 <= k <= trained for k in ks), ks
    cfg = m.make_config(spec)
    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    seed = m.SEED + zlib.crc32(("selective-" + name).encode()) % 1000
    prefer = None

    if "source" in case:  # a repo test model, with its own tokens where they qualify
        gguf_path = DATA / case["source"]
        gguf_rel = case["source"]
        prefer = json.loads((DATA / case["meta"]).read_text(encoding="utf-8"))["tokens"]
        made_by = f"tools/make_test_models.py (tests/data/{gguf_rel})"
        state = m.gguf_to_hf_state(gguf_path, cfg)
        model = m.build_hf_model(spec, cfg)
        m.load_params(model, state)
        tokens, how = choose_tokens(model, cfg, ks, seed, m.N_TOKENS, min_margin, prefer)
    else:  # made here as tools/make_test_models.py makes its models (BF16 only); the next weight seed when even
        # BOS misses the margin
        for attempt in range(10):
            seed_w = seed + 1000 * attempt
            ck = m.random_checkpoint(cfg, seed_w)
            state = m.checkpoint_to_hf(ck, cfg)
            model = m.build_hf_model(spec, cfg)
            m.load_params(model, state)
            tokens, how = choose_tokens(model, cfg, ks, seed_w, m.N_TOKENS, min_margin)
            log(f"[{name}] weights seed {seed_w}: {how}")
            if tokens is not None:
                break
        if tokens is not None:
            hf_dir = work / name
            hf_dir.mkdir(parents=True)
            m.make_tokenizer(cfg.vocab_size, m.SEED, hf_dir)
            save_file(ck, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
            cfg.save_pretrained(hf_dir)
            gguf_path = out / "BF16.gguf"
            gguf_rel = f"selective-experts/{name}/BF16.gguf"
            log(f"[{name}] convert_hf_to_gguf.py --outtype bf16")
            m.convert_to_gguf(llama_dir, hf_dir, gguf_path, name)
            st = m.gguf_to_hf_state(gguf_path, cfg)
            assert set(st) == set(state)
            for k in state:
                assert torch.equal(st[k], state[k]), f"BF16.gguf differs from the HF weights: {k}"
            made_by = (f"tools/make_selective_experts_fixtures.py: weights seed {seed_w}, normal/uniform as "
                       "tools/make_test_models.py, rounded to bf16; llama.cpp convert_hf_to_gguf.py --outtype bf16")
    if tokens is None:
        raise SystemExit(f"[{name}] no token sequence with routing margins >= {min_margin:g}: {how}")
    log(f"[{name}] tokens: {how}")

    results, sanity = {}, {}
    for k in ks:
        spec_k = spec_with_k(spec, k)
        cfg_k = m.make_config(spec_k)
        model_k = m.build_hf_model(spec_k, cfg_k)
        assert all(mod.top_k == k for n_, mod in model_k.named_modules() if n_.endswith("mlp.gate")), "top_k not set"
        m.load_params(model_k, state)
        logits, extra = m.hf_logits(model_k, cfg_k, tokens, check_incremental=True)
        mm = min(v for kk, v in extra.items() if kk.startswith("routing_margin"))
        assert mm >= min_margin, f"[{name}] K={k}: strict float64 routing margin {mm} < {min_margin}"
        results[k] = logits.numpy()
        np.asarray(results[k], dtype="<f4").tofile(out / f"hf-k{k}.f32")
        sanity[f"k{k}"] = extra
        log(f"[{name}] hf-k{k}.f32: " + ", ".join(f"{kk}={v:.3g}" for kk, v in extra.items()))
    if prefer is not None and tokens == prefer:
        # the repo model's tokens: the trained-K logits must be the committed reference, bit for bit
        committed = np.fromfile(gguf_path.parent / "hf-BF16.f32", dtype="<f4").reshape(len(tokens), -1)
        assert np.array_equal(committed, np.asarray(results[trained], dtype="<f4")), "hf-k<trained> != hf-BF16.f32"
        log(f"[{name}] hf-k{trained}.f32 is bit-identical to tests/data/{Path(gguf_rel).parent}/hf-BF16.f32")
    drifts = {f"k{k}": drift(results[trained], results[k]) for k in ks[1:]}
    for k, d in drifts.items():
        log(f"[{name}] HF drift {k} vs k{trained}: " + ", ".join(f"{kk}={v:.3g}" for kk, v in d.items()))
        assert d["rel_l2_mean"] > 1e-3, f"[{name}] {k}: fewer experts do not change the logits"

    c = json.loads(cfg.to_json_string())
    meta = {
        "name": name,
        "like": spec["like"],
        "gguf": gguf_rel,
        "gguf_sha256": m.sha256(gguf_path),
        "gguf_made_by": made_by,
        "trained_experts_per_token": trained,
        "experts_per_token": ks,
        "tokens": tokens,
        "n_tokens": len(tokens),
        "token_choice": how,
        "vocab": cfg.vocab_size,
        "logits": {f"hf-k{k}.f32": {"num_experts_per_tok": k, "sha256": m.sha256(out / f"hf-k{k}.f32")} for k in ks},
        "logits_dtype": "float32 little-endian, row-major (tokens, vocab)",
        "reference": ("HF transformers modelling code (eager attention, eager experts) with num_experts_per_tok = K, "
                      "float64 throughout (strict_float64 in tools/make_test_models.py), prefill over all tokens, "
                      "weights = gguf.quants.dequantize of the GGUF file"),
        "min_routing_margin": min_margin,
        "sanity": sanity,
        "hf_drift_vs_trained": drifts,
        "routing": {k: c.get(k) for k in ("n_routed_experts", "num_experts_per_tok", "n_group", "topk_group",
                                          "topk_method", "scoring_func", "norm_topk_prob", "routed_scaling_factor",
                                          "n_shared_experts")},
        "config": c,
        "python_packages": m.package_versions(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"[{name}] done in {time.time() - t0:.0f} s")
    return meta


def write_source_md(out_root: Path, metas: dict) -> None:
    cases, drifts, files = [], [], []
    for name, mt in metas.items():
        r = mt["routing"]
        routing = (f"sigmoid + bias, top-{r['num_experts_per_tok']} of {r['n_routed_experts']} ({r['n_group']} groups, "
                   f"{r['topk_group']} kept), norm, ×{r['routed_scaling_factor']}" if r["topk_method"] == "noaux_tc"
                   else f"softmax, greedy top-{r['num_experts_per_tok']} of {r['n_routed_experts']}, "
                        f"×{r['routed_scaling_factor']}")
        cases.append(f"| `{name}/` | `tests/data/{mt['gguf']}` | {routing} | {', '.join(map(str, mt['experts_per_token']))} "
                     f"| {mt['token_choice']} |")
        t = mt["trained_experts_per_token"]
        for k, d in mt["hf_drift_vs_trained"].items():
            drifts.append(f"| {name} | {k[1:]} of {t} | {d['kl_mean']:.2e} | {d['kl_max']:.2e} | "
                          f"{d['top1_agreement'] * 100:.1f} % | {d['rel_l2_mean']:.3f} |")
        for fn in mt["logits"]:
            files.append(f"`{name}/{fn}`")
        if not mt["gguf"].startswith("models/"):
            files.append(f"`{name}/BF16.gguf` ({(out_root / name / 'BF16.gguf').stat().st_size / 1e3:.0f} kB)")
    pk = next(iter(metas.values()))["python_packages"]
    text = f"""# Selective experts: HF logits with fewer routed experts per token

Generated by `tools/make_selective_experts_fixtures.py` (do not edit by hand). Regenerate with (from the
repository root, packages of `tools/requirements.txt` installed; the llama-cpp-python sdist in `.deps/`, fetched
as `tools/make_test_models.py` does):

    python tools/make_selective_experts_fixtures.py

`hf-k<K>.f32`: the modelling code of HF transformers {pk['transformers']} with `num_experts_per_tok = K` in the
config, in float64 (eager attention and experts, `strict_float64` of `tools/make_test_models.py`), prefill over
the tokens of `meta.json`, weights read back from the GGUF with `gguf.quants.dequantize`. K = the trained count is
included (for a repo model with its own tokens it is bit-identical to `tests/data/models/<model>/hf-BF16.f32`;
the script checks). Tokens are chosen so that every routing decision, at every K listed, has a margin of at least
{next(iter(metas.values()))['min_routing_margin']:g} between the last chosen and the first rejected expert (and group), so an f32 implementation picks the
experts that float64 HF picks. Logits files are float32 little-endian, row-major (tokens × vocab).

| dir | GGUF | routing as trained | K | tokens |
|---|---|---|---|---|
{chr(10).join(cases)}

`dsv3-top8` and `dsv2lite-top6` are made here like the repo models (seeded random weights rounded to bf16,
llama.cpp's `convert_hf_to_gguf.py --outtype bf16`): hidden 64, 2 layers (1 dense), q LoRA 32 (V3) or plain q
(V2), kv LoRA 32, nope/rope/v 16/16/16, expert ffn 32, vocabulary 288 (the repo models' tokenizer), YaRN as the
repo models. They have the real models' experts per token, so that K between 1 and the trained count is tested
(V3's 6-of-8 in particular, where the normalization over K matters).

Files: {', '.join(files)}.

## Drift in HF itself (float64, K vs the trained count, same tokens)
| model | K | mean KL(trained ‖ K) | max KL | top-1 agreement | mean rel-L2 |
|---|---|---|---|---|---|
{chr(10).join(drifts)}

Random-weight models: the drift says that the override acts, not how much a trained model loses.
"""
    (out_root / "SOURCE.md").write_text(text, encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description="Generate tests/data/selective-experts/")
    p.add_argument("--out", type=Path, default=OUT_DEFAULT)
    p.add_argument("--only", action="append", choices=list(CASES), help="only this case (repeatable)")
    p.add_argument("--min-margin", type=float, default=MIN_MARGIN, help=argparse.SUPPRESS)
    args = p.parse_args()

    t0 = time.time()
    import torch
    torch.manual_seed(0)
    llama_dir = m.sdist_dir() / "vendor" / "llama.cpp"
    names = args.only or list(CASES)
    if any("source" not in CASES[n] for n in names) and not (llama_dir / "convert_hf_to_gguf.py").exists():
        # fetch the sdist the way make_test_models.py does (this also builds llama-quantize if missing)
        llama_dir, _ = m.ensure_llama_cpp(argparse.Namespace(llama_cpp=None, quantize=None))
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hmoe-selective-"))
    metas = {}
    try:
        for name in names:
            metas[name] = make_case(name, CASES[name], args.out, work, llama_dir, args.min_margin)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if set(metas) == set(CASES):
        write_source_md(args.out, metas)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    log(f"done in {time.time() - t0:.0f} s; {args.out} holds {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
