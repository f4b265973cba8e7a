#!/usr/bin/env python3
"""Rewrite a current-layout deepseek2 GGUF into the legacy `attn_kv_b` layout.

    python tools/make_legacy_kvb.py IN.gguf OUT.gguf

Current llama.cpp converters split DeepSeek's `kv_b_proj` per layer into

    blk.N.attn_k_b.weight   numpy shape (n_head, kv_lora_rank, nope)   (K part, transposed per head)
    blk.N.attn_v_b.weight   numpy shape (n_head, v, kv_lora_rank)      (V part)

and write `attention.key_length_mla` / `attention.value_length_mla`, `head_count_kv = 1`,
`key_length = kv_lora_rank + rope`, `value_length = kv_lora_rank` (MLA seen as MQA).

Older converters wrote a single

    blk.N.attn_kv_b.weight  numpy shape (n_head * (nope + v), kv_lora_rank)

(the HF `kv_b_proj.weight` as is: for each head, `nope` rows of K then `v` rows of V), no `*_mla` keys,
`head_count_kv = n_head`, `key_length = nope + rope`, `value_length = v`.

This tool rebuilds that legacy file exactly:
  * kv_b is reassembled from k_b (transposed back) and v_b. If both are F32/F16/BF16 of one type the raw
    values are rearranged (same type, lossless); otherwise they are dequantized with `gguf.quants.dequantize`
    and stored as F32, which holds the dequantized values exactly. Either way the model computes the same
    function, so logits made for IN.gguf apply to OUT.gguf unchanged.
  * every other key and tensor is copied byte for byte (same order, same types).
  * the result is read back and checked (disable with --no-verify).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT, GGUFValueType as VT

_RAW_FLOAT = {QT.F32: np.float32, QT.F16: np.float16, QT.BF16: np.uint16}


def _field(reader: gguf.GGUFReader, key: str):
    f = reader.get_field(key)
    if f is None:
        raise KeyError(f"missing key {key!r}")
    v = f.contents()
    if isinstance(v, list):
        raise ValueError(f"{key!r} is an array; per-layer values are not supported")
    return v


def _raw(t: gguf.ReaderTensor) -> np.ndarray:
    """Tensor elements in numpy order, raw (uint16 for BF16)."""
    a = np.ascontiguousarray(t.data).view(_RAW_FLOAT[t.tensor_type])  # the reader may give raw bytes
    return a.reshape([int(x) for x in reversed(t.shape)])


def _values(t: gguf.ReaderTensor) -> np.ndarray:
    """Tensor values in numpy order as float32 (exact for F32/F16/BF16 and gguf's dequantization)."""
    a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32, copy=False)
    return a.reshape([int(x) for x in reversed(t.shape)])


class Dims:
    def __init__(self, reader: gguf.GGUFReader):
        self.arch = _field(reader, gguf.Keys.General.ARCHITECTURE)
        a = self.arch
        self.n_head = int(_field(reader, f"{a}.attention.head_count"))
        self.kv_lora = int(_field(reader, f"{a}.attention.kv_lora_rank"))
        self.rope = int(_field(reader, f"{a}.rope.dimension_count"))
        self.k_mla = int(_field(reader, f"{a}.attention.key_length_mla"))
        self.v = int(_field(reader, f"{a}.attention.value_length_mla"))
        self.nope = self.k_mla - self.rope


def build_kv_b(k_b: gguf.ReaderTensor, v_b: gguf.ReaderTensor, d: Dims) -> tuple[np.ndarray, QT]:
    """Legacy kv_b (numpy shape (n_head*(nope+v), kv_lora)) and its GGML type."""
    if k_b.tensor_type == v_b.tensor_type and k_b.tensor_type in _RAW_FLOAT:
        k, v, qt = _raw(k_b), _raw(v_b), k_b.tensor_type
    else:
        k, v, qt = _values(k_b), _values(v_b), QT.F32
    assert k.shape == (d.n_head, d.kv_lora, d.nope), (k_b.name, k.shape)
    assert v.shape == (d.n_head, d.v, d.kv_lora), (v_b.name, v.shape)
    kv = np.concatenate([k.transpose(0, 2, 1), v], axis=1)  # (n_head, nope+v, kv_lora)
    return np.ascontiguousarray(kv.reshape(d.n_head * (d.nope + d.v), d.kv_lora)), qt


