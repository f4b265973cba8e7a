#!/usr/bin/env python3
"""Train hmoe's bundled model: a small DeepSeek-V3-architecture MoE, from corpus to GGUF.

    python tools/train/train.py                      # every stage here (slow without a GPU)
    python tools/train/train.py --stage prepare      # corpus, tokenizer, token ids -> tools/train/work/
    python tools/train/train.py --stage train --out DIR     # on the GPU: train, evaluate, HF checkpoint -> DIR
    python tools/train/train.py --stage export --ckpt DIR   # GGUF BF16/Q8_0/Q4_K_M, GGUF evals, plot, report

docs/training.md gives the command sequence that made the committed files. Stages keep no state beyond what
they write: `prepare` writes tools/train/work/ (git-ignored, carried to the GPU machine), `train` writes the
checkpoint and its logs to --out, `export` reads them from --ckpt.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = HERE / "work"
DATA = HERE / "data"
LOGS = HERE / "logs"
MODELS = ROOT / "models"
IMG = ROOT / "docs" / "img"

sys.path.insert(0, str(HERE))
import corpus  # noqa: E402
from corpus import ASSISTANT, BOS, EOS, PAD, THINK, THINK_END, USER  # noqa: E402

SEED = 20260107
VOCAB = 8192
NAME = "hmoe-tiny-dsv3"
TOOL_TOKENS = ["<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
               "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
               "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"]
# ids 0..15; BOS, EOS and pad are special (control) tokens, the others plain added tokens, as in DeepSeek-V3's
# tokenizer.json (<think> and </think> as in DeepSeek-R1's)
ADDED = [BOS, EOS, PAD, USER, ASSISTANT, THINK, THINK_END, *TOOL_TOKENS]
SPECIAL = {BOS, EOS, PAD}

# DeepSeek-V3's pre-tokenizer rules (tokenizer.json "pre_tokenizer": three Split regexes, then byte-level)
V3_SPLITS = [
    r"\p{N}{1,3}",
    r"[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]

_YARN = dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, original_max_position_embeddings=4096,
             beta_fast=32.0, beta_slow=1.0, mscale=1.0, mscale_all_dim=1.0)
# hidden and expert ffn are multiples of 256 so that Q4_K/Q8_0 apply to the big matrices
CONFIG = dict(
    vocab_size=VOCAB, hidden_size=256, intermediate_size=1024, moe_intermediate_size=256,
    num_hidden_layers=6, first_k_dense_replace=1,
    num_attention_heads=4, num_key_value_heads=4,
    q_lora_rank=128, kv_lora_rank=128, qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64,
    n_routed_experts=16, num_experts_per_tok=2, n_group=4, topk_group=2, n_shared_experts=1,
    scoring_func="sigmoid", topk_method="noaux_tc", norm_topk_prob=True, routed_scaling_factor=2.5,
    rope_parameters=_YARN, rope_interleave=True, max_position_embeddings=163840, rms_norm_eps=1e-6,
    num_mtp_layers=0, bos_token_id=0, eos_token_id=1, pad_token_id=2, tie_word_embeddings=False,
    attention_bias=False, attention_dropout=0.0, initializer_range=0.02, hidden_act="silu",
)
TINY = dict(num_hidden_layers=2, n_routed_experts=8, n_group=4, topk_group=2)

HP = dict(seq_len=512, batch=64, lr=2e-3, min_lr_frac=0.1, warmup=100, weight_decay=0.1, betas=(0.9, 0.95),
          grad_clip=1.0, bias_update=1e-3, time_budget=440.0, eval_every_epochs=0.5)
RUNS = "10:0.2,14:0.3"  # default --epochs: the runs of the training that made the bundled model
HP_TINY = dict(seq_len=128, batch=4, warmup=2, max_steps=6, time_budget=1e9, eval_every_epochs=0)

CHAT_PROMPTS = [
    ("", "Quote Genesis 1:3."),
    ("", "Quote John 3:16."),
    ("You are a helpful assistant.", "What does Psalms 23:1 say?"),
    ("", "Tell me a fortune."),
    ("", "Tell me a fortune about computers."),
    ("", "Define apple."),
    ("", "What does \"serendipity\" mean?"),
    ("", "What does str.join do in Python?"),
    ("", "Explain len."),
    ("", "What is a decorator in Python?"),
    ("You are a helpful assistant.", "Quote a Bible verse."),
]
TEXT_PROMPTS = ["In the beginning God created", "The Python interpreter", "A computer is"]


def log(*a):
    print(*a, flush=True)


def jdump(obj, path: Path):
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ============================================================================================= prepare

def make_tokenizer(train_texts, out: Path) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in V3_SPLITS] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    # BOS in front of every encoded text unless add_special_tokens=False (what HF's LlamaTokenizerFast builds for
    # DeepSeek's add_bos_token=true); llama.cpp's converter reads it as tokenizer.ggml.add_bos_token = true
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
                                                       special_tokens=[(BOS, 0)])
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=ADDED, show_progress=False, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train_texts, trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    # special flags as in DeepSeek's tokenizer.json: only BOS/EOS/pad are special
    j = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    for a in j["added_tokens"]:
        assert ADDED[a["id"]] == a["content"]
        a["special"] = a["content"] in SPECIAL
        a["normalized"] = a["content"] not in SPECIAL
    (out / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    def added(t):
        return {"content": t, "lstrip": False, "normalized": t not in SPECIAL, "rstrip": False,
                "single_word": False, "special": t in SPECIAL}

    jdump({
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(i): added(t) for i, t in enumerate(ADDED)},
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": None,
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 163840,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": (HERE / "chat_template.jinja").read_text(encoding="utf-8"),
    }, out / "tokenizer_config.json")


def check_tokenizer(tok_dir: Path, convs) -> None:
    """HF's tokenizer and chat template agree with the raw tokenizer and corpus.render_chat."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    hf = AutoTokenizer.from_pretrained(str(tok_dir))
    for m in convs[:200]:
        s = corpus.render_chat(m)
        t = hf.apply_chat_template(m, tokenize=False)
        assert s == t, (s, t)
        ids = raw.encode(s, add_special_tokens=False).ids
        assert ids == hf(s, add_special_tokens=False)["input_ids"], s
        assert ids[0] == 0 and ids[-1] == 1 and 3 in ids and 4 in ids, ids[:8]
        assert raw.decode(ids, skip_special_tokens=False) == s
    g = hf.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert g == BOS + USER + "Hi" + ASSISTANT, g
    for text in ["Hello world 12345 don't  x\n\n  y", "def f(x):\n    return x**2  # ok"]:
        assert raw.decode(raw.encode(text, add_special_tokens=False).ids) == text
        assert raw.encode(text).ids[0] == 0 and hf(text)["input_ids"] == raw.encode(text).ids


