#!/usr/bin/env python3
"""Write tiny deepseek2 GGUF files, valid and broken, for the model loader's error tests.

    python tools/make_bad_models.py [--out tests/data/bad_models]

Writes, deterministically (fixed seed, every tensor's values drawn from a generator seeded by its name):

  valid.gguf              a minimal V3-style model laid out as llama.cpp's current converter writes it: q LoRA
                          (attn_q_a / attn_q_a_norm / attn_q_b), split attn_k_b / attn_v_b with
                          attention.key_length_mla, sigmoid routing with exp_probs_b, expert groups, YaRN rope;
                          block 0 dense, block 1 MoE.
  valid-no-qlora.gguf     V2-Lite style: a plain attn_q and NO attention.q_lora_rank key (real V2-Lite files look
                          like this), softmax routing without exp_probs_b, two shared experts, no groups.
  valid-legacy-kvb.gguf   valid.gguf in the older converters' layout: one attn_kv_b per block, no *_mla keys,
                          head_count_kv = head_count, key_length = nope + rope, value_length = v. The weights are
                          valid.gguf's (attn_kv_b reassembled from attn_k_b and attn_v_b), so both files compute
                          the same logits.
  NAME.gguf               valid.gguf (or one of the other valid files) with exactly one thing broken.
  expected.tsv            one line per broken file: NAME, then every substring the load error's what() must
                          contain (the file name, the key or tensor, the reason), tab-separated.

Every file uses F32 tensors (except where a case needs another type) and tiny dimensions (hidden 16, 2 heads,
kv_lora 8, ...; see DIMS), about 17 KB each, so the whole folder (50 files) stays below 1 MB; main() checks.
"""
from __future__ import annotations

import argparse
import copy
import zlib
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT, GGUFValueType as VT

SEED = 0x484D4F45  # "HMOE"

DIMS = dict(
    hidden=16, heads=2, kv_lora=8, nope=4, rope=4, v=4, q_lora=8, vocab=16,
    experts=4, used=2, groups=2, groups_used=1, expert_ffn=4, shared=1, dense_ffn=8,
    layers=2, dense_layers=1, context=64,
)

ARCH = "deepseek2"


def K(key: str) -> str:
    return f"{ARCH}.{key}"


def values(name: str, shape: tuple[int, ...], kind: str = "weight") -> np.ndarray:
    """Deterministic small random values in numpy order (ne reversed), seeded by the tensor's name."""
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    if kind == "norm":
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "bias":
        return (0.05 * rng.standard_normal(shape)).astype(np.float32)
    fan_in = shape[-1]
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


class Tensor:
    def __init__(self, data: np.ndarray, raw_dtype: QT | None = None):
        self.data = data
        self.raw_dtype = raw_dtype