def convert(src: Path, dst: Path, verify: bool = True) -> None:
    reader = gguf.GGUFReader(src)
    names = {t.name: t for t in reader.tensors}
    if not any(n.endswith(".attn_k_b.weight") for n in names):
        raise SystemExit(f"{src}: no attn_k_b tensors (already in the legacy layout?)")
    d = Dims(reader)
    a = d.arch
    if a != "deepseek2":
        print(f"warning: architecture is {a!r}, not 'deepseek2'", file=sys.stderr)

    drop = {f"{a}.attention.key_length_mla", f"{a}.attention.value_length_mla"}
    new_vals = {
        f"{a}.attention.head_count_kv": d.n_head,
        f"{a}.attention.key_length": d.nope + d.rope,
        f"{a}.attention.value_length": d.v,
    }

    writer = gguf.GGUFWriter(dst, a, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF.") or field.name in drop:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == VT.ARRAY else None
        val = new_vals.get(field.name, field.contents())
        writer.add_key_value(field.name, val, vtype, sub_type=sub)

    out: list[tuple[str, np.ndarray, QT | None]] = []  # (name, array, raw type for add_tensor_info)
    for t in reader.tensors:
        if t.name.endswith(".attn_v_b.weight"):
            if t.name.replace(".attn_v_b.", ".attn_k_b.") not in names:
                raise SystemExit(f"{t.name} without attn_k_b")
            continue
        if t.name.endswith(".attn_k_b.weight"):
            vb = names.get(t.name.replace(".attn_k_b.", ".attn_v_b."))
            if vb is None:
                raise SystemExit(f"{t.name} without attn_v_b")
            kv, qt = build_kv_b(t, vb, d)
            out.append((t.name.replace(".attn_k_b.", ".attn_kv_b."), kv, qt))
        else:
            out.append((t.name, t.data, t.tensor_type))
    for name, arr, qt in out:
        writer.add_tensor_info(name, arr.shape, arr.dtype, arr.nbytes, qt)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, arr, _ in out:
        writer.write_tensor_data(np.asarray(arr), tensor_endianess=reader.endianess)
    writer.close()

    if verify:
        check(src, dst)


def check(src: Path, dst: Path) -> None:
    """Read dst back; assert legacy keys, exact kv_b reconstruction, and byte-identical other tensors."""
    r0, r1 = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    d = Dims(r0)
    a = d.arch
    f1 = {f.name: f for f in r1.fields.values()}
    for k in (f"{a}.attention.key_length_mla", f"{a}.attention.value_length_mla"):
        assert k not in f1, f"{k} still present"
    assert int(_field(r1, f"{a}.attention.head_count_kv")) == d.n_head
    assert int(_field(r1, f"{a}.attention.key_length")) == d.nope + d.rope
    assert int(_field(r1, f"{a}.attention.value_length")) == d.v
    for f in r0.fields.values():
        if f.name.startswith("GGUF.") or f.name.startswith(f"{a}.attention."):
            continue
        g = f1.get(f.name)
        assert g is not None and g.types == f.types and g.contents() == f.contents(), f"key {f.name} differs"

    t0 = {t.name: t for t in r0.tensors}
    t1 = {t.name: t for t in r1.tensors}
    n_kvb = 0
    for name, t in t0.items():
        if name.endswith(".attn_v_b.weight"):
            assert name not in t1
            continue
        if name.endswith(".attn_k_b.weight"):
            kvn = name.replace(".attn_k_b.", ".attn_kv_b.")
            kv_t = t1[kvn]
            assert name not in t1
            kv = _values(kv_t).reshape(d.n_head, d.nope + d.v, d.kv_lora)
            vb = t0[name.replace(".attn_k_b.", ".attn_v_b.")]
            assert np.array_equal(kv[:, : d.nope, :].transpose(0, 2, 1), _values(t)), f"{kvn}: K part differs"
            assert np.array_equal(kv[:, d.nope :, :], _values(vb)), f"{kvn}: V part differs"
            n_kvb += 1
            continue
        u = t1[name]
        assert u.tensor_type == t.tensor_type and list(u.shape) == list(t.shape), name
        assert np.asarray(u.data).tobytes() == np.asarray(t.data).tobytes(), f"{name}: bytes differ"
    assert len(t1) == len(t0) - n_kvb, "unexpected tensor count"
    print(f"{dst}: ok ({n_kvb} attn_kv_b tensors rebuilt exactly, "
          f"{len(t1) - n_kvb} tensors copied byte for byte)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--no-verify", action="store_true", help="skip reading the result back")
    args = p.parse_args()
    convert(args.input, args.output, verify=not args.no_verify)


if __name__ == "__main__":
    main()