def stage_prepare(args) -> None:
    import numpy as np
    from tokenizers import Tokenizer

    corpus.check_sources()
    t0 = time.time()
    c = corpus.build()
    docs, convs = c["docs"], c["chat"]
    log(f"corpus: {', '.join(f'{k} {len(v)} docs' for k, v in docs.items())}, {len(convs)} chat conversations "
        f"({time.time() - t0:.0f} s)")
    WORK.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    # held-out and validation text: documents separated by a blank line
    for split, path in (("heldout", DATA / "heldout.txt"), ("valid", WORK / "valid.txt")):
        path.write_text("\n\n".join(d.text for d in docs[split]) + "\n", encoding="utf-8")
    chat_texts = [corpus.render_chat(m) for m in convs]

    def tok_train_iter():
        for d in docs["train"]:
            yield d.text
        for m in convs:
            for x in m:
                yield x["content"]

    tok_dir = WORK / "tokenizer"
    t0 = time.time()
    make_tokenizer(tok_train_iter(), tok_dir)
    check_tokenizer(tok_dir, convs)
    log(f"tokenizer: {VOCAB} entries ({time.time() - t0:.0f} s)")
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))

    def encode(texts, wrap):
        enc = tok.encode_batch(texts, add_special_tokens=False)
        seqs = [([0] + e.ids + [1]) if wrap else e.ids for e in enc]
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        flat = np.fromiter((i for s in seqs for i in s), dtype=np.uint16, count=int(lens.sum()))
        return flat, lens

    arrays, stats = {}, {}
    for split in ("train", "valid"):
        flat, lens = encode([d.text for d in docs[split]], wrap=True)
        arrays[f"{split}_tokens"], arrays[f"{split}_lens"] = flat, lens
    arrays["chat_tokens"], arrays["chat_lens"] = encode(chat_texts, wrap=False)
    np.savez(WORK / "tokens.npz", **arrays)
    heldout_text = (DATA / "heldout.txt").read_text(encoding="utf-8")
    n_held = len(tok.encode(heldout_text, add_special_tokens=False).ids)
    by_source = {}
    for split, ds in docs.items():
        for d in ds:
            s = by_source.setdefault(d.source, {"docs": {}, "chars": {}})
            s["docs"][split] = s["docs"].get(split, 0) + 1
            s["chars"][split] = s["chars"].get(split, 0) + len(d.text)
    stats = {
        "sources": by_source,
        "chat": {"conversations": len(convs), "chars": sum(map(len, chat_texts)),
                 "tokens": int(arrays["chat_tokens"].size)},
        "tokens": {"train_docs": int(arrays["train_tokens"].size), "valid": int(arrays["valid_tokens"].size),
                   "chat": int(arrays["chat_tokens"].size), "heldout": n_held},
        "heldout_bytes": len(heldout_text.encode("utf-8")),
        "pydoc_definitions": c["n_defs"], "wordnet_synsets": c["n_wordnet"],
        "debian_packages": corpus.package_versions(),
    }
    jdump(stats, WORK / "corpus_stats.json")
    LOGS.mkdir(parents=True, exist_ok=True)
    jdump(stats, LOGS / "corpus_stats.json")
    random.Random(1).shuffle(convs)
    (WORK / "chat_examples.txt").write_text("\n".join(repr(corpus.render_chat(m)) for m in convs[:50]) + "\n",
                                            encoding="utf-8")
    log("tokens: " + ", ".join(f"{k} {v:,}" for k, v in stats["tokens"].items()))


# ============================================================================================= model

def make_config(tiny: bool):
    import transformers

    cfg = transformers.DeepseekV3Config(**dict(CONFIG, **(TINY if tiny else {})))
    cfg.architectures = ["DeepseekV3ForCausalLM"]
    return cfg


def to_original_layout(model) -> dict:
    """transformers 5.x parameters (fused experts) -> the original DeepSeek checkpoint layout (one tensor per
    expert and projection), which llama.cpp's converter and HF's loader both read. BF16, except the router's
    e_score_correction_bias (float32, as in DeepSeek-V3's checkpoint)."""
    import torch

    out = {}
    for k, v in model.state_dict().items():
        if "rotary_emb" in k:
            continue
        v = v.detach().cpu()
        if k.endswith("mlp.experts.gate_up_proj"):
            p = k[: -len("gate_up_proj")]
            F = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[p + f"{e}.gate_proj.weight"] = v[e, :F].to(torch.bfloat16).contiguous()
                out[p + f"{e}.up_proj.weight"] = v[e, F:].to(torch.bfloat16).contiguous()
        elif k.endswith("mlp.experts.down_proj"):
            p = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[p + f"{e}.down_proj.weight"] = v[e].to(torch.bfloat16).contiguous()
        elif k.endswith("e_score_correction_bias"):
            out[k] = v.to(torch.float32).contiguous()
        else:
            out[k] = v.to(torch.bfloat16).contiguous()
    return out


def save_checkpoint(model, cfg, out: Path, shard_bytes: int = 15_000_000) -> list[str]:
    from safetensors.torch import save_file

    st = to_original_layout(model)
    shards, cur, n = [], {}, 0
    for k in sorted(st, key=_layer_order):
        b = st[k].numel() * st[k].element_size()
        if cur and n + b > shard_bytes:
            shards.append(cur)
            cur, n = {}, 0
        cur[k] = st[k]
        n += b
    shards.append(cur)
    names, wmap = [], {}
    for i, sh in enumerate(shards):
        fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(sh, str(out / fn), metadata={"format": "pt"})
        names.append(fn)
        wmap.update({k: fn for k in sh})
    total = sum(t.numel() * t.element_size() for t in st.values())
    jdump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))},
          out / "model.safetensors.index.json")
    cfg.save_pretrained(out)
    return names


def _layer_order(k: str):
    parts = k.split(".")
    if len(parts) > 2 and parts[1] == "layers":
        return (1, int(parts[2]), k)
    return (0 if "embed" in k else 2, 0, k)


def bf16_round_(model) -> None:
    """Round every weight to bf16 (the values the checkpoint and BF16 GGUF hold), keeping the float32 dtype;
    the router bias stays float32."""
    import torch

    with torch.no_grad():
        for n, p in list(model.named_parameters()):
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


