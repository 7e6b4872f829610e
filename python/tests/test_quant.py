"""batch_forge.quant in numpy only (no JAX computation): exact blocks, error bounds of the documented
dequantization formulas, fp8 against ml_dtypes, the file rules and the refusals."""

import json
import os
import re
import struct
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from batch_forge import quant
from batch_forge.quant import QuantizeError, dequantize_array, quantize_array, quantize_file
from batch_forge.safetensors_io import read_header, read_safetensors, write_safetensors
from conftest import REPO_ROOT
from layout import assert_aligned_layout

BLOCK_SCHEMES = ("q8_0", "q4_0", "nf4")


def weights(n, k, seed=0):
    """Rows whose 32-wide blocks span nine octaves, with an outlier per block."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k // 32, 32)).astype(np.float32)
    x *= np.exp2(rng.uniform(-6, 3, (n, k // 32, 1))).astype(np.float32)
    x[..., 5] *= 8
    return x.reshape(n, k)


def block_scales(q, scheme, n, k):
    """f32 [n, k] of each element's block scale, read straight from the documented byte layout."""
    info = quant.SCHEMES[scheme]
    blocks = q.reshape(n, k // info.block, info.block_bytes)
    d = np.ascontiguousarray(blocks[..., :2]).view("<f2")[..., 0].astype(np.float32)
    return np.repeat(d, info.block, axis=1)


def test_q8_0_exact_block():
    x = np.zeros((1, 32), np.float32)
    x[0, :7] = [-127, 2.5, 3.5, -2.5, 0.49, 126.6, -0.5]  # amax 127: d = 1, so q = rint(x)
    q, scale = quantize_array(x, "q8_0")
    assert scale is None and q.shape == (1, 34) and q.dtype == np.uint8
    assert q[0, :2].tobytes() == struct.pack("<e", 1.0)
    assert list(q[0, 2:9].view(np.int8)) == [-127, 2, 4, -2, 0, 127, 0]
    assert not q[0, 9:].any()


def test_q4_0_exact_block_and_nibble_order():
    x = np.zeros((1, 32), np.float32)
    x[0, [0, 1, 2, 3, 16, 17, 31]] = [-8, 7.5, 6.5, -0.5, 8, -3, 2]  # m = -8 (first): d = 1
    q, _ = quantize_array(x, "q4_0")
    assert q.shape == (1, 18) and q[0, :2].tobytes() == struct.pack("<e", 1.0)
    assert list(q[0, 2:6]) == [0 | 15 << 4, 15 | 5 << 4, 14 | 8 << 4, 8 | 8 << 4]
    assert q[0, 17] == 8 | 10 << 4


def test_nf4_exact_block_ties_to_lower_index():
    x = np.zeros((1, 64), np.float32)
    nf4 = quant.NF4_VALUES
    x[0, [0, 1, 2, 3, 32]] = [1, -1, nf4[8] / 2, nf4[12] + np.float32(1e-3), nf4[3]]
    q, _ = quantize_array(x, "nf4")
    assert q.shape == (1, 34) and q[0, :2].tobytes() == struct.pack("<e", 1.0)
    assert list(q[0, 2:6]) == [15 | 3 << 4, 0 | 7 << 4, 7 | 7 << 4, 12 | 7 << 4]


def test_zero_blocks():
    z = np.zeros((1, 64), np.float32)
    assert not quantize_array(z, "q8_0")[0].any()
    q4 = quantize_array(z, "q4_0")[0]
    assert q4[0, :2].tobytes() == b"\x00\x80" and (q4[0, 2:18] == 0x88).all()  # d = 0 / -8 = -0
    assert (quantize_array(z, "nf4")[0][0, 2:] == 0x77).all()
    codes, scale = quantize_array(z, "fp8_e4m3")
    assert scale.tolist() == [0.0] and not codes.view(np.uint8).any()


@pytest.mark.parametrize("scheme", quant.SCHEMES)
def test_round_trip_error_bounds(scheme):
    n, k = 64, 256
    x = weights(n, k, seed=1)
    q, scale = quantize_array(x, scheme)
    y = dequantize_array(q, scheme, (n, k), scale)
    err = np.abs(x - y)
    if scheme == "q8_0":
        assert (err <= 0.5001 * block_scales(q, scheme, n, k)).all()  # at most d/2 per block
    elif scheme == "q4_0":
        d = np.abs(block_scales(q, scheme, n, k))
        # Values past 7.5|d| on the side opposite the block's largest value clamp to 7|d|.
        assert (err <= np.where(np.abs(x) > 7.5 * d, 1.001, 0.5001) * d).all()
    elif scheme == "nf4":
        assert (err <= 0.1521 * block_scales(q, scheme, n, k)).all()  # half the widest level gap
    else:
        assert scale.dtype == np.float32 and scale.shape == (n,)
        assert (err <= np.maximum(np.abs(x) / 16, scale[:, None] / 1024) * 1.0001).all()


def test_fp8_codes_are_ml_dtypes_conversions():
    """A row whose max |x| is 448 has scale 1: its codes are ml_dtypes' conversions of the values."""
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint64).astype(np.uint32)
    values = np.concatenate([h, bits.view(np.float32)])
    values = values[np.isfinite(values) & (np.abs(values) <= 448)]
    x = np.concatenate([[448.0], values]).astype(np.float32)[None, :]
    codes, scale = quantize_array(x, "fp8_e4m3")
    assert scale.tolist() == [1.0]
    assert codes.view(np.uint8).tobytes() == x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8).tobytes()


