#!/usr/bin/env python3
"""(Re)generate tests/data/models/: tiny DeepSeek-architecture GGUF models with exact reference logits.

    python tools/make_test_models.py            # everything (fetches/builds llama.cpp tools into .deps/ if needed)

For each model in MODELS:
  1. a HF transformers model (DeepseekV3ForCausalLM / DeepseekV2ForCausalLM) with seeded random weights, every
     value rounded to bf16, saved as a HF checkpoint (original DeepSeek tensor layout) + a tiny trained tokenizer;
  2. BF16.gguf by llama.cpp's own convert_hf_to_gguf.py (--outtype bf16), imported as a module (see _convert);
  3. Q8_0.gguf and Q4_K_M.gguf by llama.cpp's own llama-quantize from BF16.gguf;
  4. hf-<type>.f32: logits of HF's modelling code in float64 (eager attention) over TOKENS, with the weights
     read back from that GGUF (gguf.quants.dequantize), float32 little-endian, row-major (tokens x vocab);
  5. legacy-layout copies (tools/make_legacy_kvb.py), whose logits are those of their source file;
  6. meta.json and SOURCE.md.

Run with the Python packages of tools/requirements.txt. Output is deterministic for fixed package versions.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / ".deps"
OUT_DEFAULT = ROOT / "tests" / "data" / "models"

LLAMA_CPP_PYTHON_VERSION = "0.3.36"

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

SEED = 20240601
N_TOKENS = 64
# Tokens are re-drawn (deterministically) until every routing decision of every file has at least this margin
# between the last chosen and the first rejected candidate (expert, and group for V3), so that an f32
# implementation cannot pick different experts than the float64 reference, and one that rounds activations
# (bf16 / Q8 like llama.cpp) rarely does.
MIN_ROUTING_MARGIN = 5e-3

_YARN = dict(rope_type="yarn", rope_theta=10000.0, factor=40.0, original_max_position_embeddings=4096,
             beta_fast=32.0, beta_slow=1.0)

# Dimensions: hidden 256 and moe_intermediate 256 keep rows K-quantizable (multiples of 256), so Q4_K_M really
# uses Q4_K/Q6_K. One expert costs ~1 MB over all files of a model, so depth (1 dense + 1 MoE layer), expert
# count, vocabulary and attention ranks are cut to keep tests/data/models/ near 20 MB. V3 keeps real
# group-limited routing (3 groups of 2, 2 kept, then top-2 of the 4 candidates); the dense ffn (320) differs
# from the expert ffn (256) so that mixing them up cannot go unnoticed.
MODELS = {
    "dsv3-tiny": dict(
        arch="DeepseekV3ForCausalLM",
        like="DeepSeek-V3/R1",
        legacy_from="BF16",
        config=dict(
            vocab_size=288, hidden_size=256, intermediate_size=320, moe_intermediate_size=256,
            num_hidden_layers=2, first_k_dense_replace=1,
            num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=64, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=32,
            n_routed_experts=6, num_experts_per_tok=2, n_group=3, topk_group=2, n_shared_experts=1,
            scoring_func="sigmoid", topk_method="noaux_tc", norm_topk_prob=True, routed_scaling_factor=2.5,
            rope_parameters=dict(_YARN, mscale=1.0, mscale_all_dim=1.0), rope_interleave=True,
            max_position_embeddings=163840, rms_norm_eps=1e-6, num_mtp_layers=0,
            bos_token_id=0, eos_token_id=1, tie_word_embeddings=False, attention_bias=False,
        ),
    ),
    "dsv2lite-tiny": dict(
        arch="DeepseekV2ForCausalLM",
        like="DeepSeek-V2-Lite",
        legacy_from="Q8_0",
        config=dict(
            vocab_size=288, hidden_size=256, intermediate_size=320, moe_intermediate_size=256,
            num_hidden_layers=2, first_k_dense_replace=1,
            num_attention_heads=4, num_key_value_heads=4,
            q_lora_rank=None, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=32,
            n_routed_experts=3, num_experts_per_tok=2, n_group=None, topk_group=None, n_shared_experts=2,
            scoring_func="softmax", topk_method="greedy", norm_topk_prob=False, routed_scaling_factor=1.0,
            rope_parameters=dict(_YARN, mscale=0.707, mscale_all_dim=0.707),
            max_position_embeddings=163840, rms_norm_eps=1e-6,
            bos_token_id=0, eos_token_id=1, tie_word_embeddings=False, attention_bias=False,
        ),
    ),
}
QUANTS = ["Q8_0", "Q4_K_M"]


def log(*a):
    print(*a, flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# llama.cpp (from the llama-cpp-python sdist): converter + llama-quantize
# ----------------------------------------------------------------------------------------------------------

def sdist_dir() -> Path:
    return DEPS / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}"


def ensure_llama_cpp(args) -> tuple[Path, Path]:
    """Return (llama.cpp source dir, llama-quantize path); download/build into .deps/ when missing."""
    llama_dir = Path(args.llama_cpp) if args.llama_cpp else sdist_dir() / "vendor" / "llama.cpp"
    if not (llama_dir / "convert_hf_to_gguf.py").exists():
        if args.llama_cpp:
            raise SystemExit(f"{llama_dir}: no convert_hf_to_gguf.py")
        DEPS.mkdir(parents=True, exist_ok=True)
        tgz = DEPS / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
        if not tgz.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
                            "--no-binary", ":all:", "--no-deps", "-d", str(DEPS)], check=True)
        with tarfile.open(tgz) as tf:
            tf.extractall(DEPS, filter="data")
    quantize = Path(args.quantize) if args.quantize else DEPS / "llama-build" / "bin" / "llama-quantize"
    if not quantize.exists():
        if args.quantize:
            raise SystemExit(f"{quantize}: not found")
        build = DEPS / "llama-build"
        subprocess.run(["cmake", "-S", str(llama_dir), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DGGML_NATIVE=OFF", "-DGGML_AMX=OFF", "-DLLAMA_CURL=OFF", "-DGGML_OPENMP=OFF",
                        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_OPENSSL=OFF",
                        "-DBUILD_SHARED_LIBS=OFF"], check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "llama-quantize", "-j", str(os.cpu_count() or 2)],
                       check=True)
    return llama_dir, quantize


def llama_cpp_provenance(llama_dir: Path, quantize: Path) -> dict:
    prov = {"llama_cpp_python_version": LLAMA_CPP_PYTHON_VERSION, "llama_cpp_commit": None}
    tgz = DEPS / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    if tgz.exists():
        prov["llama_cpp_python_sdist_sha256"] = sha256(tgz)
    changelog = llama_dir.parent.parent / "CHANGELOG.md"
    if changelog.exists():
        # the sdist carries no git metadata; its CHANGELOG names the vendored llama.cpp commit per release
        m = re.search(rf"## \[{re.escape(LLAMA_CPP_PYTHON_VERSION)}\](.*?)(?=\n## \[)", changelog.read_text(), re.S)
        if m and (c := re.search(r"ggml-org/llama\.cpp@([0-9a-f]{7,40})", m.group(1))):
            prov["llama_cpp_commit"] = c.group(1)
    return prov


def _convert_entry(llama_dir: str, hf_dir: str, out: str, name: str) -> None:
    """Child process: run llama.cpp's convert_hf_to_gguf.py main() with one patch.

    Runs in its own process so that the converter's vendored gguf-py (which it puts on sys.path) does not mix
    with the installed `gguf` package used by the rest of this script.
    """
    sys.path.insert(0, llama_dir)
    sys.argv = ["convert_hf_to_gguf.py", hf_dir, "--outtype", "bf16", "--outfile", out, "--model-name", name]
    import convert_hf_to_gguf as conv  # noqa: E402  (llama.cpp's converter, unmodified)
    from conversion.base import TextModel  # noqa: E402

    # PATCH: the converter identifies a BPE pre-tokenizer by hashing the token ids it produces for a fixed text
    # and refuses unknown hashes. Our tokenizer is a tiny one trained here, so no hash can match; we declare it
    # DeepSeek-V3's ("deepseek-v3"), which is what tokenizer.ggml.pre says in real DeepSeek V2/V3 GGUFs.
    # Nothing else in the converter is changed (no llama.cpp file is edited).
    TextModel.get_vocab_base_pre = lambda self, tokenizer: "deepseek-v3"
    conv.main()


def convert_to_gguf(llama_dir: Path, hf_dir: Path, out: Path, name: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("NO_LOCAL_GGUF", None)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import make_test_models as m; "
            "m._convert_entry(*sys.argv[2:])")
    r = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(llama_dir), str(hf_dir),
                        str(out), name], env=env, capture_output=True, text=True, errors="replace")
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"converter failed for {hf_dir}")


def quantize_gguf(quantize: Path, src: Path, dst: Path, qtype: str) -> list[str]:
    """llama-quantize src dst qtype. Returns the extra arguments used (for provenance)."""
    import gguf

    extra = []
    r = gguf.GGUFReader(src)
    arch = r.get_field("general.architecture").contents()
    if r.get_field(f"{arch}.attention.q_lora_rank") is None:
        # llama.cpp decides "no q LoRA" (DeepSeek-V2-Lite) by the layer count (26/27), so for our 2-layer
        # model it demands attention.q_lora_rank. Tell it 0 (= plain attn_q) for loading only; llama-quantize
        # also writes the override into its output, so the key is removed again below (tensors untouched).
        extra = ["--override-kv", f"{arch}.attention.q_lora_rank=int:0"]
    p = subprocess.run([str(quantize), *extra, str(src), str(dst), qtype, str(os.cpu_count() or 2)],
                       capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"llama-quantize {qtype} failed")
    if extra:
        remove_keys(dst, {f"{arch}.attention.q_lora_rank"})
    return extra


def remove_keys(path: Path, keys: set[str]) -> None:
    """Rewrite a GGUF without some metadata keys; everything else (key order, tensors) is copied as is."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(path)
    tmp = path.with_suffix(".tmp")
    w = gguf.GGUFWriter(tmp, r.get_field("general.architecture").contents(), endianess=r.endianess)
    if (al := r.get_field("general.alignment")) is not None:
        w.data_alignment = int(al.contents())
    for f in r.fields.values():
        if f.name == "general.architecture" or f.name.startswith("GGUF.") or f.name in keys:
            continue
        w.add_key_value(f.name, f.contents(), f.types[0],
                        sub_type=f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        w.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in r.tensors:
        w.write_tensor_data(np.asarray(t.data), tensor_endianess=r.endianess)
    w.close()
    del r
    os.replace(tmp, path)


# Informational cross-check: llama.cpp's own logits for each file (CPU, all positions in one batch), compared
# with the references. llama.cpp rounds activations, so it is close but not exact. The helper is our own tiny
# program against llama.h, linked with the static libraries that the llama-quantize build left behind.
_LLAMA_LOGITS_CPP = r"""
#include "llama.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
static void quiet(enum ggml_log_level, const char *, void *) {}
int main(int argc, char ** argv) {  // MODEL.gguf OUT.f32 [--q-lora-rank-0] TOKEN...
    if (argc < 4) { fprintf(stderr, "usage: %s MODEL.gguf OUT.f32 [--q-lora-rank-0] TOKEN...\n", argv[0]); return 2; }
    int a = 3;
    llama_model_kv_override ov[2] = {};
    auto mp = llama_model_default_params();
    if (!strcmp(argv[a], "--q-lora-rank-0")) {
        ++a;
        ov[0].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
        snprintf(ov[0].key, sizeof ov[0].key, "deepseek2.attention.q_lora_rank");
        ov[0].val_i64 = 0;
        mp.kv_overrides = ov;
    }
    std::vector<llama_token> toks;
    for (; a < argc; ++a) toks.push_back(atoi(argv[a]));
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    auto cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t) toks.size();
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }
    llama_batch b = llama_batch_init((int32_t) toks.size(), 0, 1);
    for (size_t i = 0; i < toks.size(); ++i) {
        b.token[i] = toks[i]; b.pos[i] = (llama_pos) i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = (int32_t) toks.size();
    if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE * f = fopen(argv[2], "wb");
    if (!f) return 1;
    for (size_t i = 0; i < toks.size(); ++i) fwrite(llama_get_logits_ith(ctx, (int32_t) i), sizeof(float), nv, f);
    fclose(f);
    llama_batch_free(b); llama_free(ctx); llama_model_free(model);
    return 0;
}
"""


def build_llama_logits(llama_dir: Path, quantize: Path) -> Path | None:
    build = quantize.parent.parent
    libs = [build / "src" / "libllama.a", build / "ggml" / "src" / "libggml.a",
            build / "ggml" / "src" / "libggml-cpu.a", build / "ggml" / "src" / "libggml-base.a"]
    if not all(p.exists() for p in libs) or shutil.which("c++") is None:
        log("llama.cpp check skipped: static libraries of the llama-quantize build not found")
        return None
    exe = build / "bin" / "hmoe-llama-logits"
    src = build / "hmoe-llama-logits.cpp"
    if not (exe.exists() and src.exists() and src.read_text() == _LLAMA_LOGITS_CPP):
        src.write_text(_LLAMA_LOGITS_CPP)
        r = subprocess.run(["c++", "-O2", "-std=c++17", f"-I{llama_dir / 'include'}",
                            f"-I{llama_dir / 'ggml' / 'include'}", str(src), "-o", str(exe), *map(str, libs),
                            "-lpthread", "-ldl", "-lm"], capture_output=True, text=True, errors="replace")
        if r.returncode != 0:
            log("llama.cpp check skipped: cannot build the helper\n" + r.stderr[-2000:])
            return None
    return exe


def llama_cpp_check(exe: Path, out: Path, meta: dict) -> dict:
    """llama.cpp vs hf-*.f32 for every GGUF: mean/max relative L2 per token, top-1 agreement, mean KL(hf||llama)."""
    import numpy as np

    toks, V = meta["tokens"], meta["vocab"]
    res = {}
    for fn, g in meta["ggufs"].items():
        extra = ["--q-lora-rank-0"] if meta["config"].get("q_lora_rank") is None else []
        with tempfile.TemporaryDirectory() as td:
            f = Path(td) / "logits.f32"
            r = subprocess.run([str(exe), str(out / fn), str(f), *extra, *map(str, toks)],
                               capture_output=True, text=True, errors="replace")
            if r.returncode != 0:
                res[fn] = {"error": r.stderr.strip()[-500:]}
                continue
            lc = np.fromfile(f, dtype="<f4").reshape(len(toks), V).astype(np.float64)
        hf = np.fromfile(out / g["logits"], dtype="<f4").reshape(len(toks), V).astype(np.float64)
        rel = np.linalg.norm(lc - hf, axis=1) / np.linalg.norm(hf, axis=1)

        def log_softmax(x):
            x = x - x.max(1, keepdims=True)
            return x - np.log(np.exp(x).sum(1, keepdims=True))

        lp, lq = log_softmax(hf), log_softmax(lc)
        res[fn] = {"rel_l2_mean": float(rel.mean()), "rel_l2_max": float(rel.max()),
                   "top1_agreement": float((lc.argmax(1) == hf.argmax(1)).mean()),
                   "kl_mean": float((np.exp(lp) * (lp - lq)).sum(1).mean())}
        log(f"[{meta['name']}] llama.cpp vs {g['logits']} on {fn}: " +
            ", ".join(f"{k}={v:.3g}" for k, v in res[fn].items()))
    return res


# ----------------------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------------------

_WORDS = """the a an of to in on for with from by at as is are was were be been being it its this that these
those model expert router token layer attention head key value query cache weight matrix vector scale norm
rotary position context length sequence batch prefill decode sample logits softmax sigmoid group shared dense
sparse mixture latent rank project compress expand quantize block tensor file header library test check exact
float double half integer byte string number value error result input output first last next previous small
large tiny fast slow memory thread core compute kernel loop branch read write load store open close run stop
and or not if then else while return yes no one two three four five six seven eight nine ten""".split()


def corpus(seed: int, n_lines: int = 4000) -> list[str]:
    """Deterministic synthetic English-like text (no external data)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        if rng.random() < 0.5:
            words[0] = words[0].capitalize()
        s = " ".join(words) + rng.choice([".", ".", ",", "?", "!", ":", ";", " ->", "()", "[]"])
        lines.append(s)
    return lines


def make_tokenizer(vocab_size: int, seed: int, out_dir: Path) -> str:
    """Train a byte-level BPE of exactly vocab_size tokens; BOS id 0, EOS id 1. Returns sha256 of tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=1)
    tok.train_from_iterator(corpus(seed), trainer)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    assert tok.token_to_id(BOS) == 0 and tok.token_to_id(EOS) == 1
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": True, "add_eos_token": False,
        "bos_token": BOS, "eos_token": EOS, "pad_token": EOS,
        "clean_up_tokenization_spaces": False, "model_max_length": 163840,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return sha256(out_dir / "tokenizer.json")