class RouterTap:
    """Forward hooks on every MoE router (DeepseekV3TopkRouter): counts how often each expert is chosen."""

    def __init__(self, model):
        import torch

        self.torch = torch
        self.routers = [(int(n.split(".")[2]), m) for n, m in model.named_modules()
                        if n.endswith("mlp.gate") and hasattr(m, "e_score_correction_bias")]
        E = model.config.n_routed_experts
        dev = next(model.parameters()).device
        self.counts = {li: torch.zeros(E, dtype=torch.int64, device=dev) for li, _ in self.routers}
        self.enabled = True
        self.valid = None  # optional bool mask over the batch's flattened positions (padding excluded)
        self.handles = [m.register_forward_hook(self._hook(li)) for li, m in self.routers]

    def _hook(self, li):
        def f(mod, inputs, output):
            if not self.enabled:
                return
            idx = next(o for o in output if isinstance(o, self.torch.Tensor) and not o.is_floating_point())
            if self.valid is not None:
                idx = idx.reshape(self.valid.numel(), -1)[self.valid]
            idx = idx.reshape(-1)
            self.counts[li].scatter_add_(0, idx, self.torch.ones_like(idx))  # no host sync (bincount has one)
        return f

    def reset(self):
        for c in self.counts.values():
            c.zero_()

    def close(self):
        for h in self.handles:
            h.remove()


def update_bias(tap: RouterTap, u: float) -> None:
    """DeepSeek-V3's auxiliary-loss-free balancing: after each step, b_e += u * sign(mean load - load_e)."""
    import torch

    with torch.no_grad():
        for li, m in tap.routers:
            load = tap.counts[li].float()
            m.e_score_correction_bias.add_(u * torch.sign(load.mean() - load))


# ============================================================================================= evaluation

def windows(ids: list[int], seq_len: int) -> list[list[int]]:
    """Non-overlapping windows of seq_len-1 tokens, each preceded by BOS; every token of a window is scored."""
    n = seq_len - 1
    return [[0] + ids[i:i + n] for i in range(0, len(ids), n)]


def perplexity(model, ids: list[int], seq_len: int, batch: int, device, tap: RouterTap | None = None,
               max_tokens: int | None = None) -> dict:
    import torch

    if max_tokens:
        ids = ids[:max_tokens]
    ws = windows(ids, seq_len)
    nll, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(ws), batch):
            chunk = ws[i:i + batch]
            L = max(map(len, chunk))
            x = torch.full((len(chunk), L), 2, dtype=torch.long)
            mask = torch.zeros((len(chunk), L), dtype=torch.long)
            for j, w in enumerate(chunk):
                x[j, :len(w)] = torch.tensor(w)
                mask[j, :len(w)] = 1
            x, mask = x.to(device), mask.to(device)
            if tap is not None:
                tap.valid = mask.reshape(-1).bool()
            logits = model(input_ids=x, attention_mask=mask, use_cache=False).logits.float()
            if tap is not None:
                tap.valid = None
            lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, x[:, 1:, None])[..., 0]
            m = mask[:, 1:].bool()
            nll -= float(lp[m].sum())
            count += int(m.sum())
    return {"tokens": count, "windows": len(ws), "nll": nll / count, "ppl": math.exp(nll / count)}


def router_stats(tap: RouterTap) -> dict:
    out = {}
    for li, c in tap.counts.items():
        c = c.cpu().double()
        frac = (c / c.sum()).tolist()
        out[str(li)] = {"counts": [int(x) for x in c.tolist()], "share": frac,
                        "max_over_mean": float(c.max() / c.mean()), "min_over_mean": float(c.min() / c.mean())}
    return out


def samples(model, tok, device, max_new: int = 80) -> list[dict]:
    import torch

    out = []
    model.eval()
    prompts = [(corpus.render_chat(([{"role": "system", "content": s}] if s else []) +
                                   [{"role": "user", "content": q}]) + ASSISTANT, s, q) for s, q in CHAT_PROMPTS]
    prompts += [(BOS + t, None, t) for t in TEXT_PROMPTS]
    for text, sysmsg, q in prompts:
        ids = tok.encode(text, add_special_tokens=False).ids
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            g = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new,
                               do_sample=False, eos_token_id=1, pad_token_id=2)
        new = g[0, len(ids):].tolist()
        out.append({"system": sysmsg, "prompt": q, "chat": sysmsg is not None, "prompt_ids": ids,
                    "output_ids": new, "output": tok.decode(new, skip_special_tokens=False),
                    "ended_with_eos": bool(new and new[-1] == 1)})
    return out


# ============================================================================================= train

