#!/usr/bin/env python3
"""Writes the small GGUF fixtures of hmoe's GGUF reader tests, and a JSON dump of what gguf-py reads from them.

Usage: python3 tools/make_gguf_fixtures.py [out_dir]   (default: tests/data/gguf next to this script's repo)

The files are written with gguf-py's GGUFWriter (llama.cpp's own Python writer), then read back with its
GGUFReader; `expected.json` records what the reader saw (keys, value types, values, tensor names, ggml types,
shapes, offsets and an FNV-1a 64 checksum of each tensor's bytes).  The C++ test opens the same files and must
agree field by field.  Everything is seeded, so re-running reproduces the same bytes.

Floating-point values go into the JSON as float.hex() strings ("0x1.8p+0", "inf", "nan") so the comparison is
exact and survives NaN/infinity, which JSON numbers cannot carry.
"""
from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES

SEED = 20240611


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def quant_bytes(rng: np.random.Generator, qtype: QT, shape: tuple[int, ...]) -> np.ndarray:
    """Random raw blocks for a quantized tensor of logical numpy shape `shape` (last axis = ne[0])."""
    block, size = GGML_QUANT_SIZES[qtype]
    assert shape[-1] % block == 0
    return rng.integers(0, 256, size=(*shape[:-1], shape[-1] // block * size), dtype=np.uint8)


def add_quant(w: GGUFWriter, rng: np.random.Generator, name: str, qtype: QT, shape: tuple[int, ...]) -> None:
    w.add_tensor(name, quant_bytes(rng, qtype, shape), raw_dtype=qtype)


def write(w: GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_small(out: Path, rng: np.random.Generator) -> None:
    """Small enough (about 1 KiB) for the test to truncate it at every byte."""
    w = GGUFWriter(out / "small.gguf", "deepseek2")
    w.add_uint32("deepseek2.block_count", 3)
    w.add_string("general.name", "tiny ✓")
    w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "é"])
    w.add_key_value("test.nested", [[1, 2], [3]], VT.ARRAY)
    w.add_float32("test.eps", 1e-6)
    w.add_bool("test.flag", True)
    w.add_tensor("w.f32", rng.standard_normal((2, 4)).astype(np.float32))
    add_quant(w, rng, "w.q8_0", QT.Q8_0, (2, 32))
    w.add_tensor("w.f16", rng.standard_normal(3).astype(np.float16))
    write(w)


def make_all_types(out: Path, rng: np.random.Generator) -> None:
    """Every metadata value type with its extreme values, nested arrays, UTF-8, and many tensor types/shapes."""
    w = GGUFWriter(out / "all_types.gguf", "deepseek2")
    w.add_string("general.name", "all types")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -2147483648)
    w.add_float32("t.f32", 3.4028234663852886e38)
    w.add_bool("t.bool_true", True)
    w.add_bool("t.bool_false", False)
    w.add_string("t.string", "héllo wörld — 日本語 🦙")
    w.add_uint64("t.u64", 18446744073709551615)
    w.add_int64("t.i64", -9223372036854775808)
    w.add_float64("t.f64", -2.5e-300)
    w.add_float32("t.f32_inf", float("inf"))
    w.add_float64("t.f64_nan", float("nan"))
    w.add_float32("t.f32_neg_zero", -0.0)
    w.add_uint32("t.small_u32", 7)
    w.add_int32("t.neg_i32", -7)
    w.add_key_value("t.arr_u8", [0, 1, 255], VT.ARRAY, VT.UINT8)
    w.add_key_value("t.arr_i8", [-128, 0, 127], VT.ARRAY, VT.INT8)
    w.add_key_value("t.arr_u16", [0, 65535], VT.ARRAY, VT.UINT16)
    w.add_key_value("t.arr_i16", [-32768, 32767], VT.ARRAY, VT.INT16)
    w.add_key_value("t.arr_u32", [0, 1, 4294967295], VT.ARRAY, VT.UINT32)
    w.add_key_value("t.arr_i32", [-1, 2, -3, 4], VT.ARRAY, VT.INT32)
    w.add_key_value("t.arr_f32", [0.5, -1.25, 1e-30], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("t.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL)
    w.add_key_value("t.arr_u64", [0, 18446744073709551615], VT.ARRAY, VT.UINT64)
    w.add_key_value("t.arr_i64", [-9223372036854775808, 9223372036854775807], VT.ARRAY, VT.INT64)
    w.add_key_value("t.arr_f64", [1.0 / 3.0, -1e300], VT.ARRAY, VT.FLOAT64)
    w.add_key_value("t.arr_str", ["", "a", "ünï", "𝄞 clef", "tab\tnew\nline"], VT.ARRAY, VT.STRING)
    w.add_key_value("t.arr_arr_i32", [[1, 2, 3], [-4], [5, 6]], VT.ARRAY)
    w.add_key_value("t.arr_arr_str", [["x", "yé"], ["z"]], VT.ARRAY)
    w.add_key_value("t.arr_arr_arr", [[[1], [2, 3]], [[4, 5, 6]]], VT.ARRAY)
    # Many small random tokens, as a tokenizer would have: exercises the string-array path at some volume.
    words = ["".join(chr(int(c)) for c in rng.integers(0x61, 0x7B, size=int(n))) for n in rng.integers(1, 8, size=200)]
    w.add_key_value("tokenizer.ggml.tokens", words, VT.ARRAY, VT.STRING)
    w.add_key_value("tokenizer.ggml.scores", [float(np.float32(x)) for x in rng.standard_normal(200)], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("tokenizer.ggml.token_type", [int(x) for x in rng.integers(1, 7, size=200)], VT.ARRAY, VT.INT32)

    w.add_tensor("t.f32_1d", rng.standard_normal(5).astype(np.float32))
    w.add_tensor("t.f16_2d", rng.standard_normal((3, 7)).astype(np.float16))
    w.add_tensor("t.bf16_2d", rng.integers(0, 65536, size=(2, 16), dtype=np.uint16), raw_dtype=QT.BF16)
    add_quant(w, rng, "t.q8_0_3d", QT.Q8_0, (2, 3, 64))
    add_quant(w, rng, "t.q4_k_2d", QT.Q4_K, (2, 256))
    add_quant(w, rng, "t.q6_k_1d", QT.Q6_K, (256,))
    add_quant(w, rng, "t.q5_k_2d", QT.Q5_K, (1, 256))
    add_quant(w, rng, "t.q4_0_4d", QT.Q4_0, (2, 1, 2, 32))
    add_quant(w, rng, "t.q5_0_2d", QT.Q5_0, (3, 32))
    w.add_tensor("t.f32_4d", rng.standard_normal((2, 2, 3, 2)).astype(np.float32))
    w.add_tensor("t.i8", rng.integers(-128, 128, size=9, dtype=np.int8))
    w.add_tensor("t.i16", rng.integers(-1000, 1000, size=(2, 3), dtype=np.int16))
    w.add_tensor("t.i32", rng.integers(-1000, 1000, size=4, dtype=np.int32))
    w.add_tensor("t.i64", rng.integers(-1000, 1000, size=2, dtype=np.int64))
    w.add_tensor("t.f64", rng.standard_normal(3).astype(np.float64))
    write(w)


def make_aligned64(out: Path, rng: np.random.Generator) -> None:
    w = GGUFWriter(out / "aligned64.gguf", "deepseek2")
    w.add_custom_alignment(64)
    w.add_string("general.name", "aligned to 64")
    w.add_tensor("a", rng.standard_normal(3).astype(np.float32))          # 12 bytes, padded to 64
    w.add_tensor("b", rng.standard_normal((5, 13)).astype(np.float16))   # 130 bytes, padded to 192
    add_quant(w, rng, "c", QT.Q8_0, (1, 32))                              # 34 bytes
    write(w)


def make_v2(out: Path) -> None:
    """GGUF v2 has the same little-endian layout as v3 (v2 widened v1's counts to uint64; v3 only added
    big-endian files), so a v2 file is a v3 file with the version field patched."""
    data = bytearray((out / "small.gguf").read_bytes())
    assert struct.unpack_from("<I", data, 4)[0] == 3
    struct.pack_into("<I", data, 4, 2)
    (out / "v2.gguf").write_bytes(bytes(data))


def make_no_tensors(out: Path) -> None:
    w = GGUFWriter(out / "no_tensors.gguf", "deepseek2")
    w.add_string("general.name", "metadata only")
    write(w)


def make_split(out: Path, rng: np.random.Generator) -> None:
    """A 3-part split set as llama.cpp names and tags them: split.no (0-based), split.count and
    split.tensors.count; the metadata lives in the first part, which gguf-split's other parts do not repeat."""
    w = GGUFWriter(out / "split.gguf", "deepseek2", split_max_tensors=2)
    w.add_string("general.name", "split model")
    w.add_uint32("deepseek2.block_count", 2)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 8)).astype(np.float32))
    add_quant(w, rng, "blk.0.ffn_down.weight", QT.Q8_0, (2, 32))
    w.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(8).astype(np.float32))
    add_quant(w, rng, "blk.1.ffn_down.weight", QT.Q4_K, (1, 256))
    w.add_tensor("output_norm.weight", rng.standard_normal(8).astype(np.float32))
    write(w)
    names = [f"split-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert all((out / n).exists() for n in names), "GGUFWriter did not make 3 parts"


def decode_parts(parts: list, i: int, vtype: VT):
    """Rebuild one value from a GGUFReader field's parts list starting at parts[i]; returns (value, next i).
    GGUFReader's own contents() flattens nested arrays, so this walks the parts it read instead."""
    if vtype == VT.STRING:
        return str(bytes(parts[i + 1]), encoding="utf-8"), i + 2
    if vtype == VT.ARRAY:
        etype = VT(int(parts[i][0]))
        count = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(count):
            v, i = decode_parts(parts, i, etype)
            items.append(v)
        return {"elem_type": etype.name, "items": items}, i
    v = parts[i][0]
    if vtype in (VT.FLOAT32, VT.FLOAT64):
        return float(v).hex(), i + 1
    if vtype == VT.BOOL:
        return bool(v), i + 1
    return int(v), i + 1


def dump(path: Path) -> dict:
    r = GGUFReader(path)
    meta = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):  # the reader's pseudo-fields for the header, not metadata
            continue
        vtype = VT(int(f.parts[2][0]))
        value, end = decode_parts(f.parts, 3, vtype)
        assert end == len(f.parts), key
        meta.append({"key": key, "offset": int(f.offset), "types": [t.name for t in f.types], "value": value})
    tensors = []
    for t in r.tensors:
        raw = bytes(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1))
        assert len(raw) == t.n_bytes
        tensors.append({
            "name": t.name, "type": t.tensor_type.name, "type_id": int(t.tensor_type),
            "ne": [int(x) for x in t.shape], "offset": int(t.data_offset - r.data_offset),
            "n_bytes": int(t.n_bytes), "fnv1a64": fnv1a64(raw),
        })
    return {
        "version": int(r.fields["GGUF.version"].parts[0][0]), "alignment": int(r.alignment),
        "data_offset": int(r.data_offset), "size": path.stat().st_size, "metadata": meta, "tensors": tensors,
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests" / "data" / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.gguf"):
        old.unlink()
    rng = np.random.default_rng(SEED)
    make_small(out, rng)
    make_all_types(out, rng)
    make_aligned64(out, rng)
    make_v2(out)
    make_no_tensors(out)
    make_split(out, rng)
    files = sorted(p.name for p in out.glob("*.gguf"))
    expected = {
        "generator": "tools/make_gguf_fixtures.py (gguf-py GGUFWriter, read back with GGUFReader)",
        "seed": SEED,
        "files": {name: dump(out / name) for name in files},
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(files)} GGUF files and expected.json to {out} ({total} bytes)")


if __name__ == "__main__":
    main()