# ----------------------------------------------------------------------------------------------------------
# HF model, weights
# ----------------------------------------------------------------------------------------------------------

def hf_classes(arch: str):
    import transformers
    cls = getattr(transformers, arch)
    cfg_cls = transformers.DeepseekV3Config if "V3" in arch else transformers.DeepseekV2Config
    return cls, cfg_cls


def make_config(spec: dict):
    _, cfg_cls = hf_classes(spec["arch"])
    cfg = cfg_cls(**spec["config"])
    cfg.architectures = [spec["arch"]]
    cfg._attn_implementation = "eager"  # plain matmul/softmax attention (no SDPA kernels)
    cfg._experts_implementation = "eager"  # the per-expert loop of the modelling file (no grouped_mm kernels)
    return cfg


def checkpoint_shapes(c) -> dict[str, tuple[int, ...]]:
    """Tensor names/shapes of the original DeepSeek checkpoint layout (what convert_hf_to_gguf.py reads)."""
    H, nh = c.hidden_size, c.num_attention_heads
    qk = c.qk_nope_head_dim + c.qk_rope_head_dim
    s: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c.vocab_size, H),
                                      "model.norm.weight": (H,), "lm_head.weight": (c.vocab_size, H)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = (H,)
        s[p + "post_attention_layernorm.weight"] = (H,)
        a = p + "self_attn."
        if c.q_lora_rank is None:
            s[a + "q_proj.weight"] = (nh * qk, H)
        else:
            s[a + "q_a_proj.weight"] = (c.q_lora_rank, H)
            s[a + "q_a_layernorm.weight"] = (c.q_lora_rank,)
            s[a + "q_b_proj.weight"] = (nh * qk, c.q_lora_rank)
        s[a + "kv_a_proj_with_mqa.weight"] = (c.kv_lora_rank + c.qk_rope_head_dim, H)
        s[a + "kv_a_layernorm.weight"] = (c.kv_lora_rank,)
        s[a + "kv_b_proj.weight"] = (nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank)
        s[a + "o_proj.weight"] = (H, nh * c.v_head_dim)
        m = p + "mlp."
        if i < c.first_k_dense_replace:
            s[m + "gate_proj.weight"] = (c.intermediate_size, H)
            s[m + "up_proj.weight"] = (c.intermediate_size, H)
            s[m + "down_proj.weight"] = (H, c.intermediate_size)
        else:
            E, F = c.n_routed_experts, c.moe_intermediate_size
            s[m + "gate.weight"] = (E, H)
            if getattr(c, "topk_method", None) == "noaux_tc":
                s[m + "gate.e_score_correction_bias"] = (E,)
            for e in range(E):
                s[m + f"experts.{e}.gate_proj.weight"] = (F, H)
                s[m + f"experts.{e}.up_proj.weight"] = (F, H)
                s[m + f"experts.{e}.down_proj.weight"] = (H, F)
            Fs = F * c.n_shared_experts
            s[m + "shared_experts.gate_proj.weight"] = (Fs, H)
            s[m + "shared_experts.up_proj.weight"] = (Fs, H)
            s[m + "shared_experts.down_proj.weight"] = (H, Fs)
    return s


