"""Aligned safetensors writer and a plain reader (docs/model-format.md, "Layout").

Why our own writer: the C++ engine mmaps model files and wants every tensor's first byte on a
64-byte boundary of the file (vector loads, zero-copy views). `safetensors.save_file` packs
tensors back to back and cannot be told to align, so we write the format ourselves:

    [u64 little-endian header length N][N bytes JSON, space-padded so (8 + N) % 64 == 0][data]

Because the data section itself starts on a 64-byte boundary, aligning a tensor in the file is
the same as aligning its offset inside the data section. The format allows no gaps, so the gap
before a misaligned tensor is filled with a zero-filled U8 tensor `__bf_pad_<k>__` (1..63 bytes).
The result is still a valid safetensors file that the reference library loads unchanged.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Iterable, Mapping

import ml_dtypes
import numpy as np

ALIGNMENT = 64
PAD_PREFIX = "__bf_pad_"
_MAX_HEADER = 100 * 1024 * 1024  # same sanity limit as the reference implementation

# numpy dtype -> safetensors dtype name. Order matters only for readability.
_NP_TO_ST: dict[np.dtype, str] = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(ml_dtypes.float8_e4m3fn): "F8_E4M3",
    np.dtype(ml_dtypes.float8_e5m2): "F8_E5M2",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint64): "U64",
    np.dtype(np.uint32): "U32",
    np.dtype(np.uint16): "U16",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}
_ST_TO_NP: dict[str, np.dtype] = {v: k for k, v in _NP_TO_ST.items()}


def is_filler(name: str) -> bool:
    """True for the alignment filler tensors that readers must skip."""
    return name.startswith(PAD_PREFIX)


def st_dtype_name(dtype) -> str:
    """safetensors dtype name for a numpy dtype; ValueError for unsupported ones."""
    dt = np.dtype(dtype).newbyteorder("=") if np.dtype(dtype).byteorder in "<>" else np.dtype(dtype)
    try:
        return _NP_TO_ST[dt]
    except KeyError:
        supported = ", ".join(sorted(str(d) for d in _NP_TO_ST))
        raise ValueError(f"unsupported dtype {np.dtype(dtype)} (supported: {supported})") from None


def _little_endian_bytes(arr: np.ndarray) -> bytes:
    """Row-major little-endian bytes of `arr` (what safetensors stores)."""
    arr = np.ascontiguousarray(arr)
    order = arr.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        arr = arr.byteswap().view(arr.dtype.newbyteorder("<"))
    return arr.tobytes()


def _plan(
    tensors: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None,
) -> tuple[bytes, list[tuple[int, np.ndarray]]]:
    """(8-byte length + padded header, [(filler bytes before it, array)] in file order)."""
    items = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
    header: dict[str, object] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"metadata must map str to str, got {k!r}: {v!r}")
        header["__metadata__"] = dict(metadata)
    body: list[tuple[int, np.ndarray]] = []
    offset = 0  # relative to the data section, which itself starts 64-aligned
    n_pad = 0
    for name, value in items:
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        if is_filler(name):
            raise ValueError(f"tensor name {name!r} uses the reserved prefix {PAD_PREFIX!r}")
        if name in header:
            raise ValueError(f"duplicate tensor name {name!r}")
        arr = np.asarray(value)
        dtype_name = st_dtype_name(arr.dtype)
        gap = (-offset) % ALIGNMENT
        if gap:
            header[f"{PAD_PREFIX}{n_pad}__"] = {
                "dtype": "U8", "shape": [gap], "data_offsets": [offset, offset + gap]}
            offset += gap
            n_pad += 1
        header[name] = {"dtype": dtype_name, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + arr.nbytes]}
        body.append((gap, arr))
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-(8 + len(text))) % ALIGNMENT)  # 8 + N is a multiple of 64
    return struct.pack("<Q", len(text)) + text, body


def build_file(
    tensors: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """Serialise tensors (kept in the given order) into aligned safetensors bytes."""
    head, body = _plan(tensors, metadata)
    return head + b"".join(bytes(gap) + _little_endian_bytes(arr) for gap, arr in body)


def write_safetensors(
    path: str | os.PathLike,
    tensors: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write an aligned safetensors file, one tensor at a time; returns its size in bytes.

    Written to a temporary name then renamed, so a crash never leaves a half file behind.
    """
    head, body = _plan(tensors, metadata)
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(head)
            for gap, arr in body:
                f.write(bytes(gap))
                f.write(_little_endian_bytes(arr))
            size = f.tell()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return size


def read_header(path: str | os.PathLike) -> tuple[int, dict]:
    """(header length N, parsed header JSON) of any safetensors file."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{os.fspath(path)}: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise ValueError(f"{os.fspath(path)}: header length {n} is implausible")
        text = f.read(n)
    if len(text) != n:
        raise ValueError(f"{os.fspath(path)}: truncated header")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{os.fspath(path)}: header is not a JSON object")
    return n, header


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` map of a safetensors file (empty dict when absent)."""
    return dict(read_header(path)[1].get("__metadata__") or {})


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, name -> array) of any safetensors file, fillers skipped, in file order.

    Our own reader (not the library) because the library's numpy backend has no bfloat16/fp8.
    Arrays are fresh copies in native byte order, so the file can be deleted afterwards.
    """
    n, header = read_header(path)
    metadata = dict(header.pop("__metadata__", None) or {})
    with open(path, "rb") as f:
        f.seek(8 + n)
        data = f.read()
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    tensors: dict[str, np.ndarray] = {}
    for name, info in entries:
        if is_filler(name):
            continue
        begin, end = (int(x) for x in info["data_offsets"])
        try:
            dtype = _ST_TO_NP[info["dtype"]]
        except KeyError:
            raise ValueError(f"tensor {name!r}: unsupported dtype {info['dtype']!r}") from None
        shape = tuple(int(d) for d in info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or end > len(data):
            raise ValueError(f"tensor {name!r}: data_offsets {[begin, end]} do not fit "
                             f"shape {list(shape)} of {info['dtype']}")
        le = dtype.newbyteorder("<") if dtype.itemsize > 1 and dtype.kind in "iuf" else dtype
        arr = np.frombuffer(data, dtype=le, count=count, offset=begin).reshape(shape)
        tensors[name] = arr.astype(dtype, copy=True)
    return metadata, tensors