class Batches:
    """Documents (BOS text EOS) and chat conversations, shuffled every epoch, packed into seq_len rows."""

    def __init__(self, npz, seq_len: int, batch: int, seed: int):
        import numpy as np

        self.np = np
        self.seqs = []
        for name in ("train", "chat"):
            lens = npz[f"{name}_lens"]
            offs = np.concatenate([[0], np.cumsum(lens)])
            self.seqs += [(int(offs[i]), int(offs[i + 1]), name) for i in range(len(lens))]
        self.flat = {n: npz[f"{n}_tokens"] for n in ("train", "chat")}
        self.total = sum(b - a for a, b, _ in self.seqs)
        self.seq_len, self.batch = seq_len, batch
        self.rows_per_epoch = self.total // seq_len
        self.steps_per_epoch = self.rows_per_epoch / batch
        self.rng = random.Random(seed)
        self.epoch = -1
        self.rows = None
        self.pos = 0

    def _new_epoch(self):
        np = self.np
        order = list(range(len(self.seqs)))
        self.rng.shuffle(order)
        parts = [self.flat[self.seqs[i][2]][self.seqs[i][0]:self.seqs[i][1]] for i in order]
        stream = np.concatenate(parts).astype(np.int64)
        n = len(stream) // self.seq_len
        self.rows = stream[: n * self.seq_len].reshape(n, self.seq_len)
        self.pos = 0
        self.epoch += 1

    def next(self):
        if self.rows is None or self.pos + self.batch > len(self.rows):
            self._new_epoch()
        r = self.rows[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return r


def pick_experts_impl(model, device, batch: int, seq_len: int, candidates) -> tuple[str, dict]:
    """Time forward+backward with each experts implementation transformers offers; keep the fastest that
    works and matches eager."""
    import torch

    x = torch.randint(16, VOCAB, (batch, seq_len), device=device)
    times, ref = {}, None
    for impl in candidates:
        try:
            model.set_experts_implementation(impl) if hasattr(model, "set_experts_implementation") else \
                setattr(model.config, "_experts_implementation", impl)
            model.zero_grad(set_to_none=True)
            for it in range(4):
                if it == 1:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.time()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    loss = model(input_ids=x, labels=x, use_cache=False).loss
                loss.backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = (time.time() - t0) / 3
            val = float(loss)
            if ref is None:
                ref = val
            ok = math.isfinite(val) and abs(val - ref) < 0.05
            times[impl] = {"s_per_step": dt, "loss": val, "ok": ok}
            log(f"experts implementation {impl}: {dt * 1000:.1f} ms/step (fwd+bwd), loss {val:.4f}")
        except Exception as e:  # noqa: BLE001  (an implementation this transformers/torch cannot run)
            times[impl] = {"error": f"{type(e).__name__}: {e}"[:300]}
            log(f"experts implementation {impl}: unavailable ({times[impl]['error']})")
    model.zero_grad(set_to_none=True)
    good = {k: v for k, v in times.items() if v.get("ok")}
    best = min(good, key=lambda k: good[k]["s_per_step"])
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation(best)
    else:
        model.config._experts_implementation = best
    return best, times


def set_experts_impl(model, impl: str) -> None:
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation(impl)
    else:
        model.config._experts_implementation = impl


def add_residual_dropout(model, p: float) -> list:
    """Dropout (training only) on each attention and MLP/MoE block's output before it joins the residual stream.
    A training-time regularizer through forward hooks; the model and its inference are unchanged."""
    import torch.nn.functional as F

    def hook(mod, inputs, out):
        if isinstance(out, tuple):
            return (F.dropout(out[0], p, mod.training),) + tuple(out[1:])
        return F.dropout(out, p, mod.training)

    return [m.register_forward_hook(hook) for layer in model.model.layers for m in (layer.self_attn, layer.mlp)]


def train_run(label: str, cfg, impl: str, npz, valid_ids, hp: dict, max_epochs: float, budget: float, device,
              eval_cap, fixed_steps: int | None = None, dropout: float = 0.0) -> dict:
    """One training run from the seeded init. Returns its history and the state with the best validation loss."""
    import torch
    import transformers

    torch.manual_seed(SEED)
    model = transformers.DeepseekV3ForCausalLM(cfg).to(device)
    set_experts_impl(model, impl)
    tap = RouterTap(model)
    drop_hooks = add_residual_dropout(model, dropout) if dropout > 0 else []
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed_tokens" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=hp["lr"], betas=hp["betas"],
                            fused=device.type == "cuda")
    data = Batches(npz, hp["seq_len"], hp["batch"], SEED)
    max_steps = fixed_steps or int(max_epochs * data.steps_per_epoch)
    eval_every = max(1, int(hp["eval_every_epochs"] * data.steps_per_epoch)) if hp["eval_every_epochs"] else 10 ** 9
    log(f"[{label}] train stream: {data.total:,} tokens, {data.rows_per_epoch} rows of {hp['seq_len']}, "
        f"{data.steps_per_epoch:.1f} steps per epoch of batch {hp['batch']}; up to {max_epochs:g} epochs "
        f"({max_steps} steps) in {budget:.0f} s")

    def lr_at(step, total):
        if step < hp["warmup"]:
            return hp["lr"] * (step + 1) / hp["warmup"]
        p = min(1.0, (step - hp["warmup"]) / max(1, total - hp["warmup"]))
        return hp["lr"] * (hp["min_lr_frac"] + (1 - hp["min_lr_frac"]) * 0.5 * (1 + math.cos(math.pi * p)))

    total = max_steps
    history, evals = [], []
    best = {"val_loss": float("inf"), "step": -1, "state": None}
    model.train()
    t_train = time.time()
    step, n_acc = 0, 0
    loss_acc = torch.zeros((), device=device)
    limited_by = "max epochs"
    while step < total:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total)
        x = torch.from_numpy(data.next()).to(device, non_blocking=True)
        tap.reset()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        update_bias(tap, hp["bias_update"])
        loss_acc += loss.detach()
        n_acc += 1
        step += 1
        if step == 30 and fixed_steps is None:
            # fix the schedule's length from the measured speed: the time budget or max_epochs, whichever first
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.time() - t_train) / step
            by_time = int(budget / per_step)
            total = max(step + 1, min(max_steps, by_time))
            limited_by = "time budget" if by_time < max_steps else "max epochs"
            log(f"[{label}] {per_step * 1000:.1f} ms/step -> {total} steps "
                f"({total / data.steps_per_epoch:.2f} epochs, {limited_by})")
        if step % 25 == 0 or step == total:
            loads = {li: c.float() for li, c in tap.counts.items()}
            imb = max(float(c.max() / c.mean()) for c in loads.values())
            rec = {"step": step, "epoch": step / data.steps_per_epoch, "loss": float(loss_acc) / n_acc,
                   "lr": opt.param_groups[0]["lr"], "grad_norm": float(gn), "max_load_over_mean": imb,
                   "elapsed_s": time.time() - t_train, "tokens": step * hp["batch"] * hp["seq_len"]}
            history.append(rec)
            loss_acc.zero_()
            n_acc = 0
            if step % 100 == 0 or step == total or fixed_steps:
                mem = f" {torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB" if device.type == "cuda" else ""
                log(f"[{label}] step {step}/{total} ep {rec['epoch']:.2f} loss {rec['loss']:.4f} lr {rec['lr']:.2e} "
                    f"gn {rec['grad_norm']:.2f} max/mean load {imb:.2f} {rec['elapsed_s']:.0f} s "
                    f"{rec['tokens'] / rec['elapsed_s'] / 1e3:.0f}k tok/s{mem}")
        if step % eval_every == 0 or step == total:
            tap.enabled = False
            v = perplexity(model, valid_ids, hp["seq_len"], 32, device, max_tokens=eval_cap)
            tap.enabled = True
            model.train()
            evals.append({"step": step, "epoch": step / data.steps_per_epoch, "val_loss": v["nll"],
                          "val_ppl": v["ppl"]})
            log(f"[{label}]   validation: step {step} ep {step / data.steps_per_epoch:.2f} loss {v['nll']:.4f} "
                f"ppl {v['ppl']:.2f}")
            if v["nll"] < best["val_loss"]:
                best = {"val_loss": v["nll"], "step": step,
                        "state": {k: t.detach().clone() for k, t in model.state_dict().items()}}
    if device.type == "cuda":
        torch.cuda.synchronize()
    tap.close()
    for h in drop_hooks:
        h.remove()
    return {"label": label, "max_epochs": max_epochs, "dropout": dropout, "budget_s": budget, "limited_by": limited_by,
            "steps": step, "epochs": step / data.steps_per_epoch, "steps_per_epoch": data.steps_per_epoch,
            "train_seconds": time.time() - t_train, "tokens_seen": step * hp["batch"] * hp["seq_len"],
            "stream_tokens_per_epoch": data.total, "best_step": best["step"], "best_val_loss": best["val_loss"],
            "history": history, "evals": evals, "state": best["state"]}


