#!/usr/bin/env python3
"""Writes the safetensors rejection corpus: one small malformed file per rule of the reader
(src/io/safetensors.cc), plus a few valid files in valid/. Python 3 standard library only.

    python3 tests/corpus/make_corpus.py        # rewrites tests/corpus/*.safetensors and valid/

Each malformed file breaks exactly one rule; tests/corpus/expected.txt names the substring its
error message must contain, and tests/corpus_test.cc checks both. Adding a file here means adding
its line to expected.txt (the test fails on a file without one).
"""

import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent


def pack(header: bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """[u64 little-endian header length][header][data]; `length` overrides the real length."""
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def js(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def u8(n: int, begin: int = 0) -> dict:
    """A U8 tensor entry of n bytes starting at `begin`."""
    return {"dtype": "U8", "shape": [n], "data_offsets": [begin, begin + n]}


def entry(dtype: str, shape, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


INVALID = {
    # Framing: the length prefix and the header bytes.
    "too_short": b"\x02\x00\x00\x00\x00",
    "header_too_large": pack(b"{}", length=100_000_001),
    "header_past_eof": pack(b"{}", length=64),
    "not_utf8": pack(b'{"w\xff":' + js(u8(4)) + b"}", bytes(4)),
    "bad_json": pack(b'{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4],}}', bytes(4)),
    "nul_in_header": pack(b"{}\0\0\0\0\0\0"),  # nlohmann alone would stop at the NUL and accept
    "header_not_object": pack(b"[]"),
    # __metadata__.
    "metadata_not_object": pack(js({"__metadata__": "format=pt"})),
    "metadata_value_not_string": pack(js({"__metadata__": {"version": 1}})),
    # One tensor entry.
    "tensor_not_object": pack(js({"w": [0, 4]}), bytes(4)),
    "missing_dtype": pack(js({"w": {"shape": [4], "data_offsets": [0, 4]}}), bytes(4)),
    "missing_shape": pack(js({"w": {"dtype": "U8", "data_offsets": [0, 4]}}), bytes(4)),
    "missing_data_offsets": pack(js({"w": {"dtype": "U8", "shape": [4]}}), bytes(4)),
    "dtype_not_string": pack(js({"w": {**u8(4), "dtype": 4}}), bytes(4)),
    "unknown_dtype": pack(js({"w": entry("F128", [1], 0, 16)}), bytes(16)),
    "bad_shape_not_array": pack(js({"w": entry("U8", "4", 0, 4)}), bytes(4)),
    "bad_shape_negative": pack(js({"w": entry("U8", [2, -2], 0, 4)}), bytes(4)),
    "bad_shape_not_integer": pack(js({"w": entry("U8", [2.5], 0, 4)}), bytes(4)),
    "bad_shape_too_large": pack(js({"w": entry("U8", [2**63, 0], 0, 0)})),
    "shape_overflow": pack(js({"w": entry("U8", [2**32, 2**32], 0, 4)}), bytes(4)),
    "bad_offsets_not_pair": pack(js({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4, 8]}}), bytes(4)),
    "bad_offsets_not_integer": pack(js({"w": {"dtype": "U8", "shape": [4], "data_offsets": [-4, 0]}}), bytes(4)),
    "bad_offsets_reversed": pack(js({"w": entry("U8", [4], 8, 4)}), bytes(8)),
    "size_mismatch": pack(js({"a.w": entry("F32", [2, 2], 0, 12)}), bytes(12)),
    "offset_out_of_range": pack(js({"w": entry("F32", [4], 0, 16)}), bytes(8)),
    # How the tensors tile the data section.
    "overlap": pack(js({"a": u8(8, 0), "b": u8(8, 4)}), bytes(12)),
    "gap": pack(js({"a": u8(4, 0), "b": u8(4, 8)}), bytes(12)),
    "gap_at_start": pack(js({"a": u8(4, 4)}), bytes(8)),
    "trailing_bytes": pack(js({"a": u8(4, 0)}), bytes(6)),
    "trailing_bytes_no_tensors": pack(b"{}", bytes(3)),
    # Repeated keys: json.dumps cannot write them, so these headers are written by hand.
    "duplicate_name": pack(
        b'{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
        b'"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}',
        bytes(8),
    ),
    "duplicate_key": pack(b'{"a":{"dtype":"U8","dtype":"I8","shape":[4],"data_offsets":[0,4]}}', bytes(4)),
    "duplicate_metadata_key": pack(b'{"__metadata__":{"k":"1","k":"2"}}'),
}


def padded(header: bytes, align: int = 64) -> bytes:
    """Pads the header with spaces so that 8 + len is a multiple of `align`, as exporters do."""
    return header + b" " * (-(8 + len(header)) % align)


VALID = {
    "empty": pack(b"{}"),
    "zero_size_and_scalar": pack(
        js(
            {
                "scalar": entry("F32", [], 0, 4),
                "empty_rows": entry("F16", [0, 3], 4, 4),
                "empty_vec": entry("I8", [0], 4, 4),
                "bytes": entry("U8", [2], 4, 6),
                "empty_tail": entry("F64", [4, 0], 6, 6),
            }
        ),
        struct.pack("<f", 1.5) + b"\x07\x09",
    ),
    "padded_header": pack(
        padded(js({"__metadata__": {"format": "pt"}, "w": entry("F32", [2], 0, 8)})),
        struct.pack("<2f", 1.0, -2.0),
    ),
    "metadata_only": pack(js({"__metadata__": {"batch_forge.format": "1", "note": "no tensors"}})),
    # Extra keys in a tensor entry are ignored, as the reference safetensors library does.
    "extra_entry_key": pack(js({"w": {**u8(4), "offset": 0}}), bytes(4)),
}


def main() -> None:
    for old in HERE.glob("*.safetensors"):
        old.unlink()
    (HERE / "valid").mkdir(exist_ok=True)
    for old in (HERE / "valid").glob("*.safetensors"):
        old.unlink()
    for name, blob in INVALID.items():
        (HERE / f"{name}.safetensors").write_bytes(blob)
    for name, blob in VALID.items():
        (HERE / "valid" / f"{name}.safetensors").write_bytes(blob)
    print(f"wrote {len(INVALID)} malformed and {len(VALID)} valid files under {HERE}")


if __name__ == "__main__":
    main()