def random_checkpoint(c, seed: int):
    """Seeded random weights, rounded to bf16. Each tensor has its own stream (seed, crc32(name))."""
    import numpy as np
    import torch

    ck = {}
    for name, shape in checkpoint_shapes(c).items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if name.endswith("norm.weight"):
            a = rng.uniform(0.6, 1.4, shape)
        elif name.endswith("e_score_correction_bias"):
            a = rng.uniform(-0.02, 0.1, shape)
        elif name.endswith("mlp.gate.weight"):
            a = rng.normal(0.0, 0.1, shape)
        else:
            a = rng.normal(0.0, 0.05, shape)
        ck[name] = torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return ck


def checkpoint_to_hf(ck: dict, c) -> dict:
    """Original checkpoint layout -> transformers 5.x parameter names (experts fused), float64."""
    import torch

    st = {}
    for name, t in ck.items():
        if ".mlp.experts." not in name:
            st[name] = t.to(torch.float64)
    for i in range(c.first_k_dense_replace, c.num_hidden_layers):
        m = f"model.layers.{i}.mlp.experts."
        E = c.n_routed_experts
        st[m + "gate_up_proj"] = torch.stack(
            [torch.cat([ck[m + f"{e}.gate_proj.weight"], ck[m + f"{e}.up_proj.weight"]], 0) for e in range(E)]
        ).to(torch.float64)
        st[m + "down_proj"] = torch.stack([ck[m + f"{e}.down_proj.weight"] for e in range(E)]).to(torch.float64)
    return st


