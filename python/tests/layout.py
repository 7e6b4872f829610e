"""Independent check of the on-disk layout rules of docs/model-format.md (no batch_forge code)."""

import json
import struct


def parse(path):
    """(header length N, metadata, [(name, info)] sorted by data offset, data bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    return n, metadata, entries, blob[8 + n:]


def assert_aligned_layout(path):
    """Header padded with spaces to (8+N)%64==0, fillers valid, every real tensor 64-aligned."""
    n, _, entries, data = parse(path)
    with open(path, "rb") as f:
        raw_header = f.read(8 + n)[8:]
    assert (8 + n) % 64 == 0, f"8 + N = {8 + n} is not a multiple of 64"
    assert raw_header.rstrip(b" ").endswith(b"}"), "header padding must be spaces"
    expected_offset = 0
    pad_index = 0
    for name, info in entries:
        begin, end = info["data_offsets"]
        assert begin == expected_offset, f"{name}: gap or overlap at {begin}"
        expected_offset = end
        if name.startswith("__bf_pad_"):
            assert name == f"__bf_pad_{pad_index}__", f"filler {name} out of sequence"
            pad_index += 1
            assert info["dtype"] == "U8" and len(info["shape"]) == 1
            assert 1 <= info["shape"][0] <= 63 and end - begin == info["shape"][0]
            assert data[begin:end] == bytes(end - begin), f"{name} is not zero-filled"
        else:
            assert (8 + n + begin) % 64 == 0, f"{name} starts at file offset {8 + n + begin}"
    assert expected_offset == len(data), "data section has trailing bytes"
    return pad_index  # number of fillers
