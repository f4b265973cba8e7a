#!/usr/bin/env python3
"""Writes the quantization fixtures of tests/unit/quant into tests/data/quant/ (deterministic, seeded).

Each fixture pairs quantized bytes with float values; the reference is gguf-py's gguf.quants (llama.cpp's
reference quantization), or a direct numpy port of ggml's reference where gguf-py has none (Q8_K).

File format, little-endian, one fixture per file:
    char[4]  magic "HMQF"
    u32      version (1)
    u32      kind: 0 = dequantize (values = dequantize(bytes)), 1 = quantize (bytes = quantize(values))
    u32      ggml type id
    u64      n_values
    u64      n_bytes
    u8[n_bytes]       quantized data (whole blocks)
    f32[n_values]     values (unaligned: read with memcpy)
index.json lists the files for people; the tests read the .bin files by name (dequant_<TYPE>.bin, quantize_<TYPE>.bin).

Usage: python3 tools/make_quant_fixtures.py [--out DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import struct
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants

SEED = 0x484D4F45  # "HMOE"
VERSION = 1
DEQUANT, QUANTIZE = 0, 1

LEGACY_BLOCKS = 160  # 32 values each
K_BLOCKS = 32  # 256 values each

# Byte offsets of the f16 super-scales inside each block (ggml layouts).
SCALE_OFFSETS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_f16_bits(rng: np.random.Generator, count: int) -> np.ndarray:
    """Finite f16 scales of both signs: mostly normal over the whole exponent range, some zero, some subnormal,
    some of the small magnitudes real models use."""
    kind = rng.choice(4, size=count, p=[0.6, 0.1, 0.1, 0.2])
    exp = rng.integers(1, 31, size=count, dtype=np.uint16)  # 1..30: normal, never inf/NaN
    mant = rng.integers(0, 1024, size=count, dtype=np.uint16)
    normal = (exp << 10) | mant
    subnormal = rng.integers(1, 1024, size=count, dtype=np.uint16)
    typical = rng.uniform(1e-5, 0.1, size=count).astype(np.float16).view(np.uint16)
    bits = np.select([kind == 0, kind == 1, kind == 2], [normal, np.zeros_like(normal), subnormal], typical)
    sign = rng.integers(0, 2, size=count, dtype=np.uint16) << 15
    return (bits | sign).astype(np.uint16)


def set_f16(blocks: np.ndarray, offset: int, bits: np.ndarray) -> None:
    blocks[:, offset:offset + 2] = bits.astype("<u2").view(np.uint8).reshape(-1, 2)


def random_blocks(rng: np.random.Generator, qtype: T, n_blocks: int) -> np.ndarray:
    """Random bytes (every bit pattern is a valid block) with finite random f16 scales; the last two blocks get
    an inf and a NaN scale so that the NaN-aware comparison is exercised."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in SCALE_OFFSETS[qtype]:
        set_f16(blocks, off, random_f16_bits(rng, n_blocks))
    set_f16(blocks[-2:-1], SCALE_OFFSETS[qtype][0], np.array([0x7C00]))
    set_f16(blocks[-1:], SCALE_OFFSETS[qtype][0], np.array([0x7E01]))
    return blocks


def varied_normals(rng: np.random.Generator, n_blocks: int, block: int, shift: bool) -> np.ndarray:
    """Normal values with a per-block scale over 10^-4..10^3 (and a per-block mean when shift), plus an all-zero
    and a constant block."""
    scale = 10.0 ** rng.uniform(-4, 3, size=(n_blocks, 1))
    x = rng.standard_normal((n_blocks, block)) * scale
    if shift:
        x += rng.standard_normal((n_blocks, 1)) * scale * 2
    x[0] = 0
    x[1] = 0.75
    return x.astype(np.float32)