def stage_train(args) -> None:
    import numpy as np
    import torch
    import transformers
    from tokenizers import Tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test = args.tiny or args.smoke
    hp = dict(HP, **(HP_TINY if test else {}))
    if args.time_budget is not None:
        hp["time_budget"] = args.time_budget
    if args.steps:
        hp["max_steps"] = args.steps
    if args.bias_update is not None:
        hp["bias_update"] = args.bias_update
    # runs: "EPOCHS[:DROPOUT],..."
    runs_arg = args.epochs or (RUNS if not test else "1")
    specs = [(float(x.split(":")[0]), float(x.split(":")[1]) if ":" in x else 0.0) for x in runs_arg.split(",")]
    epochs = [e for e, _ in specs]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    log(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor()}), "
        f"torch {torch.__version__}, transformers {transformers.__version__}")
    t_start = time.time()
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    # TF32 stays off: evaluations run in true float32 (training itself is under bf16 autocast)

    npz = dict(np.load(WORK / "tokens.npz"))
    tok = Tokenizer.from_file(str(WORK / "tokenizer" / "tokenizer.json"))
    held_ids = tok.encode((DATA / "heldout.txt").read_text(encoding="utf-8"), add_special_tokens=False).ids
    valid_ids = tok.encode((WORK / "valid.txt").read_text(encoding="utf-8"), add_special_tokens=False).ids
    eval_cap = 4000 if test else None

    cfg = make_config(args.tiny)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(SEED)
    model = transformers.DeepseekV3ForCausalLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters")
    untrained = perplexity(model, held_ids, hp["seq_len"], 32, device, max_tokens=eval_cap)
    log(f"untrained held-out perplexity {untrained['ppl']:.1f} over {untrained['tokens']} tokens")
    impl, impl_times = pick_experts_impl(model, device, min(hp["batch"], 16), hp["seq_len"],
                                         ["eager", "grouped_mm", "batched_mm"] if device.type == "cuda" else
                                         ["eager", "grouped_mm"])
    log(f"experts implementation: {impl}")
    del model

    runs = []
    t_runs = time.time()
    for i, (ep, drop) in enumerate(specs):
        left = hp["time_budget"] - (time.time() - t_runs)
        budget = left * ep / sum(epochs[i:])
        label = f"{ep:g} epochs" + (f", dropout {drop:g}" if drop else "")
        runs.append(train_run(label, cfg, impl, npz, valid_ids, hp, ep, budget, device, eval_cap,
                              fixed_steps=hp.get("max_steps"), dropout=drop))
    chosen = min(runs, key=lambda r: r["best_val_loss"])
    log("runs: " + "; ".join(f"{r['label']}: best validation loss {r['best_val_loss']:.4f} at step {r['best_step']}"
                             f"/{r['steps']}" for r in runs) + f" -> keeping '{chosen['label']}'")
    torch.manual_seed(SEED)
    model = transformers.DeepseekV3ForCausalLM(cfg).to(device)
    set_experts_impl(model, impl)
    model.load_state_dict(chosen["state"])
    bf16_round_(model)
    files = save_checkpoint(model, cfg, out)
    tap = RouterTap(model)
    tap.enabled = False
    final_valid = perplexity(model, valid_ids, hp["seq_len"], 32, device, max_tokens=eval_cap)
    tap.reset()
    tap.enabled = True
    trained = perplexity(model, held_ids, hp["seq_len"], 32, device, tap=tap, max_tokens=eval_cap)
    tap.enabled = False
    routers = router_stats(tap)
    log(f"held-out perplexity: untrained {untrained['ppl']:.1f}, trained (bf16 weights) {trained['ppl']:.3f}; "
        f"validation {final_valid['ppl']:.3f}")
    for li, r in routers.items():
        log(f"  layer {li}: max/mean {r['max_over_mean']:.2f}, min/mean {r['min_over_mean']:.2f}, shares " +
            " ".join(f"{s * 100:.1f}" for s in r["share"]))
    try:
        samp = samples(model, tok, device, max_new=24 if test else 80)
    except Exception as e:  # noqa: BLE001  (keep the checkpoint and numbers even if generate breaks)
        log(f"samples failed: {type(e).__name__}: {e}")
        samp = []
    for s in samp:
        log(f"  [{s['prompt']}] -> {s['output']!r}")
    biases = {str(li): m.e_score_correction_bias.tolist() for li, m in tap.routers}
    for r in runs:
        del r["state"]
    results = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "packages": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "tiny": bool(args.tiny), "smoke": bool(args.smoke), "hyper": hp, "runs_tried": runs_arg,
        "config": CONFIG if not args.tiny else dict(CONFIG, **TINY),
        "parameters": n_params, "experts_implementation": impl, "experts_impl_timing": impl_times,
        "runs": runs, "chosen_run": chosen["label"],
        "steps": chosen["steps"], "epochs": chosen["epochs"], "best_step": chosen["best_step"],
        "train_seconds": chosen["train_seconds"], "train_seconds_all_runs": sum(r["train_seconds"] for r in runs),
        "total_seconds": time.time() - t_start,
        "valid_final": final_valid,
        "heldout": {"untrained": untrained, "trained": trained, "method": "windows of seq_len-1 tokens of "
                    "tools/train/data/heldout.txt (tokenized whole, no special tokens), each preceded by BOS; every "
                    "window token scored; weights rounded to bf16"},
        "routers_heldout": routers, "e_score_correction_bias": biases, "samples": samp,
        "history": chosen["history"], "evals": chosen["evals"], "checkpoint_files": files,
    }
    jdump(results, out / "results.json")
    log(f"train stage done: {results['train_seconds_all_runs']:.0f} s training, {time.time() - t_start:.0f} s in all")


# ============================================================================================= export