class Spec:
    """Metadata (key -> (type, value), in file order) and tensors (name -> Tensor, in file order)."""

    def __init__(self) -> None:
        self.arch = ARCH
        self.kv: dict[str, tuple[VT, object]] = {}
        self.tensors: dict[str, Tensor] = {}

    def copy(self) -> "Spec":
        return copy.deepcopy(self)

    # metadata
    def u32(self, key: str, v: int) -> None:
        self.kv[key] = (VT.UINT32, int(v))

    def f32(self, key: str, v: float) -> None:
        self.kv[key] = (VT.FLOAT32, float(v))

    def set(self, key: str, vt: VT, v: object) -> None:
        self.kv[key] = (vt, v)

    def drop(self, key: str) -> None:
        del self.kv[key]

    # tensors; `ne` is ggml order (ne[0] = row length)
    def t(self, name: str, ne: list[int], kind: str = "weight") -> None:
        self.tensors[name] = Tensor(values(name, tuple(reversed(ne)), kind))

    def drop_tensor(self, name: str) -> None:
        del self.tensors[name]

    def write(self, path: Path) -> None:
        w = gguf.GGUFWriter(str(path), self.arch)
        for key, (vt, v) in self.kv.items():
            w.add_key_value(key, v, vt)
        for name, t in self.tensors.items():
            if t.raw_dtype is None:
                w.add_tensor(name, t.data)
            else:
                w.add_tensor(name, t.data, raw_shape=t.data.shape, raw_dtype=t.raw_dtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


# ---------------------------------------------------------------------------------------------------------------
# The valid models.

def base(d: dict = DIMS) -> Spec:
    """valid.gguf: V3-style, current llama.cpp layout (keys and tensor shapes as in a converted DeepSeek-V3)."""
    s = Spec()
    s.set("general.type", VT.STRING, "model")
    s.set("general.name", VT.STRING, "hmoe bad-model base")
    s.u32(K("block_count"), d["layers"])
    s.u32(K("context_length"), d["context"])
    s.u32(K("embedding_length"), d["hidden"])
    s.u32(K("feed_forward_length"), d["dense_ffn"])
    s.u32(K("attention.head_count"), d["heads"])
    s.u32(K("attention.head_count_kv"), 1)
    s.set(K("rope.scaling.type"), VT.STRING, "yarn")
    s.f32(K("rope.scaling.factor"), 4.0)
    s.u32(K("rope.scaling.original_context_length"), 16)
    s.f32(K("rope.scaling.yarn_beta_fast"), 32.0)
    s.f32(K("rope.scaling.yarn_beta_slow"), 1.0)
    s.f32(K("rope.freq_base"), 10000.0)
    s.f32(K("attention.layer_norm_rms_epsilon"), 1e-6)
    s.u32(K("expert_count"), d["experts"])
    s.u32(K("expert_used_count"), d["used"])
    s.u32(K("expert_group_count"), d["groups"])
    s.u32(K("expert_group_used_count"), d["groups_used"])
    s.u32(K("expert_gating_func"), 2)
    s.u32(K("attention.key_length"), d["kv_lora"] + d["rope"])
    s.u32(K("attention.value_length"), d["kv_lora"])
    s.u32("general.file_type", 0)  # ALL_F32
    s.u32(K("leading_dense_block_count"), d["dense_layers"])
    s.u32(K("vocab_size"), d["vocab"])
    s.u32(K("attention.q_lora_rank"), d["q_lora"])
    s.u32(K("attention.kv_lora_rank"), d["kv_lora"])
    s.u32(K("attention.key_length_mla"), d["nope"] + d["rope"])
    s.u32(K("attention.value_length_mla"), d["v"])
    s.u32(K("expert_feed_forward_length"), d["expert_ffn"])
    s.u32(K("expert_shared_count"), d["shared"])
    s.f32(K("expert_weights_scale"), 2.5)
    s.set(K("expert_weights_norm"), VT.BOOL, True)
    s.u32(K("rope.dimension_count"), d["rope"])
    s.f32(K("rope.scaling.yarn_log_multiplier"), 0.1)
    s.u32("general.quantization_version", 2)

    H, nh, r, nope, rope, v = d["hidden"], d["heads"], d["kv_lora"], d["nope"], d["rope"], d["v"]
    s.t("token_embd.weight", [H, d["vocab"]])
    for b in range(d["layers"]):
        p = f"blk.{b}."
        s.t(p + "attn_norm.weight", [H], "norm")
        s.t(p + "attn_q_a.weight", [H, d["q_lora"]])
        s.t(p + "attn_q_a_norm.weight", [d["q_lora"]], "norm")
        s.t(p + "attn_q_b.weight", [d["q_lora"], nh * (nope + rope)])
        s.t(p + "attn_kv_a_mqa.weight", [H, r + rope])
        s.t(p + "attn_kv_a_norm.weight", [r], "norm")
        s.t(p + "attn_k_b.weight", [nope, r, nh])
        s.t(p + "attn_v_b.weight", [r, v, nh])
        s.t(p + "attn_output.weight", [nh * v, H])
        s.t(p + "ffn_norm.weight", [H], "norm")
        if b < d["dense_layers"]:
            s.t(p + "ffn_gate.weight", [H, d["dense_ffn"]])
            s.t(p + "ffn_up.weight", [H, d["dense_ffn"]])
            s.t(p + "ffn_down.weight", [d["dense_ffn"], H])
        else:
            E, F, S = d["experts"], d["expert_ffn"], d["shared"]
            s.t(p + "ffn_gate_inp.weight", [H, E])
            s.t(p + "exp_probs_b.bias", [E], "bias")
            s.t(p + "ffn_gate_exps.weight", [H, F, E])
            s.t(p + "ffn_up_exps.weight", [H, F, E])
            s.t(p + "ffn_down_exps.weight", [F, H, E])
            s.t(p + "ffn_gate_shexp.weight", [H, F * S])
            s.t(p + "ffn_up_shexp.weight", [H, F * S])
            s.t(p + "ffn_down_shexp.weight", [F * S, H])
    s.t("output_norm.weight", [H], "norm")
    s.t("output.weight", [H, d["vocab"]])
    return s


def no_qlora(d: dict = DIMS) -> Spec:
    """valid-no-qlora.gguf: V2-Lite style. attn_q instead of the q LoRA and no attention.q_lora_rank key."""
    dd = dict(d, shared=2, groups=1, groups_used=1)
    s = base(dd)
    s.drop(K("attention.q_lora_rank"))
    s.drop(K("expert_group_count"))
    s.drop(K("expert_group_used_count"))
    s.u32(K("expert_gating_func"), 1)
    s.f32(K("expert_weights_scale"), 1.0)
    s.drop(K("expert_weights_norm"))
    s.set("general.name", VT.STRING, "hmoe bad-model base (no q LoRA)")
    out = Spec()
    out.kv = s.kv
    for name, t in s.tensors.items():
        if name.endswith(("attn_q_a.weight", "attn_q_a_norm.weight", "exp_probs_b.bias")):
            continue
        if name.endswith("attn_q_b.weight"):
            q = name.replace("attn_q_b", "attn_q")
            out.t(q, [dd["hidden"], dd["heads"] * (dd["nope"] + dd["rope"])])
            continue
        out.tensors[name] = t
    return out


def legacy_kvb(s: Spec, d: dict = DIMS) -> Spec:
    """The same model in the legacy attn_kv_b layout (see tools/make_legacy_kvb.py)."""
    nh, r, nope, rope, v = d["heads"], d["kv_lora"], d["nope"], d["rope"], d["v"]
    out = Spec()
    out.arch = s.arch
    out.kv = dict(s.kv)
    del out.kv[K("attention.key_length_mla")]
    del out.kv[K("attention.value_length_mla")]
    out.u32(K("attention.head_count_kv"), nh)
    out.u32(K("attention.key_length"), nope + rope)
    out.u32(K("attention.value_length"), v)
    for name, t in s.tensors.items():
        if name.endswith("attn_v_b.weight"):
            continue
        if name.endswith("attn_k_b.weight"):
            k_b = t.data                                           # (nh, r, nope)
            v_b = s.tensors[name.replace("attn_k_b", "attn_v_b")].data  # (nh, v, r)
            rows = []
            for h in range(nh):
                rows.append(k_b[h].T)  # nope x r
                rows.append(v_b[h])    # v x r
            kv_b = np.ascontiguousarray(np.concatenate(rows, axis=0), dtype=np.float32)
            assert kv_b.shape == (nh * (nope + v), r)
            out.tensors[name.replace("attn_k_b", "attn_kv_b")] = Tensor(kv_b)
            continue
        out.tensors[name] = t
    return out


# ---------------------------------------------------------------------------------------------------------------
# The broken variants: (name, build, substrings the error must contain besides "NAME.gguf").

def with_kv(key: str, vt: VT, v: object, src=base):
    def f() -> Spec:
        s = src()
        s.set(key, vt, v)
        return s
    return f


def u32(key: str, v: int, src=base):
    return with_kv(K(key), VT.UINT32, v, src)


def without(key: str, src=base):
    def f() -> Spec:
        s = src()
        s.drop(K(key))
        return s
    return f


def without_tensors(*names: str, src=base):
    def f() -> Spec:
        s = src()
        for n in names:
            s.drop_tensor(n)
        return s
    return f


def wrong_arch() -> Spec:
    s = base()
    s.arch = "llama"
    return s


def both_q() -> Spec:
    s = base()
    d = DIMS
    s.t("blk.0.attn_q.weight", [d["hidden"], d["heads"] * (d["nope"] + d["rope"])])
    return s


def no_q() -> Spec:
    s = base()
    for b in range(DIMS["layers"]):
        for w in ("attn_q_a.weight", "attn_q_a_norm.weight", "attn_q_b.weight"):
            s.drop_tensor(f"blk.{b}.{w}")
    return s


def bad_shape_attn_output() -> Spec:
    s = base()
    d = DIMS
    s.t("blk.1.attn_output.weight", [d["heads"] * d["v"], d["hidden"] + 1])
    return s


def mixed_q_blk1() -> Spec:
    """blk.0 has the q LoRA, blk.1 a plain attn_q: blk.0 decides, so blk.1.attn_q_a is missing."""
    s = base()
    d = DIMS
    for w in ("attn_q_a.weight", "attn_q_a_norm.weight", "attn_q_b.weight"):
        s.drop_tensor(f"blk.1.{w}")
    s.t("blk.1.attn_q.weight", [d["hidden"], d["heads"] * (d["nope"] + d["rope"])])
    return s


def kv_lora_key_vs_tensors() -> Spec:
    """kv_lora_rank 12 in every key (key_length, value_length agree), but the tensors are built for 8."""
    s = base()
    r = DIMS["kv_lora"] + 4
    s.u32(K("attention.kv_lora_rank"), r)
    s.u32(K("attention.key_length"), r + DIMS["rope"])
    s.u32(K("attention.value_length"), r)
    return s


def tensor_iq1s() -> Spec:
    """Dense FFN width 256 so that ffn_down's rows hold whole IQ1_S blocks (256 values, 50 bytes); ffn_down is
    stored as IQ1_S (random bytes), ffn_gate/up as F16. The file parses; hmoe cannot run IQ1_S."""
    d = dict(DIMS, dense_ffn=256)
    s = base(d)
    for w in ("ffn_gate.weight", "ffn_up.weight"):
        t = s.tensors["blk.0." + w]
        t.data = t.data.astype(np.float16)
    rows = d["hidden"]
    blocks = d["dense_ffn"] // 256
    rng = np.random.default_rng([SEED, 19])
    raw = rng.integers(0, 256, size=(rows, blocks * 50), dtype=np.uint8)
    s.tensors["blk.0.ffn_down.weight"] = Tensor(raw, QT.IQ1_S)
    return s


def tensor_i32() -> Spec:
    """The router weight stored as I32 (ggml integer type 26): parses, is no weight format."""
    s = base()
    t = s.tensors["blk.1.ffn_gate_inp.weight"]
    t.data = (t.data * 1000).astype(np.int32)
    return s


def bias_with_softmax() -> Spec:
    s = base()
    s.u32(K("expert_gating_func"), 1)
    return s


def kb_without_mla_key() -> Spec:
    s = base()
    s.drop(K("attention.key_length_mla"))
    s.drop(K("attention.value_length_mla"))
    return s


def no_kv_b_at_all() -> Spec:
    s = base()
    s.drop(K("attention.key_length_mla"))
    s.drop(K("attention.value_length_mla"))
    for b in range(DIMS["layers"]):
        s.drop_tensor(f"blk.{b}.attn_k_b.weight")
        s.drop_tensor(f"blk.{b}.attn_v_b.weight")
    return s


def mla_key_no_kb() -> Spec:
    s = base()
    for b in range(DIMS["layers"]):
        s.drop_tensor(f"blk.{b}.attn_k_b.weight")
    return s


def legacy() -> Spec:
    return legacy_kvb(base())


def legacy_hkv1() -> Spec:
    s = legacy()
    s.u32(K("attention.head_count_kv"), 1)
    return s


D = DIMS
F = lambda name: f"'deepseek2.{name}'"  # noqa: E731  (how a missing key is quoted)

def kv_typed(key: str, vt: VT, v: object):
    return with_kv(K(key), vt, v)


CASES: list[tuple[str, object, list[str]]] = [
    ("wrong-arch", wrong_arch, ["general.architecture", "'llama'", "'deepseek2'"]),
    # required keys
    ("missing-block_count", without("block_count"), ["missing metadata key", F("block_count")]),
    ("missing-embedding_length", without("embedding_length"), ["missing metadata key", F("embedding_length")]),
    ("missing-kv_lora_rank", without("attention.kv_lora_rank"),
     ["missing metadata key", F("attention.kv_lora_rank")]),
    ("missing-expert_count", without("expert_count"), ["missing metadata key", F("expert_count")]),
    ("missing-expert_shared_count", without("expert_shared_count"),
     ["missing metadata key", F("expert_shared_count")]),
    ("missing-rope_dimension_count", without("rope.dimension_count"),
     ["missing metadata key", F("rope.dimension_count")]),
    ("missing-rms_epsilon", without("attention.layer_norm_rms_epsilon"),
     ["missing metadata key", F("attention.layer_norm_rms_epsilon")]),
    ("missing-value_length_mla", without("attention.value_length_mla"),
     ["missing metadata key", F("attention.value_length_mla")]),
    ("missing-yarn_factor", without("rope.scaling.factor"), ["missing metadata key", F("rope.scaling.factor")]),
    ("block_count-string", with_kv(K("block_count"), VT.STRING, "2"), ["deepseek2.block_count", "STRING"]),
    # routing
    ("gating-func-3", u32("expert_gating_func", 3), ["expert_gating_func = 3", "1 softmax, 2 sigmoid"]),
    ("experts-used-gt-count", u32("expert_used_count", D["experts"] + 1),
     [f"expert_used_count {D['experts'] + 1} > expert_count {D['experts']}"]),
    ("expert-count-zero", u32("expert_count", 0), ["deepseek2.expert_count = 0", "must be in [1, "]),
    ("groups-not-dividing", u32("expert_group_count", 3),
     ["expert_group_count 3", f"expert_count {D['experts']}", "does not divide"]),
    ("groups-used-gt-groups", u32("expert_group_used_count", 3), ["expert_group_used_count 3", "expert_group_count 2"]),
    ("experts-used-gt-kept-groups", u32("expert_used_count", 3), ["expert_used_count", "kept groups"]),
    ("bias-with-softmax", bias_with_softmax, ["blk.1.exp_probs_b.bias", "expert_gating_func is softmax"]),
    ("dense-layers-gt-layers", u32("leading_dense_block_count", 3),
     ["leading_dense_block_count = 3", "block_count = 2"]),
    # rope
    ("rope-linear", with_kv(K("rope.scaling.type"), VT.STRING, "linear"), ["rope.scaling.type 'linear'", "yarn"]),
    ("rope-odd", u32("rope.dimension_count", 5), ["rope.dimension_count", "even"]),
    # attention layout
    ("key_length-inconsistent", u32("attention.key_length", 99),
     ["attention.key_length 99", f"kv_lora_rank + rope dims {D['kv_lora'] + D['rope']}"]),
    ("value_length-inconsistent", u32("attention.value_length", 99),
     ["attention.value_length 99", f"kv_lora_rank {D['kv_lora']}"]),
    ("head_count_kv-split", u32("attention.head_count_kv", D["heads"]),
     ["head_count_kv = 1", f"file has {D['heads']}"]),
    ("head_count_kv-legacy", legacy_hkv1, ["legacy attn_kv_b", "head_count_kv = head_count", "file has 1"]),
    ("key_length_mla-without-k_b", mla_key_no_kb, ["attention.key_length_mla", "blk.0.attn_k_b.weight", "missing"]),
    ("k_b-without-key_length_mla", kb_without_mla_key, ["blk.0.attn_k_b.weight", "attention.key_length_mla"]),
    ("no-kv_b", no_kv_b_at_all, ["blk.0.attn_k_b.weight", "blk.0.attn_kv_b.weight"]),
    ("key_length_mla-no-nope", u32("attention.key_length_mla", D["rope"]), ["attention.key_length_mla - rope.dimension_count (the nope part) = 0", "must be in [1, "]),
    # q
    ("both-q_a-and-q", both_q, ["blk.0 has both attn_q_a (q LoRA) and attn_q"]),
    ("no-q", no_q, ["blk.0", "neither", "attn_q_a", "attn_q"]),
    ("q_lora_rank-vs-tensor", u32("attention.q_lora_rank", D["q_lora"] + 4),
     [f"attention.q_lora_rank = {D['q_lora'] + 4}", f"rank {D['q_lora']}", "attn_q_a"]),
    ("q_lora_rank-with-attn_q", u32("attention.q_lora_rank", D["q_lora"], src=no_qlora),
     [f"attention.q_lora_rank = {D['q_lora']}", "no q LoRA (attn_q)"]),
    ("mixed-q-layout", mixed_q_blk1, ["blk.1.attn_q_a.weight", "missing"]),
    # vocabulary and tensors
    ("vocab_size-vs-token_embd", u32("vocab_size", D["vocab"] + 1),
     [f"vocab_size = {D['vocab'] + 1}", "token_embd.weight", f"{D['vocab']} rows"]),
    ("missing-token_embd", without_tensors("token_embd.weight"), ["token_embd.weight"]),
    ("block_count-gt-tensors", u32("block_count", 3), ["blk.2.attn_norm.weight", "missing"]),
    ("kv_lora_rank-vs-tensors", kv_lora_key_vs_tensors, ["blk.0.attn_kv_a_mqa.weight", "has shape", "expected"]),
    ("shape-attn_output", bad_shape_attn_output,
     ["blk.1.attn_output.weight", f"[{D['heads'] * D['v']}, {D['hidden'] + 1}]",
      f"expected [{D['heads'] * D['v']}, {D['hidden']}]"]),
    ("missing-ffn_down_exps", without_tensors("blk.1.ffn_down_exps.weight"),
     ["tensor blk.1.ffn_down_exps.weight is missing"]),
    ("type-iq1s", tensor_iq1s, ["blk.0.ffn_down.weight", "IQ1_S (19)", "does not run", "supported"]),
    ("type-i32", tensor_i32, ["blk.1.ffn_gate_inp.weight", "I32 (26)", "supported"]),
    # values that parse but break the arithmetic
    # block_count 1 but the file holds blk.1: hmoe silently runs a truncated model (llama.cpp refuses the file).
    ("block_count-truncates", u32("block_count", 1), ["blk.1", "deepseek2.block_count"]),
    # A negative epsilon loads and every logit is NaN.
    ("rms_epsilon-negative", kv_typed("attention.layer_norm_rms_epsilon", VT.FLOAT32, -1.0),
     ["attention.layer_norm_rms_epsilon"]),
    # freq_base 0 loads and every logit is NaN.
    ("freq_base-zero", kv_typed("rope.freq_base", VT.FLOAT32, 0.0), ["rope.freq_base"]),
    # head_count 2^62 (UINT64): heads * head_size overflows int64 (undefined behaviour) before any check.
    ("head_count-huge", kv_typed("attention.head_count", VT.UINT64, 1 << 62), ["attention.head_count"]),
    # expert_shared_count -1 (INT32) is only caught as a shape mismatch "expected [16, -4]".
    ("expert_shared_count-negative", kv_typed("expert_shared_count", VT.INT32, -1),
     ["deepseek2.expert_shared_count"]),
]

VALID = [("valid", base), ("valid-no-qlora", no_qlora), ("valid-legacy-kvb", legacy)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/bad_models")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    names = [n for n, _ in VALID] + [n for n, _, _ in CASES]
    assert len(set(names)) == len(names), "duplicate case name"
    for stale in out.glob("*.gguf"):
        if stale.stem not in names:
            stale.unlink()

    for name, build in VALID:
        build().write(out / f"{name}.gguf")
    for table, cases in (("expected.tsv", CASES),):
        lines = [
            "# Written by tools/make_bad_models.py; do not edit by hand.",
            "# NAME<TAB>substring<TAB>substring...: loading NAME.gguf must throw, and what() must contain every substring.",
        ]
        for name, build, want in cases:
            build().write(out / f"{name}.gguf")
            subs = [f"{name}.gguf", *want]
            assert want and all(x not in subs[0] for x in want), f"{name}: a substring matches the file name"
            assert all("\t" not in x and "\n" not in x for x in subs), name
            lines.append("\t".join([name, *subs]))
        (out / table).write_text("\n".join(lines) + "\n")

    # Every file must parse with the reference reader (so a failure in hmoe is the model check, not the writer).
    total = 0
    for name in names:
        p = out / f"{name}.gguf"
        gguf.GGUFReader(p)
        total += p.stat().st_size
    assert total < 1_000_000, f"{total} bytes: the folder must stay under 1 MB; shrink DIMS or the cases"
    print(f"wrote {len(names)} files ({len(VALID)} valid, {len(CASES)} broken), {total / 1024:.0f} KiB, to {out}")


if __name__ == "__main__":
    main()