# ----------------------------------------------------------------------------------------------------------
# float64 execution of HF's modelling code
# ----------------------------------------------------------------------------------------------------------

def _low_precision_dtypes():
    import torch
    return {torch.float32, torch.float16, torch.bfloat16, torch.complex64}


@contextlib.contextmanager
def strict_float64():
    """Run HF's DeepSeek modelling code entirely in float64.

    Even with a float64 model, transformers' DeepSeek code casts to float32 in places (RMSNorm, router logits,
    rotary tables, attention softmax, `.float()` on logits). Inside this context `torch.float32`/`torch.float`
    name float64 and `Tensor.float()` is `Tensor.double()`, so those casts keep float64; a TorchFunctionMode
    asserts that no single/half-precision tensor is produced. The modelling code itself is not modified.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    low = _low_precision_dtypes()
    saved = (torch.float32, torch.float, torch.Tensor.float)

    def tensors(x):
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, (list, tuple)):
            for y in x:
                yield from tensors(y)

    class NoLowPrecision(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tensors(out):
                if t.dtype in low:
                    raise AssertionError(f"{getattr(func, '__name__', func)} produced {t.dtype}")
            return out

    torch.float32 = torch.float64
    torch.float = torch.float64
    torch.Tensor.float = torch.Tensor.double
    try:
        with NoLowPrecision():
            yield
    finally:
        torch.float32, torch.float, torch.Tensor.float = saved


def build_hf_model(spec: dict, cfg):
    """HF model in float64 (built inside strict_float64 so the rotary inv_freq table is float64 too)."""
    import torch

    cls, _ = hf_classes(spec["arch"])
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with strict_float64():
            model = cls(cfg)
    finally:
        torch.set_default_dtype(prev)
    model.eval()
    assert model.config._attn_implementation == "eager" and model.config._experts_implementation == "eager"
    return model


def load_params(model, state: dict) -> None:
    import torch

    sd = model.state_dict()
    want = {k for k in sd if not k.endswith(("rotary_emb.inv_freq", "rotary_emb.original_inv_freq"))}
    assert set(state) == want, (sorted(set(state) ^ want))
    with torch.no_grad():
        for k, v in state.items():
            assert sd[k].shape == v.shape, (k, sd[k].shape, v.shape)
            sd[k].copy_(v.to(torch.float64))
            assert sd[k].dtype == torch.float64, k


class RoutingMargins:
    """Hooks the routers; records, per token and router, the score gap between the last selected and the first
    rejected candidate (experts; and groups for group-limited routing), recomputed in float64."""

    def __init__(self, model, cfg):
        import torch

        self.torch, self.cfg, self.expert, self.group, self.handles = torch, cfg, [], [], []
        for name, mod in model.named_modules():
            if name.endswith("mlp.gate") and hasattr(mod, "weight"):
                self.handles.append(mod.register_forward_hook(self._hook))

    def _hook(self, mod, inputs, output):
        torch, c = self.torch, self.cfg
        x = inputs[0].reshape(-1, c.hidden_size).to(torch.float64)
        logits = x @ mod.weight.to(torch.float64).T
        k = c.num_experts_per_tok
        if getattr(c, "topk_method", None) == "noaux_tc":
            s = logits.sigmoid() + mod.e_score_correction_bias.to(torch.float64)
            G, TG = c.n_group, c.topk_group
            g = s.view(s.shape[0], G, -1).topk(2, dim=-1).values.sum(-1)
            gs = g.sort(dim=-1, descending=True).values
            self.group.append(gs[:, TG - 1] - gs[:, TG] if TG < G else torch.ones_like(gs[:, 0]))
            keep = torch.zeros_like(g, dtype=torch.bool).scatter_(1, g.topk(TG, dim=-1).indices, True)
            s = s.masked_fill(~keep.repeat_interleave(c.n_routed_experts // G, dim=1), float("-inf"))
        else:
            s = logits.softmax(dim=-1)
        ss = s.sort(dim=-1, descending=True).values
        self.expert.append(ss[:, k - 1] - ss[:, k])

    def close(self):
        for h in self.handles:
            h.remove()

    def min_expert(self) -> float:
        return float(self.torch.stack(self.expert).min())

    def min_group(self) -> float:
        return float(self.torch.stack(self.group).min())

    def per_sequence(self, n_seq: int):
        """Smallest margin of each sequence of a batch (over tokens, routers, experts and groups)."""
        m = self.torch.stack(self.expert + self.group).min(0).values
        return m.view(n_seq, -1).min(-1).values


def search_tokens(model, cfg, states: dict, seed: int, min_margin: float, batch: int = 64, max_draws: int = 20000):
    """First seeded draw of N_TOKENS ids (BOS first) whose routing margins are >= min_margin with every weight
    set. Candidates are screened in batches with the stock forward (margins recomputed in float64 from the
    router inputs; the float32 islands only move them by ~1e-6); the result is re-checked in strict float64."""
    import torch

    for start in range(0, max_draws, batch):
        cands = [draw_tokens(seed * 100000 + a, cfg.vocab_size) for a in range(start, start + batch)]
        worst = torch.full((batch,), float("inf"), dtype=torch.float64)
        for st in states.values():
            load_params(model, st)
            rm = RoutingMargins(model, cfg)
            with torch.no_grad():
                model(input_ids=torch.tensor(cands), use_cache=False)
            rm.close()
            worst = torch.minimum(worst, rm.per_sequence(batch))
        ok = (worst >= min_margin).nonzero().flatten().tolist()
        if ok:
            return cands[ok[0]], start + ok[0]
    raise SystemExit(f"no token sequence with routing margins >= {min_margin} in {max_draws} draws")


def hf_logits(model, cfg, tokens: list[int], check_incremental: bool):
    """float64 prefill logits (tokens x vocab), routing margins, and (optionally) the max abs difference to an
    incremental decode with HF's own KV cache, and to stock HF (float32 islands kept)."""
    import torch
    from transformers import DynamicCache

    ids = torch.tensor([tokens], dtype=torch.long)
    extra = {}
    with torch.no_grad():
        rm = RoutingMargins(model, cfg)
        with strict_float64():
            logits = model(input_ids=ids, use_cache=False).logits[0]
        rm.close()
        assert logits.dtype == torch.float64
        extra["routing_margin_expert"] = rm.min_expert()
        if getattr(cfg, "topk_method", None) == "noaux_tc":
            extra["routing_margin_group"] = rm.min_group()
        if check_incremental:
            with strict_float64():
                cache = DynamicCache(config=cfg)
                steps = []
                for i in range(len(tokens)):
                    out = model(input_ids=ids[:, i:i + 1], past_key_values=cache, use_cache=True)
                    steps.append(out.logits[0, -1])
                inc = torch.stack(steps)
            extra["max_abs_diff_prefill_vs_incremental"] = float((inc - logits).abs().max())
            stock = model(input_ids=ids, use_cache=False).logits[0].to(torch.float64)
            extra["max_abs_diff_stock_hf_float32_islands"] = float((stock - logits).abs().max())
    return logits, extra