def dequant_fixture(rng: np.random.Generator, qtype: T) -> tuple[bytes, np.ndarray]:
    if qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        n_quantized = LEGACY_BLOCKS * 2 // 3
        x = varied_normals(rng, n_quantized, 32, shift=qtype in (T.Q4_1, T.Q5_1))
        quantized = quants.quantize(x, qtype).reshape(n_quantized, -1)
        raw = random_blocks(rng, qtype, LEGACY_BLOCKS - n_quantized)
        data = np.concatenate([quantized, raw], axis=0).reshape(-1)
    elif qtype == T.Q8_K:
        return q8_k_dequant_fixture(rng)
    elif qtype in (T.F32, T.F16, T.BF16):
        count = 512 if qtype == T.F32 else 2048
        width = np.uint32 if qtype == T.F32 else np.uint16
        bits = rng.integers(0, np.iinfo(width).max, size=count, dtype=width, endpoint=True)
        special = [0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0xFF80, 0x7F80]
        bits[:len(special)] = special
        data = bits.view(np.uint8)
    else:
        data = random_blocks(rng, qtype, K_BLOCKS).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        values = quants.dequantize(data, qtype).astype(np.float32, copy=False).reshape(-1)
    return data.tobytes(), values


def q8_k_blocks(d: np.ndarray, qs: np.ndarray, bsums: np.ndarray) -> bytes:
    out = bytearray()
    for i in range(len(d)):
        out += d[i:i + 1].astype("<f4").tobytes() + qs[i].astype(np.int8).tobytes() + bsums[i].astype("<i2").tobytes()
    return bytes(out)


def q8_k_dequant_fixture(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    # gguf-py has no Q8_K; ggml's dequantize_row_q8_K is y = d * q in f32.
    n = 16
    d = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 2, size=n)).astype(np.float32)
    d[0], d[1], d[2] = 0.0, -0.0, np.float32(1e-40)  # zero, negative zero, subnormal
    qs = rng.integers(-128, 128, size=(n, 256)).astype(np.int8)
    bsums = rng.integers(-2**15, 2**15, size=(n, 16)).astype(np.int16)  # not read by dequantization
    values = (d[:, None] * qs.astype(np.float32)).reshape(-1)
    return q8_k_blocks(d, qs, bsums), values


def q8_k_quantize(x: np.ndarray) -> bytes:
    """Port of ggml's quantize_row_q8_K_ref: iscale = -127 / (signed value of largest magnitude, first on ties),
    q = min(127, nearest-even(iscale * x)), d = 1 / iscale; an all-zero block is all zeros."""
    blocks = x.reshape(-1, 256)
    d = np.zeros(len(blocks), np.float32)
    qs = np.zeros(blocks.shape, np.int8)
    for i, b in enumerate(blocks):
        imax = int(np.argmax(np.abs(b)))
        if np.abs(b[imax]) == 0:
            continue
        iscale = np.float32(-127.0) / b[imax]
        qs[i] = np.minimum(np.rint(iscale * b), 127).astype(np.int8)
        d[i] = np.float32(1.0) / iscale
    bsums = qs.reshape(len(blocks), 16, 16).astype(np.int32).sum(axis=-1).astype(np.int16)
    return q8_k_blocks(d, qs, bsums)


