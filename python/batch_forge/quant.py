"""Weight quantization: numpy quantizers that write the same bytes as `batch_forge quantize`.

    python -m batch_forge.quant IN OUT --scheme q8_0|q4_0|nf4|fp8_e4m3

Formats, algorithms and the file layout are specified in docs/quantization.md; the C++ twin is
src/ops/quantize.cc + apps/quantize.cc, and tests/e2e/test_quant_identical.py checks that both
write byte-identical files. Everything here is f32 arithmetic, one IEEE operation at a time, in
the same order as the C++ code: np.rint (round half to even) for std::nearbyint, astype(float16)
for bf::f32_to_f16, astype(float8_e4m3fn) for bf::ops::f32_to_f8e4m3. No JAX needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .safetensors_io import _ST_TO_NP, is_filler, read_header, write_safetensors

QUANT_KEY = "batch_forge.quant"
SCALE_SUFFIX = ".scale"
FP8_MAX = np.float32(448.0)


@dataclass(frozen=True)
class Scheme:
    name: str
    block: int  # elements per block along a row (1: fp8_e4m3 has no blocks)
    block_bytes: int


SCHEMES = {s.name: s for s in (Scheme("q8_0", 32, 34), Scheme("q4_0", 32, 18), Scheme("nf4", 64, 34),
                               Scheme("fp8_e4m3", 1, 1))}

# The 16 NF4 levels, exactly the f32 values of kNf4Values in include/batch_forge/ops/quant.h.
NF4_VALUES = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)

_FLOAT_ST = ("F32", "F16", "BF16")
_CHUNK_ELEMS = 1 << 20  # rows are quantized in chunks of about this many values (bounds temporaries)


class QuantizeError(ValueError):
    """A file or array that cannot be quantized; the message names it and the rule."""


def scheme_info(scheme: str) -> Scheme:
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise QuantizeError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}") from None


def is_eligible(name: str, st_dtype: str, shape, scheme: str) -> bool:
    """The rule both quantizers apply: rank-2 F32/F16/BF16 "*.weight" with whole blocks per row."""
    block = scheme_info(scheme).block
    return (st_dtype in _FLOAT_ST and len(shape) == 2 and name.endswith(".weight")
            and shape[0] > 0 and shape[1] > 0 and shape[1] % block == 0)


def _inverse(s: np.ndarray) -> np.ndarray:
    """1 / s in f32, 0 where s is 0 (an all-zero block quantizes to zeros)."""
    out = np.zeros_like(s)
    np.divide(np.float32(1), s, out=out, where=s != 0)
    return out


def _f16_scale(d: np.ndarray, scheme: str, limit: str, row0: int) -> np.ndarray:
    """f16 scales of blocks [n, nb]; QuantizeError if one overflows to inf (row0: first row's index)."""
    with np.errstate(over="ignore"):
        d16 = d.astype(np.float16)
    bad = np.argwhere(np.isinf(d16))
    if bad.size:
        r, b = (int(i) for i in bad[0])
        raise QuantizeError(f"row {row0 + r}: the block at column {b * SCHEMES[scheme].block} overflows "
                            f"the f16 {scheme} scale ({limit})")
    return d16


def _pack(scale16: np.ndarray, payload: np.ndarray) -> np.ndarray:
    """[n, nb] f16 scales + [n, nb, m] bytes -> [n, nb * (2 + m)] uint8 blocks."""
    n, nb, m = payload.shape
    out = np.empty((n, nb, 2 + m), np.uint8)
    out[..., :2] = scale16.astype("<f2").view(np.uint8).reshape(n, nb, 2)
    out[..., 2:] = payload
    return out.reshape(n, nb * (2 + m))


def _q8_0(x: np.ndarray, row0: int) -> np.ndarray:
    """x: [n, nb, 32] f32."""
    amax = np.max(np.abs(x), axis=-1)  # [n, nb]
    d16 = _f16_scale(amax / np.float32(127), "q8_0", "max |x| must stay below 8.3e6", row0)
    inv = _inverse(d16.astype(np.float32))
    q = np.clip(np.rint(x * inv[..., None]), np.float32(-127), np.float32(127)).astype(np.int8)
    return _pack(d16, q.view(np.uint8))


def _q4_0(x: np.ndarray, row0: int) -> np.ndarray:
    """x: [n, nb, 32] f32."""
    idx = np.argmax(np.abs(x), axis=-1)[..., None]  # first of the largest |x|
    m = np.take_along_axis(x, idx, axis=-1)[..., 0]  # [n, nb], signed
    d16 = _f16_scale(m / np.float32(-8), "q4_0", "max |x| must stay below 524160", row0)
    inv = _inverse(d16.astype(np.float32))
    q = np.clip(np.rint(x * inv[..., None]) + np.float32(8), np.float32(0), np.float32(15)).astype(np.uint8)
    return _pack(d16, q[..., :16] | (q[..., 16:] << 4))


def _nf4(x: np.ndarray, row0: int) -> np.ndarray:
    """x: [n, nb, 64] f32."""
    amax = np.max(np.abs(x), axis=-1)
    a16 = _f16_scale(amax, "nf4", "max |x| must stay below 65520", row0)
    s = a16.astype(np.float32)[..., None]  # [n, nb, 1]
    v = np.zeros_like(x)
    np.divide(x, s, out=v, where=s != 0)
    codes = np.argmin(np.abs(v[..., None] - NF4_VALUES), axis=-1).astype(np.uint8)  # ties: lower index
    return _pack(a16, codes[..., :32] | (codes[..., 32:] << 4))


def _fp8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x: [n, k] f32 -> ([n, k] float8_e4m3fn, [n] f32 scales)."""
    if x.shape[1] == 0:  # no values: scale 0, as max over nothing is 0 in the C++ loop
        return x.astype(ml_dtypes.float8_e4m3fn), np.zeros(x.shape[0], np.float32)
    scale = np.max(np.abs(x), axis=-1) / FP8_MAX  # [n]
    v = np.zeros_like(x)
    np.divide(x, scale[:, None], out=v, where=scale[:, None] != 0)
    return np.clip(v, -FP8_MAX, FP8_MAX).astype(ml_dtypes.float8_e4m3fn), scale


def _check_finite(x: np.ndarray, row0: int) -> None:
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        r, c = (int(i) for i in bad[0])
        raise QuantizeError(f"row {row0 + r}: value at column {c} is {x[r, c]}; only finite weights "
                            "can be quantized (a non-finite weight is a bug upstream of the quantizer)")


def quantize_array(a, scheme: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Quantize a [n, k] float array (rows along k).

    Block schemes return (uint8 [n, k / block * block_bytes], None); fp8_e4m3 returns
    (float8_e4m3fn [n, k], f32 scales [n]). Raises QuantizeError for a bad shape, a k that is not a
    multiple of the block, a NaN or inf, or an f16 scale that overflows.
    """
    info = scheme_info(scheme)
    a = np.asarray(a)
    if a.ndim != 2:
        raise QuantizeError(f"expected a [n, k] array, got shape {list(a.shape)}")
    n, k = a.shape
    if k % info.block:
        raise QuantizeError(f"a row of {k} values cannot be quantized to {scheme}: k must be a multiple "
                            f"of its block ({info.block})")
    rows = max(1, _CHUNK_ELEMS // max(k, 1))
    data, scales = [], []
    for r0 in range(0, n, rows):
        x = a[r0:r0 + rows].astype(np.float32)  # exact from f16 / bf16
        _check_finite(x, r0)
        if scheme == "fp8_e4m3":
            codes, scale = _fp8(x)
            data.append(codes)
            scales.append(scale)
        else:
            blocks = x.reshape(x.shape[0], k // info.block, info.block)
            data.append({"q8_0": _q8_0, "q4_0": _q4_0, "nf4": _nf4}[scheme](blocks, r0))
    if scheme == "fp8_e4m3":
        empty = np.zeros((0, k), ml_dtypes.float8_e4m3fn)
        return (np.concatenate(data) if data else empty), (np.concatenate(scales) if scales
                                                           else np.zeros(0, np.float32))
    empty = np.zeros((0, k // info.block * info.block_bytes), np.uint8)
    return (np.concatenate(data) if data else empty), None


def dequantize_array(data: np.ndarray, scheme: str, shape, scale: np.ndarray | None = None) -> np.ndarray:
    """The values a quantized weight stands for, f32 [n, k], by the formulas of docs/quantization.md."""
    info = scheme_info(scheme)
    n, k = (int(d) for d in shape)
    if scheme == "fp8_e4m3":
        codes = np.asarray(data).view(ml_dtypes.float8_e4m3fn).reshape(n, k).astype(np.float32)
        return codes * (np.ones(n, np.float32) if scale is None else np.asarray(scale, np.float32))[:, None]
    blocks = np.asarray(data, np.uint8).reshape(n, k // info.block, info.block_bytes)
    d = np.ascontiguousarray(blocks[..., :2]).view("<f2")[..., 0].astype(np.float32)[..., None]  # [n, nb, 1]
    qs = np.ascontiguousarray(blocks[..., 2:])
    if scheme == "q8_0":
        x = qs.view(np.int8).astype(np.float32) * d
    elif scheme == "q4_0":
        q = np.concatenate([qs & 0xF, qs >> 4], axis=-1).astype(np.int8) - np.int8(8)
        x = q.astype(np.float32) * d
    else:
        x = NF4_VALUES[np.concatenate([qs & 0xF, qs >> 4], axis=-1)] * d
    return x.reshape(n, k)


@dataclass(frozen=True)
class QuantizeSummary:
    path: str
    n_tensors: int  # real tensors of the input
    n_quantized: int
    n_bytes: int  # output file size


def _entries(src: str, header: dict, data_bytes: int) -> list[tuple[str, str, tuple, int, int]]:
    """[(name, st dtype, shape, begin, end)] of the real tensors, by offset, ties by name."""
    out = []
    for name, e in header.items():
        if is_filler(name):
            continue
        try:
            dtype, shape = e["dtype"], tuple(int(d) for d in e["shape"])
            begin, end = (int(x) for x in e["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise QuantizeError(f"{src}: tensor {name!r} has a malformed header entry") from None
        if dtype not in _ST_TO_NP:
            raise QuantizeError(f"{src}: tensor {name!r} has unsupported dtype {dtype!r}")
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * _ST_TO_NP[dtype].itemsize or not 0 <= begin <= end <= data_bytes:
            raise QuantizeError(f"{src}: tensor {name!r}: data_offsets {[begin, end]} do not fit "
                                f"shape {list(shape)} of {dtype}")
        out.append((name, dtype, shape, begin, end))
    out.sort(key=lambda t: (t[3], t[4], t[0].encode("utf-8")))
    return out


def quantize_file(src, dst, scheme: str) -> QuantizeSummary:
    """Write `dst`: `src` with its eligible weights quantized (docs/quantization.md).

    Tensors keep the input's order (by offset), each fp8 scale right after its weight; metadata is
    the input's plus batch_forge.quant, in sorted key order. Raises QuantizeError (or OSError for
    the file system); never leaves a partial `dst` behind.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    scheme_info(scheme)
    try:
        n, header = read_header(src)
    except ValueError as e:
        raise QuantizeError(str(e)) from None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise QuantizeError(f"{src}: __metadata__ must map strings to strings")
    if QUANT_KEY in metadata:
        raise QuantizeError(f"{src}: already quantized (it has {QUANT_KEY} metadata)")
    data_bytes = os.path.getsize(src) - 8 - n
    entries = _entries(src, header, data_bytes)
    data = np.memmap(src, np.uint8, "r", offset=8 + n) if data_bytes > 0 else np.zeros(0, np.uint8)

    items: list[tuple[str, np.ndarray]] = []
    qmap: dict[str, dict] = {}
    for name, st_dtype, shape, begin, end in entries:
        dtype = _ST_TO_NP[st_dtype]
        le = dtype.newbyteorder("<") if dtype.itemsize > 1 and dtype.kind in "iuf" else dtype
        arr = data[begin:end].view(le).reshape(shape)
        if not is_eligible(name, st_dtype, shape, scheme):
            items.append((name, arr))
            continue
        if scheme == "fp8_e4m3" and name + SCALE_SUFFIX in header:
            raise QuantizeError(f"{src}: tensor {name + SCALE_SUFFIX!r} already exists; the fp8_e4m3 "
                                f"scales of {name!r} would take that name")
        try:
            q, scale = quantize_array(arr, scheme)
        except QuantizeError as e:
            raise QuantizeError(f"{src}: tensor {name!r} {e}") from None
        qmap[name] = {"scheme": scheme, "shape": [int(d) for d in shape]}
        items.append((name, q))
        if scale is not None:
            items.append((name + SCALE_SUFFIX, scale))

    metadata = dict(metadata)
    metadata[QUANT_KEY] = json.dumps(qmap, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Sorted by UTF-8 bytes, as the C++ side's std::map (for valid UTF-8: code-point order).
    metadata = dict(sorted(metadata.items(), key=lambda kv: kv[0].encode("utf-8")))
    size = write_safetensors(dst, items, metadata)
    return QuantizeSummary(dst, len(entries), len(qmap), size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_forge.quant",
                                     description="Quantize a model's weights (docs/quantization.md).")
    parser.add_argument("input", help="input .safetensors (f32/f16/bf16 weights)")
    parser.add_argument("output", help="output .safetensors")
    parser.add_argument("--scheme", required=True, choices=list(SCHEMES))
    args = parser.parse_args(argv)
    try:
        s = quantize_file(args.input, args.output, args.scheme)
    except (QuantizeError, OSError) as e:
        print(f"batch_forge.quant: {e}", file=sys.stderr)
        return 1
    print(f"{s.path}: {s.n_quantized} of {s.n_tensors} tensors quantized to {args.scheme}, "
          f"{s.n_bytes} bytes written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