# ----------------------------------------------------------------------------------------------------------
# GGUF -> HF parameters
# ----------------------------------------------------------------------------------------------------------

_GGUF_TO_HF = {
    "attn_norm": "input_layernorm.weight", "ffn_norm": "post_attention_layernorm.weight",
    "attn_q": "self_attn.q_proj.weight", "attn_q_a": "self_attn.q_a_proj.weight",
    "attn_q_a_norm": "self_attn.q_a_layernorm.weight", "attn_q_b": "self_attn.q_b_proj.weight",
    "attn_kv_a_mqa": "self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_norm": "self_attn.kv_a_layernorm.weight",
    "attn_kv_b": "self_attn.kv_b_proj.weight", "attn_output": "self_attn.o_proj.weight",
    "ffn_gate": "mlp.gate_proj.weight", "ffn_up": "mlp.up_proj.weight", "ffn_down": "mlp.down_proj.weight",
    "ffn_gate_inp": "mlp.gate.weight", "exp_probs_b": "mlp.gate.e_score_correction_bias",
    "ffn_down_exps": "mlp.experts.down_proj",
    "ffn_gate_shexp": "mlp.shared_experts.gate_proj.weight", "ffn_up_shexp": "mlp.shared_experts.up_proj.weight",
    "ffn_down_shexp": "mlp.shared_experts.down_proj.weight",
}


def gguf_values(t):
    import gguf
    import numpy as np

    a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
    return a.reshape([int(x) for x in reversed(t.shape)])


def gguf_to_hf_state(path: Path, cfg) -> dict:
    """Every GGUF tensor, dequantized with gguf.quants.dequantize, as transformers 5.x float64 parameters.
    Understands both the current (attn_k_b/attn_v_b) and the legacy (attn_kv_b) layout."""
    import gguf
    import numpy as np
    import torch

    r = gguf.GGUFReader(path)
    T = {t.name: t for t in r.tensors}
    nh, nope, v, L = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    st, used = {}, set()

    def take(name):
        used.add(name)
        return gguf_values(T[name])

    st["model.embed_tokens.weight"] = take("token_embd.weight")
    st["model.norm.weight"] = take("output_norm.weight")
    st["lm_head.weight"] = take("output.weight")
    for i in range(cfg.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        for g, h in _GGUF_TO_HF.items():
            for suffix in (".weight", ".bias"):
                if b + g + suffix in T:
                    st[p + h] = take(b + g + suffix)
        if b + "attn_k_b.weight" in T:
            k = take(b + "attn_k_b.weight")  # (nh, L, nope): stored transposed per head by the converter
            vv = take(b + "attn_v_b.weight")  # (nh, v, L)
            st[p + "self_attn.kv_b_proj.weight"] = np.concatenate([k.transpose(0, 2, 1), vv], 1).reshape(
                nh * (nope + v), L)
        if b + "ffn_gate_exps.weight" in T:
            st[p + "mlp.experts.gate_up_proj"] = np.concatenate(
                [take(b + "ffn_gate_exps.weight"), take(b + "ffn_up_exps.weight")], axis=1)
    assert used == set(T), f"unused GGUF tensors: {sorted(set(T) - used)}"
    return {k: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for k, a in st.items()}


def type_histogram(path: Path) -> dict[str, int]:
    import gguf

    c = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(path).tensors)
    return dict(sorted(c.items()))