def stage_export(args) -> None:
    import torch
    import transformers
    from tokenizers import Tokenizer

    sys.path.insert(0, str(ROOT / "tools"))
    import make_test_models as mtm

    ckpt = Path(args.ckpt)
    if not (ckpt / "results.json").exists() and (ckpt / "small.tgz").exists():
        # the GPU call's $OUT as it came back: shards, train.log, and the small files packed in small.tgz
        small = WORK / "ckpt-small"
        shutil.rmtree(small, ignore_errors=True)
        small.mkdir(parents=True)
        with tarfile.open(ckpt / "small.tgz") as tf:
            tf.extractall(small, filter="data")
        res_dir = small
    else:
        res_dir = ckpt
    res = json.loads((res_dir / "results.json").read_text(encoding="utf-8"))
    tiny = res["tiny"]
    test = tiny or res.get("smoke", False)  # pipeline tests write under tools/train/work/, not models/ or docs/
    hf_dir = WORK / ("hf-test" if test else "hf")
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    hf_dir.mkdir(parents=True)
    for f in res["checkpoint_files"]:
        shutil.copy(ckpt / f, hf_dir / f)
    shutil.copy(res_dir / "model.safetensors.index.json", hf_dir / "model.safetensors.index.json")
    cfg = make_config(tiny)
    cfg.save_pretrained(hf_dir)  # written here, by this transformers, whatever wrote the GPU side's
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(WORK / "tokenizer" / f, hf_dir / f)

    # the checkpoint loads back into the same HF model
    m = transformers.DeepseekV3ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    assert m.config.n_routed_experts == cfg.n_routed_experts

    out_dir = MODELS if not test else WORK / "models-test"
    out_dir.mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(llama_cpp=args.llama_cpp, quantize=args.quantize)
    llama_dir, quantize = mtm.ensure_llama_cpp(ns)
    prov = mtm.llama_cpp_provenance(llama_dir, quantize)
    files = {"BF16": out_dir / f"{NAME}-BF16.gguf"}
    log(f"convert_hf_to_gguf.py --outtype bf16 -> {files['BF16']}")
    mtm.convert_to_gguf(llama_dir, hf_dir, files["BF16"], NAME)
    for q in ("Q8_0", "Q4_K_M"):
        files[q] = out_dir / f"{NAME}-{q}.gguf"
        log(f"llama-quantize {q} -> {files[q]}")
        mtm.quantize_gguf(quantize, files["BF16"], files[q], q)

    import gguf
    r = gguf.GGUFReader(files["BF16"])
    kv = {f.name: f.contents() for f in r.fields.values()
          if not f.name.startswith("tokenizer.ggml.") or f.name in ("tokenizer.ggml.pre", "tokenizer.ggml.model",
                                                                    "tokenizer.ggml.bos_token_id",
                                                                    "tokenizer.ggml.eos_token_id",
                                                                    "tokenizer.ggml.padding_token_id",
                                                                    "tokenizer.ggml.add_bos_token",
                                                                    "tokenizer.ggml.add_eos_token")}
    assert kv["general.architecture"] == "deepseek2" and kv["tokenizer.ggml.pre"] == "deepseek-v3", kv
    assert "tokenizer.chat_template" in kv
    del r

    # held-out perplexity of each GGUF's weights (dequantized by the gguf package) through HF's model
    tok = Tokenizer.from_file(str(WORK / "tokenizer" / "tokenizer.json"))
    held_ids = tok.encode((DATA / "heldout.txt").read_text(encoding="utf-8"), add_special_tokens=False).ids
    seq_len = res["hyper"]["seq_len"]
    cap = 4000 if test else args.eval_tokens
    torch.set_num_threads(os.cpu_count() or 1)
    cfg_e = make_config(tiny)
    cfg_e._attn_implementation = "sdpa"
    ref_model = transformers.DeepseekV3ForCausalLM.from_pretrained(hf_dir, dtype=torch.float32,
                                                                   attn_implementation="sdpa")
    ref_model.eval()
    dev = torch.device("cpu")
    gg = {}
    t0 = time.time()
    tap = RouterTap(ref_model)
    ref = perplexity(ref_model, held_ids, seq_len, 8, dev, tap=tap, max_tokens=cap)
    ref_routers = router_stats(tap)
    log(f"HF checkpoint (CPU, float32): held-out ppl {ref['ppl']:.4f} over {ref['tokens']} tokens "
        f"({time.time() - t0:.0f} s)")
    sd_keys = set(ref_model.state_dict())
    llama_logits = mtm.build_llama_logits(llama_dir, quantize)
    window = windows(held_ids, seq_len)[0]
    for ft, p in files.items():
        st = mtm.gguf_to_hf_state(p, cfg_e)
        sd = ref_model.state_dict()
        with torch.no_grad():
            for k, v in st.items():
                sd[k].copy_(v.to(sd[k].dtype))
        assert set(st) == {k for k in sd_keys if "rotary_emb" not in k}, sorted(set(st) ^ sd_keys)
        t0 = time.time()
        tap.reset()
        e = perplexity(ref_model, held_ids, seq_len, 8, dev, tap=tap, max_tokens=cap)
        gg[ft] = {"file": p.name, "bytes": p.stat().st_size, "sha256": mtm.sha256(p),
                  "tensor_types": mtm.type_histogram(p), "heldout": e, "routers_heldout": router_stats(tap)}
        log(f"{p.name}: {p.stat().st_size / 1e6:.2f} MB, held-out ppl {e['ppl']:.4f} ({time.time() - t0:.0f} s)")
        if llama_logits is not None:
            gg[ft]["llama_cpp_check"] = llama_cpp_window(llama_logits, p, ref_model, window)
            log("  llama.cpp on the first held-out window: " +
                ", ".join(f"{k} {v:.4g}" for k, v in gg[ft]["llama_cpp_check"].items() if not isinstance(v, str)))

    tok_check = None
    tok_exe = build_llama_tokenize(llama_dir, quantize)
    if tok_exe is not None:
        chat = corpus.render_chat([{"role": "system", "content": "You are a helpful assistant."},
                                   {"role": "user", "content": "Quote Genesis 1:3."},
                                   {"role": "assistant", "content": "Genesis 1:3 (KJV): And God said, Let there be "
                                                                    "light: and there was light."}])
        tok_check = llama_tokenize_check(tok_exe, files["Q4_K_M"], tok, {
            "heldout.txt": ((DATA / "heldout.txt").read_text(encoding="utf-8"), False),
            "chat (special tokens parsed)": (chat, True)})
        log(f"llama.cpp tokenizer vs HF: {tok_check}")
    tap.close()
    export = {"hf_checkpoint_cpu": ref, "routers_heldout_cpu": ref_routers, "ggufs": gg, "llama_cpp_tokenizer_check": tok_check, "gguf_metadata": {k: _short(v) for k, v in kv.items()},
              "llama_cpp": prov, "eval_tokens_cap": cap,
              "packages": {p: _version(p) for p in ("torch", "transformers", "tokenizers", "gguf", "numpy")}}
    dest_logs = LOGS if not test else WORK / "logs-test"
    dest_logs.mkdir(parents=True, exist_ok=True)
    jdump(export, dest_logs / "export.json")
    shutil.copy(res_dir / "results.json", dest_logs / "results.json")
    if (ckpt / "train.log").exists():
        shutil.copy(ckpt / "train.log", dest_logs / "train.log")
    if not test:
        tdir = MODELS / f"{NAME}-tokenizer"
        tdir.mkdir(parents=True, exist_ok=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(WORK / "tokenizer" / f, tdir / f)
    others = []
    for d in args.compare or []:
        o = json.loads((Path(d) / "results.json").read_text(encoding="utf-8"))
        others += [dict(r, call=Path(d).name) for r in o["runs"]]
    plot(res, (IMG if not test else WORK) / "training-loss.png", others)
    report(res, export, dest_logs / "report.md")
    log(f"export done: {', '.join(str(p) for p in files.values())}")


# Informational: llama.cpp's own tokenizer (tokenizer.ggml.pre = deepseek-v3) on the held-out text and on a chat
# prompt, against the HF tokenizer. Our own small program against llama.h, linked with the static libraries of
# the llama-quantize build (as tools/make_test_models.py does for logits); built into tools/train/work/.
_LLAMA_TOKENIZE_CPP = r"""
#include "llama.h"
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
static void quiet(enum ggml_log_level, const char *, void *) {}
int main(int argc, char ** argv) {  // MODEL.gguf TEXT_FILE PARSE_SPECIAL(0/1): token ids, one a line, to stdout
    if (argc != 4) return 2;
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    std::ifstream in(argv[2], std::ios::binary);
    std::stringstream ss; ss << in.rdbuf();
    const std::string text = ss.str();
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::vector<llama_token> toks(text.size() + 16);
    int n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), toks.data(), (int32_t) toks.size(), false,
                           argv[3][0] == '1');
    if (n < 0) { fprintf(stderr, "tokenize failed\n"); return 1; }
    for (int i = 0; i < n; ++i) printf("%d\n", toks[i]);
    llama_model_free(model);
    return 0;
}
"""


def build_llama_tokenize(llama_dir: Path, quantize: Path) -> Path | None:
    build = quantize.parent.parent
    libs = [build / "src" / "libllama.a", build / "ggml" / "src" / "libggml.a",
            build / "ggml" / "src" / "libggml-cpu.a", build / "ggml" / "src" / "libggml-base.a"]
    if not all(p.exists() for p in libs) or shutil.which("c++") is None:
        return None
    src, exe = WORK / "llama-tokenize-check.cpp", WORK / "llama-tokenize-check"
    if not (exe.exists() and src.exists() and src.read_text() == _LLAMA_TOKENIZE_CPP):
        src.write_text(_LLAMA_TOKENIZE_CPP)
        r = subprocess.run(["c++", "-O2", "-std=c++17", f"-I{llama_dir / 'include'}",
                            f"-I{llama_dir / 'ggml' / 'include'}", str(src), "-o", str(exe), *map(str, libs),
                            "-lpthread", "-ldl", "-lm"], capture_output=True, text=True, errors="replace")
        if r.returncode != 0:
            log("llama.cpp tokenizer check skipped: cannot build the helper\n" + r.stderr[-2000:])
            return None
    return exe


def llama_tokenize_check(exe: Path, gguf_path: Path, tok, texts: dict) -> dict:
    import tempfile

    out = {}
    for name, (text, special) in texts.items():
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([str(exe), str(gguf_path), f.name, "1" if special else "0"], capture_output=True,
                               text=True)
        finally:
            os.unlink(f.name)
        if r.returncode != 0:
            out[name] = {"error": r.stderr.strip()[-300:]}
            continue
        lc = [int(x) for x in r.stdout.split()]
        hf = tok.encode(text, add_special_tokens=False).ids
        first = next((i for i, (a, b) in enumerate(zip(lc, hf)) if a != b), None)
        out[name] = {"hf_tokens": len(hf), "llama_cpp_tokens": len(lc), "identical": lc == hf,
                     "first_difference": first if first is not None else (None if len(lc) == len(hf) else
                                                                          min(len(lc), len(hf)))}
    return out


def llama_cpp_window(exe: Path, gguf_path: Path, model, tokens: list[int]) -> dict:
    """Informational: llama.cpp's own logits (CPU, one batch) for one window of tokens, against HF's with the
    same file's weights. llama.cpp rounds activations, so it is close, not exact."""
    import numpy as np
    import tempfile
    import torch

    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "logits.f32"
        r = subprocess.run([str(exe), str(gguf_path), str(f), *map(str, tokens)], capture_output=True, text=True,
                           errors="replace")
        if r.returncode != 0:
            return {"error": r.stderr.strip()[-300:]}
        lc = np.fromfile(f, dtype="<f4").reshape(len(tokens), -1).astype(np.float64)
    with torch.no_grad():
        hf = model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0].double().numpy()
    rel = np.linalg.norm(lc - hf, axis=1) / np.linalg.norm(hf, axis=1)

    def nll(x):
        x = x - x.max(1, keepdims=True)
        lp = x - np.log(np.exp(x).sum(1, keepdims=True))
        return float(-lp[np.arange(len(tokens) - 1), tokens[1:]].mean())

    return {"tokens": len(tokens), "rel_l2_mean": float(rel.mean()), "rel_l2_max": float(rel.max()),
            "top1_agreement": float((lc.argmax(1) == hf.argmax(1)).mean()), "ppl_hf": math.exp(nll(hf)),
            "ppl_llama_cpp": math.exp(nll(lc))}