@pytest.mark.parametrize("scheme,k", [("q8_0", 33), ("q4_0", 48), ("nf4", 96)])
def test_rejects_partial_blocks(scheme, k):
    with pytest.raises(QuantizeError, match="multiple of its block"):
        quantize_array(np.ones((2, k), np.float32), scheme)


@pytest.mark.parametrize("scheme", quant.SCHEMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_rejects_non_finite(scheme, bad):
    x = np.ones((3, 64), np.float32)
    x[2, 37] = bad
    with pytest.raises(QuantizeError, match="row 2: value at column 37"):
        quantize_array(x, scheme)


@pytest.mark.parametrize("scheme", BLOCK_SCHEMES)
def test_rejects_f16_scale_overflow(scheme):
    x = np.ones((1, 64), np.float32)
    x[0, 40] = 1e7
    with pytest.raises(QuantizeError, match="overflows the f16"):
        quantize_array(x, scheme)
    x[0, 40] = 60000
    quantize_array(x, scheme)


def test_rejects_bad_arguments():
    with pytest.raises(QuantizeError, match=r"\[n, k\]"):
        quantize_array(np.ones(32, np.float32), "q8_0")
    with pytest.raises(QuantizeError, match="unknown scheme"):
        quantize_array(np.ones((1, 32), np.float32), "q5_0")


def test_nf4_table_is_exactly_the_cpp_table():
    """C++ rounds each decimal literal of quant.h straight to f32; numpy goes through double. Both
    give the same f32 when the decimal lies strictly inside that f32's rounding interval."""
    with open(os.path.join(REPO_ROOT, "include", "batch_forge", "ops", "quant.h")) as f:
        text = f.read()
    body = text[text.index("kNf4Values[16]"):]
    literals = re.findall(r"(-?\d+\.\d+)f", body[:body.index("};")])
    assert len(literals) == 16
    for lit, value in zip(literals, quant.NF4_VALUES):
        up = np.nextafter(value, np.float32(np.inf), dtype=np.float32)
        down = np.nextafter(value, np.float32(-np.inf), dtype=np.float32)
        lo = (Fraction(float(down)) + Fraction(float(value))) / 2
        hi = (Fraction(float(up)) + Fraction(float(value))) / 2
        assert lo < Fraction(lit) < hi, lit


# ---- files ----

def make_input(path, **extra):
    rng = np.random.default_rng(2)
    tensors = [
        ("embed.weight", rng.standard_normal((8, 64)).astype(np.float32)),
        ("zz.empty", np.zeros((0,), np.float32)),  # same offset as the next: ties go by name
        ("aa.empty", np.zeros((0, 4), np.int8)),
        ("norm.weight", np.ones(64, np.float32)),  # rank 1: copied
        ("proj.weight", rng.standard_normal((4, 128)).astype(np.float16)),
        ("proj.bias", rng.standard_normal((4, 64)).astype(np.float32)),  # not *.weight
        ("odd.weight", rng.standard_normal((3, 48)).astype(ml_dtypes.bfloat16)),  # 48: fp8 only
        ("ids.weight", np.arange(64, dtype=np.int32).reshape(2, 32)),  # not a float
        ("none.weight", np.zeros((0, 64), np.float32)),  # no elements: copied
    ]
    tensors += list(extra.items())
    meta = {"zeta": "last", "batch_forge.format": "1", "alpha": "é \"quoted\"\n"}
    write_safetensors(path, tensors, meta)
    return dict(tensors), meta


@pytest.mark.parametrize("scheme", quant.SCHEMES)
def test_quantize_file_layout(tmp_path, scheme):
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    tensors, meta = make_input(src)
    summary = quantize_file(src, dst, scheme)
    assert summary.n_bytes == os.path.getsize(dst)
    assert_aligned_layout(dst)
    _, header = read_header(dst)
    out_meta = header.pop("__metadata__")
    assert list(out_meta) == sorted(out_meta)  # sorted keys, input values verbatim
    assert {k: v for k, v in out_meta.items() if k != quant.QUANT_KEY} == meta

    eligible = ["embed.weight", "proj.weight"] + (["odd.weight"] if scheme == "fp8_e4m3" else [])
    qmap = json.loads(out_meta[quant.QUANT_KEY])
    assert out_meta[quant.QUANT_KEY] == json.dumps(qmap, sort_keys=True, separators=(",", ":"))
    assert qmap == {n: {"scheme": scheme, "shape": list(tensors[n].shape)} for n in eligible}
    assert summary.n_quantized == len(eligible) and summary.n_tensors == len(tensors)

    order = [n for n in header if not n.startswith("__bf_pad_")]
    want = []
    for n in ["embed.weight", "aa.empty", "zz.empty", "norm.weight", "proj.weight", "proj.bias",
              "odd.weight", "ids.weight", "none.weight"]:
        want += [n, n + ".scale"] if scheme == "fp8_e4m3" and n in eligible else [n]
    assert order == want

    _, out = read_safetensors(dst)
    info = quant.SCHEMES[scheme]
    for name, arr in tensors.items():
        if name not in eligible:
            assert out[name].dtype == arr.dtype and out[name].tobytes() == arr.tobytes(), name
            continue
        n, k = arr.shape
        if scheme == "fp8_e4m3":
            assert out[name].dtype == ml_dtypes.float8_e4m3fn and out[name].shape == (n, k)
            assert out[name + ".scale"].dtype == np.float32 and out[name + ".scale"].shape == (n,)
        else:
            assert out[name].dtype == np.uint8 and out[name].shape == (n, k // info.block * info.block_bytes)
        q, scale = quantize_array(arr, scheme)
        assert out[name].tobytes() == q.tobytes()
        y = dequantize_array(out[name], scheme, (n, k), out.get(name + ".scale"))
        assert np.abs(y - arr.astype(np.float32)).max() <= 0.2 * np.abs(arr.astype(np.float32)).max()


def no_leftovers(directory, name):
    return not any(p.startswith(name) for p in os.listdir(directory))


def test_quantize_file_refuses_nan_naming_the_tensor(tmp_path):
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    bad = np.ones((4, 64), np.float32)
    bad[3, 10] = np.nan
    make_input(src, **{"layers.0.w.weight": bad})
    with pytest.raises(QuantizeError, match=r"tensor 'layers\.0\.w\.weight' row 3: value at column 10 is nan"):
        quantize_file(src, dst, "q4_0")
    assert no_leftovers(tmp_path, "out.safetensors")


def test_quantize_file_refusals(tmp_path):
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    (tmp_path / "junk").write_bytes(b"not a safetensors file at all")
    with pytest.raises(QuantizeError, match="junk"):
        quantize_file(tmp_path / "junk", dst, "q8_0")
    make_input(src, **{"proj.weight.scale": np.ones(3, np.float32)})
    with pytest.raises(QuantizeError, match="'proj.weight.scale' already exists"):
        quantize_file(src, dst, "fp8_e4m3")
    quantize_file(src, dst, "q8_0")  # no scales: no clash
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize_file(dst, tmp_path / "twice.safetensors", "q8_0")
    with pytest.raises(OSError):
        quantize_file(src, tmp_path / "missing_dir" / "out.safetensors", "q8_0")
    assert no_leftovers(tmp_path, "twice")


def test_module_cli(tmp_path, capsys):
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    make_input(src)
    assert quant.main([str(src), str(dst), "--scheme", "nf4"]) == 0
    assert "2 of 9 tensors quantized to nf4" in capsys.readouterr().out
    assert quant.main([str(tmp_path / "nope"), str(tmp_path / "x"), "--scheme", "nf4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("batch_forge.quant: ") and "nope" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