def tensor_types(path: Path) -> dict[str, str]:
    import gguf

    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}


# ----------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------

def draw_tokens(seed: int, vocab: int) -> list[int]:
    rng = random.Random(seed)
    return [0] + [rng.randrange(2, vocab) for _ in range(N_TOKENS - 1)]


def make_model(name: str, spec: dict, out_root: Path, work: Path, llama_dir: Path, quantize: Path,
               prov: dict, min_margin: float = MIN_ROUTING_MARGIN, llama_logits: Path | None = None) -> dict:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    t0 = time.time()
    seed = SEED + zlib.crc32(name.encode()) % 1000
    cfg = make_config(spec)
    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    # 1. HF checkpoint + tokenizer
    hf_dir = work / name
    hf_dir.mkdir(parents=True)
    tok_sha = make_tokenizer(cfg.vocab_size, SEED, hf_dir)
    ck = random_checkpoint(cfg, seed)
    save_file(ck, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(hf_dir)
    ref_state = checkpoint_to_hf(ck, cfg)

    # sanity: HF's own loader reads our checkpoint layout into the same parameters
    cls, _ = hf_classes(spec["arch"])
    loaded = cls.from_pretrained(hf_dir, dtype=torch.float64).state_dict()
    for k, v in ref_state.items():
        assert torch.equal(loaded[k].to(torch.float64), v), f"from_pretrained mismatch: {k}"
    del loaded

    # 2./3. GGUF files
    files = {"BF16": out / "BF16.gguf"}
    quant_args: dict[str, list[str]] = {}
    log(f"[{name}] convert_hf_to_gguf.py --outtype bf16")
    convert_to_gguf(llama_dir, hf_dir, files["BF16"], name)
    for q in QUANTS:
        log(f"[{name}] llama-quantize {q}")
        files[q] = out / f"{q}.gguf"
        quant_args[q] = quantize_gguf(quantize, files["BF16"], files[q], q)

    # BF16.gguf must hold exactly the generated weights
    bf16_state = gguf_to_hf_state(files["BF16"], cfg)
    assert set(bf16_state) == set(ref_state)
    for k in ref_state:
        assert torch.equal(bf16_state[k], ref_state[k]), f"BF16.gguf differs from the HF weights: {k}"

    # 4. logits; tokens re-drawn until routing has a safe margin in every file
    model = build_hf_model(spec, cfg)
    states = {ft: (bf16_state if ft == "BF16" else gguf_to_hf_state(p, cfg)) for ft, p in files.items()}
    tokens, draw = search_tokens(model, cfg, states, seed, min_margin)
    log(f"[{name}] tokens: draw {draw} has routing margins >= {min_margin:g} in every file")
    results = {}
    sanity = {}
    for ft, st in states.items():
        load_params(model, st)
        logits, extra = hf_logits(model, cfg, tokens, check_incremental=True)
        results[ft] = logits
        margin = min(v for k, v in extra.items() if k.startswith("routing_margin"))
        assert margin >= min_margin, f"strict float64 routing margin {margin} < {min_margin}"
        np.asarray(logits.numpy(), dtype="<f4").tofile(out / f"hf-{ft}.f32")
        top1 = logits.argmax(-1)
        extra.update(logits_std=float(logits.std()), logits_max_abs=float(logits.abs().max()),
                     distinct_top1=int(top1.unique().numel()))
        sanity[ft] = extra
        log(f"[{name}] hf-{ft}.f32: " + ", ".join(f"{k}={v:.3g}" for k, v in extra.items()))
    bf = np.fromfile(out / "hf-BF16.f32", dtype="<f4").reshape(len(tokens), -1)
    for q in QUANTS:
        qq = np.fromfile(out / f"hf-{q}.f32", dtype="<f4").reshape(len(tokens), -1)
        sanity[q]["top1_agreement_with_BF16"] = float((qq.argmax(-1) == bf.argmax(-1)).mean())

    # 5. legacy attn_kv_b layout
    sys.path.insert(0, str(Path(__file__).parent))
    import make_legacy_kvb

    src_type = spec["legacy_from"]
    legacy = out / f"{src_type}-legacy-kvb.gguf"
    log(f"[{name}] make_legacy_kvb.py {files[src_type].name} {legacy.name}")
    make_legacy_kvb.convert(files[src_type], legacy, verify=True)
    lstate = gguf_to_hf_state(legacy, cfg)
    for k, v in states[src_type].items():
        assert torch.equal(lstate[k], v), f"legacy file changes weight {k}"
    load_params(model, lstate)
    ll, _ = hf_logits(model, cfg, tokens, check_incremental=False)
    assert torch.equal(ll, results[src_type]), "legacy file gives different logits"
    files[f"{src_type}-legacy-kvb"] = legacy

    # 6. meta.json
    gguf_meta = {}
    for ft, p in files.items():
        gguf_meta[p.name] = {
            "sha256": sha256(p), "bytes": p.stat().st_size, "tensor_types": type_histogram(p),
            "tensor_type_by_name": tensor_types(p),
            "logits": f"hf-{ft.split('-')[0]}.f32",
        }
        if ft.endswith("legacy-kvb"):
            gguf_meta[p.name]["made_by"] = f"tools/make_legacy_kvb.py {ft.split('-')[0]}.gguf {p.name}"
            gguf_meta[p.name]["note"] = ("legacy attn_kv_b layout of " + ft.split("-")[0] + ".gguf; same weights, "
                                         "so the same logits file applies")
        elif ft == "BF16":
            gguf_meta[p.name]["made_by"] = "convert_hf_to_gguf.py --outtype bf16 (pre-tokenizer patched)"
        else:
            gguf_meta[p.name]["made_by"] = " ".join(["llama-quantize", *quant_args[ft], "BF16.gguf", p.name, ft])
            if quant_args[ft]:
                gguf_meta[p.name]["note"] = "the q_lora_rank override key was removed from the output again"
        log(f"[{name}] {p.name:26s} {p.stat().st_size / 1e6:6.2f} MB  {gguf_meta[p.name]['tensor_types']}")
    meta = {
        "name": name,
        "like": spec["like"],
        "arch": "deepseek2",
        "hf_architecture": spec["arch"],
        "vocab": cfg.vocab_size,
        "tokens": tokens,
        "n_tokens": len(tokens),
        "logits_shape": [len(tokens), cfg.vocab_size],
        "logits_dtype": "float32 little-endian, row-major (tokens, vocab)",
        "logits": {f"hf-{ft}.f32": {"gguf": f"{ft}.gguf", "sha256": sha256(out / f"hf-{ft}.f32")}
                   for ft in ["BF16"] + QUANTS},
        "reference": ("HF transformers modelling code (eager attention), float64 throughout (see strict_float64 in "
                      "tools/make_test_models.py), prefill over all tokens, weights = gguf.quants.dequantize of the "
                      "GGUF file"),
        "ggufs": gguf_meta,
        "sanity": sanity,
        "seed": seed,
        "token_draw": draw,
        "min_routing_margin": min_margin,
        "weights": {"norms": "uniform [0.6, 1.4]", "router": "normal std 0.1",
                    "e_score_correction_bias": "uniform [-0.02, 0.1]", "other": "normal std 0.05",
                    "rounding": "every value rounded to bf16"},
        "tokenizer": {"kind": "byte-level BPE trained by tools/make_test_models.py on synthetic text",
                      "bos": [0, BOS], "eos": [1, EOS], "tokenizer_json_sha256": tok_sha,
                      "ggml_pre": "deepseek-v3 (declared; text tokenization is not meant to match)"},
        "config": json.loads(cfg.to_json_string()),
        "provenance": dict(prov, **{
            "converter": "vendor/llama.cpp/convert_hf_to_gguf.py --outtype bf16 --model-name " + name,
            "quantizer": "vendor/llama.cpp tools/quantize (llama-quantize), CMake Release, GGML_NATIVE=OFF",
            "python_packages": package_versions(),
        }),
    }
    if llama_logits is not None:
        meta["llama_cpp_check"] = llama_cpp_check(llama_logits, out, meta)
    (out / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"[{name}] done in {time.time() - t0:.0f} s")
    return meta


def package_versions() -> dict:
    from importlib.metadata import version

    v = {"python": platform.python_version()}
    for p in ("torch", "transformers", "gguf", "numpy", "tokenizers", "safetensors"):
        v[p] = version(p)
    return v


def write_source_md(out_root: Path, metas: dict, prov: dict) -> None:
    rows = []
    for name, m in metas.items():
        c = m["config"]
        routing = (f"sigmoid + `exp_probs_b`, top-{c['num_experts_per_tok']} of {c['n_routed_experts']} "
                   f"({c['n_group']} groups, {c['topk_group']} kept), norm, ×{c['routed_scaling_factor']}"
                   if c.get("topk_method") == "noaux_tc" else
                   f"softmax, greedy top-{c['num_experts_per_tok']} of {c['n_routed_experts']}, "
                   f"×{c['routed_scaling_factor']}")
        rows.append(
            f"| `{name}/` | {m['like']} | {c['num_hidden_layers']} ({c['first_k_dense_replace']} dense, ffn "
            f"{c['intermediate_size']}) | {c['hidden_size']} | {c['num_attention_heads']} | "
            f"{c['q_lora_rank'] or 'none (`attn_q`)'} | {c['kv_lora_rank']} | "
            f"{c['qk_nope_head_dim']}/{c['qk_rope_head_dim']}/{c['v_head_dim']} | {routing}; expert ffn "
            f"{c['moe_intermediate_size']} | {c['n_shared_experts']} | {c['rope_parameters']['mscale_all_dim']} |")
    files = []
    for name, m in metas.items():
        for fn, g in m["ggufs"].items():
            types = ", ".join(f"{k} {v}" for k, v in g["tensor_types"].items())
            files.append(f"| `{name}/{fn}` | {g['bytes'] / 1e6:.2f} MB | `{g['logits']}` | {types} |")
    sanity = []
    for name, m in metas.items():
        for ft, s in m["sanity"].items():
            gm = f"{s['routing_margin_group']:.1e}" if "routing_margin_group" in s else "–"
            agree = f"{s['top1_agreement_with_BF16'] * 100:.0f} %" if "top1_agreement_with_BF16" in s else "–"
            sanity.append(f"| {name} | {ft} | {s['max_abs_diff_prefill_vs_incremental']:.1e} | "
                          f"{s['max_abs_diff_stock_hf_float32_islands']:.1e} | {s['routing_margin_expert']:.1e} | "
                          f"{gm} | {s['logits_std']:.2f} | {agree} |")
    lcpp = []
    for name, m in metas.items():
        for fn, c in m.get("llama_cpp_check", {}).items():
            if "error" in c:
                lcpp.append(f"| {name} | {fn} | error: {c['error'][:60]} | | | |")
            else:
                lcpp.append(f"| {name} | {fn} (vs `{m['ggufs'][fn]['logits']}`) | {c['rel_l2_mean']:.4f} | "
                            f"{c['rel_l2_max']:.4f} | {c['top1_agreement'] * 100:.1f} % | {c['kl_mean']:.1e} |")
    lcpp_md = ("""
## llama.cpp's own logits (informational, not stored)
The same llama.cpp build evaluated every file (CPU, all positions in one batch; the V2-Lite-like files with a
`q_lora_rank = 0` override, since llama.cpp decides "no q LoRA" by the layer count). llama.cpp rounds activations
(bf16 for BF16 weights, Q8 blocks for quantized weights), so it is close but not exact:

| model | file | rel-L2 per token, mean | max | top-1 agreement | mean KL |
|---|---|---|---|---|---|
""" + "\n".join(lcpp) + "\n") if lcpp else ""
    margin = next(iter(metas.values()))["min_routing_margin"]
    pk = next(iter(metas.values()))["provenance"]["python_packages"]
    text = f"""# Test models: tiny DeepSeek-architecture GGUFs with exact reference logits

Generated by `tools/make_test_models.py` (do not edit by hand). Regenerate with (from the repository root,
packages of `tools/requirements.txt` installed, network access to PyPI for the first run only):

    python tools/make_test_models.py

The script downloads the llama-cpp-python {prov['llama_cpp_python_version']} sdist into `.deps/` and builds
`llama-quantize` there if they are missing (see `tools/README.md`).

| dir | like | layers | hidden | heads | q LoRA | kv LoRA | nope/rope/v | routed experts | shared | YaRN mscale |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Both: GGUF architecture `deepseek2`, vocabulary {next(iter(metas.values()))['vocab']} (byte-level BPE trained by the
script on synthetic text; BOS `{BOS}` id 0, EOS `{EOS}` id 1; feed token ids, the
`deepseek-v3` pre-tokenizer name is declared, not matched), YaRN rope (factor 40, original context 4096,
beta_fast 32, beta_slow 1), rms eps 1e-6, {N_TOKENS} tokens starting with BOS (`meta.json` → `tokens`).
Dims are small to keep this directory near 20 MB; hidden and expert ffn stay 256 so that rows are
K-quantizable and Q4_K_M really uses Q4_K/Q6_K.

## How they were made
1. An HF transformers {pk['transformers']} model (`DeepseekV3ForCausalLM` / `DeepseekV2ForCausalLM`, eager
   attention) with seeded random weights: norms uniform in [0.6, 1.4], router std 0.1, `e_score_correction_bias`
   uniform in [-0.02, 0.1], other matrices std 0.05, every value rounded to bf16 (so `BF16.gguf` holds the exact
   weights; the script checks this). Saved as a HF checkpoint in the original DeepSeek tensor layout.
2. `BF16.gguf`: llama.cpp's own `convert_hf_to_gguf.py` from the llama-cpp-python {prov['llama_cpp_python_version']}
   sdist (vendored llama.cpp commit {prov.get('llama_cpp_commit')}), `--outtype bf16`, imported as a module with
   one patch: its pre-tokenizer detection returns `deepseek-v3` (our toy tokenizer has no known hash).
   Current MLA layout (`attn_k_b` / `attn_v_b`); `expert_gating_func` comes from `scoring_func`. The
   V2-Lite-like file has no `attention.q_lora_rank` key, like real DeepSeek-V2-Lite GGUFs.
3. `Q8_0.gguf`, `Q4_K_M.gguf`: llama.cpp's `llama-quantize BF16.gguf <out> <type>` (same sdist, CPU build).
   For the V2-Lite-like model llama-quantize needs `--override-kv deepseek2.attention.q_lora_rank=int:0` (it
   decides "no q LoRA" by the layer count, 26/27) and writes that key into its output; the script removes the
   key again (metadata rewrite, tensors byte for byte), so no file of that model has `q_lora_rank`.
4. `hf-<type>.f32`: the GGUF file's tensors dequantized with the `gguf` package ({pk['gguf']}) and loaded back
   into the HF model, then HF's modelling code in float64 over all tokens at once (prefill). This is the exact
   answer for that file with unquantized activations. transformers' DeepSeek code casts some intermediates to
   float32 even in a float64 model (RMSNorm, router, rotary tables, softmax); the script runs it with
   `torch.float32` aliased to float64 and asserts that no single-precision tensor is produced, so the
   reference is float64 end to end (the modelling code itself is unchanged).
5. `*-legacy-kvb.gguf`: `tools/make_legacy_kvb.py` rewrites a file into the legacy layout of older converters
   (one `attn_kv_b` per layer, no `*_mla` keys, `head_count_kv` = heads, `key_length` = nope+rope,
   `value_length` = v); kv_b is reassembled exactly (BF16 source → BF16, quantized source → F32 of the
   dequantized values), everything else copied byte for byte. Same weights, so the source's `hf-*.f32`
   applies; the script checks that the HF logits are bit-identical.
6. Tokens: drawn with a seeded RNG, re-drawn until every routing decision in every file has a margin of at
   least {margin:g} (score of last chosen minus first rejected expert, and group for V3), so an f32
   implementation selects the same experts as the float64 reference, and one that rounds activations rarely
   differs.

`meta.json` (per model) has the tokens, the HF config, file hashes, tensor type histograms, provenance and
the sanity numbers below. Logits files are float32 little-endian, row-major (tokens × vocab).

| file | size | logits | tensor types |
|---|---|---|---|
{chr(10).join(files)}

## Sanity checks (float64 HF)
| model | weights | prefill vs incremental decode (HF KV cache), max abs | stock HF (float32 islands) vs float64, max abs | min expert margin | min group margin | logits std | top-1 = BF16 |
|---|---|---|---|---|---|---|---|
{chr(10).join(sanity)}

Quantized files are far from the BF16 answer on random-weight models: compare a file only with the logits
made from that same file. An implementation that keeps activations in f32 should match `hf-*.f32` to about
1e-5 relative; one that quantizes activations (like llama.cpp) will not be exact.
{lcpp_md}"""
    (out_root / "SOURCE.md").write_text(text, encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description="Generate tests/data/models/")
    p.add_argument("--out", type=Path, default=OUT_DEFAULT)
    p.add_argument("--llama-cpp", help="llama.cpp source dir (default: .deps/llama_cpp_python-*/vendor/llama.cpp)")
    p.add_argument("--quantize", help="llama-quantize binary (default: .deps/llama-build/bin/llama-quantize)")
    p.add_argument("--only", action="append", choices=list(MODELS), help="only this model (repeatable)")
    p.add_argument("--min-margin", type=float, default=MIN_ROUTING_MARGIN, help=argparse.SUPPRESS)
    p.add_argument("--no-llama-cpp-check", action="store_true",
                   help="skip comparing llama.cpp's own logits with the references (informational only)")
    p.add_argument("--keep-work", action="store_true", help="keep the HF checkpoints (printed path)")
    args = p.parse_args()

    t0 = time.time()
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    llama_dir, quantize = ensure_llama_cpp(args)
    prov = llama_cpp_provenance(llama_dir, quantize)
    log(f"llama-cpp-python {prov['llama_cpp_python_version']}, llama.cpp {prov['llama_cpp_commit']}")
    llama_logits = None if args.no_llama_cpp_check else build_llama_logits(llama_dir, quantize)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hmoe-models-"))
    metas = {}
    try:
        for name in args.only or list(MODELS):
            metas[name] = make_model(name, MODELS[name], args.out, work, llama_dir, quantize, prov, args.min_margin,
                                     llama_logits)
    finally:
        if args.keep_work:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if set(metas) == set(MODELS):
        write_source_md(args.out, metas, prov)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    log(f"done in {time.time() - t0:.0f} s; {args.out} holds {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