def quantize_fixture(rng: np.random.Generator, qtype: T) -> tuple[bytes, np.ndarray]:
    if qtype == T.Q8_0:
        x = varied_normals(rng, 96, 32, shift=False)
        x[2] = np.arange(-16, 16) + 0.5
        x[2, 0] = 127.0  # amax 127 gives d = 1, so every k + 0.5 is a tie (rounds away from zero)
        x[3] = 1e7 * rng.standard_normal(32)  # d overflows f16 to inf
        x[4] = 1e-9 * rng.standard_normal(32)  # d is an f16 subnormal or zero
        x[5] = 0
        x[5, 7] = -3.0  # a single non-zero value
        x = x.astype(np.float32).reshape(-1)
        with np.errstate(over="ignore"):
            return quants.quantize(x, T.Q8_0).tobytes(), x
    if qtype == T.Q8_K:
        x = varied_normals(rng, 12, 256, shift=True)
        x[2] = np.clip(x[2] / np.abs(x[2]).max() * 4, -4, 4)
        x[2, 10], x[2, 20] = 5.0, -5.0  # largest magnitude tied: the first one sets the sign
        x[3] = rng.integers(-126, 126, size=256) + 0.5
        x[3, 0], x[3, 1], x[3, 2] = -127.0, 2.5, -0.5  # iscale = 1: every k + 0.5 is a tie (to even)
        x[2, 30:40] = 0.0
        x = x.reshape(-1)
        return q8_k_quantize(x), x
    # F16 / BF16: random bit patterns (all exponents, NaN, inf) plus the values either side of rounding ties.
    bits = rng.integers(0, 2**32, size=1024, dtype=np.uint64).astype(np.uint32)
    if qtype == T.F16:
        h = rng.integers(0, 0x7BFF, size=512, dtype=np.uint32)  # h + 1 stays finite
        lo = np.frombuffer(h.astype(np.uint16).tobytes(), np.float16).astype(np.float32)
        hi = np.frombuffer((h + 1).astype(np.uint16).tobytes(), np.float16).astype(np.float32)
        mid = ((lo.astype(np.float64) + hi.astype(np.float64)) / 2).astype(np.float32)  # exact in f32
    else:
        h = rng.integers(0, 0x7F80, size=512, dtype=np.uint32)
        mid = ((h << 16) | 0x8000).astype(np.uint32).view(np.float32)
    near = np.concatenate([mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(0))])
    near = near.view(np.uint32)
    sign = rng.integers(0, 2, size=near.size, dtype=np.uint32) << 31
    x = np.concatenate([bits, near | sign]).view(np.float32)
    specials = [65504.0, 65519.996, 65520.0, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-14, 0.0, -0.0,
                np.inf, -np.inf, np.nan, 3.4028235e38]
    x[:len(specials)] = np.array(specials, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        data = x.astype(np.float16) if qtype == T.F16 else quants.quantize(x, T.BF16)
    return data.tobytes(), x


def write_fixture(path: Path, kind: int, qtype: T, data: bytes, values: np.ndarray) -> dict:
    values = np.ascontiguousarray(values, dtype="<f4")
    header = b"HMQF" + struct.pack("<III QQ", VERSION, kind, int(qtype), values.size, len(data))
    blob = header + data + values.tobytes()
    path.write_bytes(blob)
    return {"file": path.name, "kind": ["dequantize", "quantize"][kind], "type": qtype.name, "type_id": int(qtype),
            "n_values": int(values.size), "n_bytes": len(data), "sha256": hashlib.sha256(blob).hexdigest()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "data" / "quant")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    entries = []
    dequant_types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
                     T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]
    for qtype in dequant_types:
        data, values = dequant_fixture(rng, qtype)
        entries.append(write_fixture(args.out / f"dequant_{qtype.name}.bin", DEQUANT, qtype, data, values))
    for qtype in [T.Q8_0, T.Q8_K, T.F16, T.BF16]:
        data, values = quantize_fixture(rng, qtype)
        entries.append(write_fixture(args.out / f"quantize_{qtype.name}.bin", QUANTIZE, qtype, data, values))

    index = {"format": "HMQF v1, see tools/make_quant_fixtures.py", "seed": SEED,
             "reference": "gguf-py " + importlib.metadata.version("gguf") + " gguf.quants; Q8_K: numpy port of ggml's reference",
             "numpy": np.__version__, "fixtures": entries}
    (args.out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total = 0
    for e in entries:
        size = (args.out / e["file"]).stat().st_size
        total += size
        print(f"{e['file']:<22} {e['kind']:<10} {e['type']:<5} {e['n_values']:>6} values {e['n_bytes']:>6} bytes "
              f"{size / 1024:7.1f} KiB")
    print(f"wrote {len(entries)} fixtures + index.json to {args.out} ({total / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
