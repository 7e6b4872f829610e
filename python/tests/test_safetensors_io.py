"""The aligned writer: layout rules, every supported dtype, and compatibility with the
reference safetensors library in both directions."""

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy

from batch_forge.safetensors_io import build_file, read_safetensors, write_safetensors
from layout import assert_aligned_layout, parse

ST_NAMES = {
    np.float64: "F64", np.float32: "F32", np.float16: "F16", ml_dtypes.bfloat16: "BF16",
    ml_dtypes.float8_e4m3fn: "F8_E4M3", ml_dtypes.float8_e5m2: "F8_E5M2",
    np.int64: "I64", np.int32: "I32", np.int16: "I16", np.int8: "I8",
    np.uint64: "U64", np.uint32: "U32", np.uint16: "U16", np.uint8: "U8", np.bool_: "BOOL",
}


def _sample(dtype, shape, rng):
    if dtype is np.bool_:
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


def _all_dtype_tensors():
    """One odd-sized tensor per dtype, so nearly every tensor needs a filler before it."""
    rng = np.random.default_rng(0)
    return {f"t_{ST_NAMES[d]}": _sample(d, (3, 5), rng) for d in ST_NAMES}


def test_every_dtype_round_trips_and_is_aligned(tmp_path):
    path = tmp_path / "all.safetensors"
    tensors = _all_dtype_tensors()
    write_safetensors(path, tensors, {"k": "v"})
    assert assert_aligned_layout(path) > 0  # fillers were needed
    _, metadata, entries, _ = parse(path)
    assert metadata == {"k": "v"}
    real = [(name, info) for name, info in entries if not name.startswith("__bf_pad_")]
    assert [name for name, _ in real] == list(tensors)  # file order == given order
    for name, info in real:
        assert info["dtype"] == name[2:] and info["shape"] == [3, 5]
    meta, back = read_safetensors(path)
    assert meta == {"k": "v"} and list(back) == list(tensors)
    for name, arr in tensors.items():
        assert back[name].dtype == arr.dtype and back[name].tobytes() == arr.tobytes()


def test_reference_library_reads_our_files(tmp_path):
    path = tmp_path / "lib.safetensors"
    tensors = _all_dtype_tensors()
    write_safetensors(path, tensors)
    # Raw view (all dtypes, fillers included) through the library's own parser/validator.
    raw = dict(safetensors.deserialize(path.read_bytes()))
    for name, arr in tensors.items():
        assert bytes(raw[name]["data"]) == arr.tobytes()
        assert list(raw[name]["shape"]) == [3, 5]
    assert any(name.startswith("__bf_pad_") for name in raw)
    # numpy backend (no bf16/fp8 there): identical arrays plus the zero fillers.
    plain = {k: v for k, v in tensors.items() if "BF16" not in k and "F8" not in k}
    write_safetensors(path, plain, {"a": "b"})
    loaded = safetensors.numpy.load_file(path)
    fillers = {k: v for k, v in loaded.items() if k.startswith("__bf_pad_")}
    assert fillers and all(v.dtype == np.uint8 and not v.any() for v in fillers.values())
    assert set(loaded) - set(fillers) == set(plain)
    for name, arr in plain.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == arr.dtype
    with safetensors.safe_open(path, framework="np") as f:
        assert f.metadata() == {"a": "b"}


def test_zero_size_and_scalar_tensors(tmp_path):
    path = tmp_path / "edge.safetensors"
    tensors = {
        "odd": np.arange(3, dtype=np.int8),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(2.5, np.float32),
        "empty_vec": np.zeros((0,), np.float16),
        "scalar_bool": np.array(True),
        "last": np.arange(5, dtype=np.float64),
    }
    write_safetensors(path, tensors)
    assert_aligned_layout(path)
    _, back = read_safetensors(path)
    for name, arr in tensors.items():
        assert back[name].shape == arr.shape and back[name].dtype == arr.dtype
        np.testing.assert_array_equal(back[name], arr)
    loaded = safetensors.numpy.load_file(path)
    assert loaded["scalar"].shape == () and loaded["scalar"] == np.float32(2.5)
    assert loaded["empty"].shape == (0, 4)


def test_reader_accepts_unaligned_library_files(tmp_path):
    path = tmp_path / "plain.safetensors"
    tensors = {"a": np.arange(3, dtype=np.int8), "b": np.linspace(0, 1, 7, dtype=np.float32)}
    safetensors.numpy.save_file(tensors, path, metadata={"x": "y"})
    meta, back = read_safetensors(path)
    assert meta == {"x": "y"}
    for name, arr in tensors.items():
        np.testing.assert_array_equal(back[name], arr)


def test_big_endian_input_is_stored_little_endian(tmp_path):
    path = tmp_path / "be.safetensors"
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    write_safetensors(path, {"be": arr})
    np.testing.assert_array_equal(safetensors.numpy.load_file(path)["be"], arr)


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="reserved prefix"):
        write_safetensors(tmp_path / "x", {"__bf_pad_0__": np.zeros(1, np.uint8)})
    with pytest.raises(ValueError, match="unsupported dtype"):
        write_safetensors(tmp_path / "x", {"c": np.zeros(2, np.complex64)})
    with pytest.raises(ValueError, match="metadata"):
        write_safetensors(tmp_path / "x", {"a": np.zeros(2)}, {"k": 1})


def test_in_memory_and_streamed_files_are_identical(tmp_path):
    path = tmp_path / "same.safetensors"
    tensors = _all_dtype_tensors()
    size = write_safetensors(path, tensors, {"m": "1"})
    assert path.read_bytes() == build_file(tensors, {"m": "1"}) and size == path.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["same.safetensors"]  # no temp file left