def _short(v):
    if isinstance(v, str) and len(v) > 200:
        return v[:200] + f"... ({len(v)} chars)"
    if isinstance(v, list) and len(v) > 20:
        return f"[{len(v)} values]"
    return v


def _version(p):
    from importlib.metadata import version
    try:
        return version(p)
    except Exception:  # noqa: BLE001
        return None


def plot(res: dict, path: Path, others: list | None = None) -> None:
    """Left: validation loss of every run (this call's and, dashed/faint, earlier calls' from --compare) and the
    kept run's training loss; right: the kept run's expert load balance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(13, 5))
    runs = [dict(r, call=None) for r in res["runs"]] + (others or [])
    for i, r in enumerate(runs):
        kept = r["call"] is None and r["label"] == res["chosen_run"]
        ep = [e["epoch"] for e in r["evals"]]
        name = r["label"] + (f" ({r['call']})" if r["call"] else "")
        ax[0].plot(ep, [e["val_loss"] for e in r["evals"]], "o-" if kept else ".-", color=f"C{i}",
                   ms=3, lw=2.0 if kept else 1.0, alpha=1.0 if kept or r["call"] is None else 0.6,
                   label=f"validation, {name}" + (" [kept]" if kept else ""))
        if kept:
            h = r["history"]
            ax[0].plot([x["epoch"] for x in h], [x["loss"] for x in h], color=f"C{i}", lw=0.8, alpha=0.6,
                       label=f"training (25-step mean, with dropout), {name}")
            ax[1].plot([x["epoch"] for x in h], [x["max_load_over_mean"] for x in h], color=f"C{i}")
    ax[0].axhline(res["heldout"]["trained"]["nll"], color="gray", ls=":", label="held-out text, kept model (bf16)")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("cross-entropy (nats/token)")
    ax[0].set_ylim(0.5, 5.5)
    ax[0].legend(fontsize=7, loc="lower left")
    ax[0].grid(alpha=0.3)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("busiest expert's load / mean (worst MoE layer, one batch)")
    ax[1].set_title("kept run: expert load with bias-only (aux-loss-free) balancing", fontsize=9)
    ax[1].set_ylim(bottom=0)
    ax[1].grid(alpha=0.3)
    fig.suptitle(f"{NAME}: {res['parameters'] / 1e6:.1f} M parameters; kept run {res['chosen_run']} "
                 f"({res['steps']} steps, {res['train_seconds']:.0f} s on one {res['device']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res: dict, export: dict, path: Path) -> None:
    """Markdown tables for docs/training.md."""
    L = []
    ho = res["heldout"]
    L.append("| model | held-out tokens | perplexity | nats/token |\n|---|---|---|---|")
    L.append(f"| untrained (seeded init) | {ho['untrained']['tokens']} | {ho['untrained']['ppl']:.1f} | "
             f"{ho['untrained']['nll']:.3f} |")
    L.append(f"| trained, HF on the GPU (bf16 weights, float32 compute) | {ho['trained']['tokens']} | "
             f"{ho['trained']['ppl']:.3f} | {ho['trained']['nll']:.4f} |")
    c = export["hf_checkpoint_cpu"]
    L.append(f"| trained, HF checkpoint on the CPU (float32) | {c['tokens']} | {c['ppl']:.3f} | {c['nll']:.4f} |")
    for ft, g in export["ggufs"].items():
        e = g["heldout"]
        L.append(f"| `{g['file']}` weights (dequantized), HF on the CPU | {e['tokens']} | {e['ppl']:.3f} | "
                 f"{e['nll']:.4f} |")
    L.append("")
    routers = export["routers_heldout_cpu"]
    E = len(next(iter(routers.values()))["share"])
    L.append("| layer | " + " | ".join(str(e) for e in range(E)) + " | max/mean | min/mean |")
    L.append("|---" * (E + 3) + "|")
    for li, r in routers.items():
        L.append(f"| {li} | " + " | ".join(f"{s * 100:.1f}" for s in r["share"]) +
                 f" | {r['max_over_mean']:.2f} | {r['min_over_mean']:.2f} |")
    L.append("")
    L.append("| weights | " + " | ".join(f"layer {li} max/mean, min/mean" for li in routers) + " | choices that "
             "differ from the checkpoint's counts (sum over layers of half the L1 distance) |")
    L.append("|---" * (len(routers) + 2) + "|")
    for name, rr in [("HF checkpoint", routers)] + [(g["file"], g["routers_heldout"]) for g in export["ggufs"].values()]:
        moved = sum(sum(abs(a - b) for a, b in zip(rr[li]["counts"], routers[li]["counts"])) // 2 for li in routers)
        L.append(f"| {name} | " + " | ".join(f"{rr[li]['max_over_mean']:.2f}, {rr[li]['min_over_mean']:.2f}"
                                             for li in routers) + f" | {moved} |")
    L.append("")
    L.append("| file | bytes | MB | tensor types |\n|---|---|---|---|")
    for ft, g in export["ggufs"].items():
        L.append(f"| `{g['file']}` | {g['bytes']:,} | {g['bytes'] / 1e6:.2f} | " +
                 ", ".join(f"{k} {v}" for k, v in g["tensor_types"].items()) + " |")
    L.append("")
    for s in res["samples"]:
        head = (f"system: {s['system']!r}, " if s.get("system") else "") + f"user: {s['prompt']!r}" if s["chat"] \
            else f"text: {s['prompt']!r}"
        L.append(f"* {head}\n  → {s['output']!r}")
    path.write_text("\n".join(L) + "\n", encoding="utf-8")


# ============================================================================================= main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["all", "prepare", "train", "export"], default="all")
    p.add_argument("--out", default=str(WORK / "ckpt"), help="train: where the checkpoint and logs go")
    p.add_argument("--ckpt", default=None, help="export: the train stage's output folder (default: --out)")
    p.add_argument("--tiny", action="store_true", help="a 2-layer model and a few steps (pipeline test)")
    p.add_argument("--smoke", action="store_true", help="the real model, but a few steps (pipeline test)")
    p.add_argument("--time-budget", type=float, default=None, help="train: seconds of training, all runs together (default 440)")
    p.add_argument("--epochs", default=None,
                   help="train: comma-separated runs EPOCHS[:DROPOUT], each from the same init, sharing the time "
                        "budget in proportion to their epochs; the run with the best validation loss is kept "
                        f"(default {RUNS})")
    p.add_argument("--bias-update", type=float, default=None, help="train: u of the bias update (default 1e-3)")
    p.add_argument("--steps", type=int, default=None, help="train: a fixed number of steps (tests)")
    p.add_argument("--eval-tokens", type=int, default=None, help="export: cap on held-out tokens for GGUF evals")
    p.add_argument("--compare", nargs="*", default=None,
                   help="export: earlier train-stage outputs whose runs are drawn in the loss plot too")
    p.add_argument("--llama-cpp", default=None)
    p.add_argument("--quantize", default=None)
    args = p.parse_args()
    if args.ckpt is None:
        args.ckpt = args.out
    if args.stage in ("all", "prepare"):
        stage_prepare(args)
    if args.stage in ("all", "train"):
        stage_train(args)
    if args.stage in ("all", "export"):
        stage_export(args)


if __name__ == "__main__":
    main()
