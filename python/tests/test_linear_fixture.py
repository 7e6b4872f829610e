"""Linear parity fixtures: block bytes decode by the documented formulas, JAX's outputs match an
independent numpy product, and the stated tolerances bound what they claim to."""

import json

import ml_dtypes
import numpy as np
import pytest

from batch_forge import fixtures
from batch_forge.fixture_ops import linear
from batch_forge.safetensors_io import read_safetensors

TYPES = ["f32", "f16", "bf16", "f8_e4m3", "q8_0", "q4_0", "nf4"]


def _block(scale: float, payload: list[int]) -> np.ndarray:
    return np.concatenate([np.array([scale], np.float16).view(np.uint8), np.array(payload, np.uint8)])


def test_q8_0_block_decodes_as_int8_times_scale():
    qs = list(range(-16, 16))
    raw = _block(0.5, [q & 0xFF for q in qs])[None]  # [1, 34]
    np.testing.assert_array_equal(linear.dequantize_blocks(raw, "q8_0", 32)[0], np.array(qs) * 0.5)


def test_q4_0_block_puts_low_nibbles_first():
    # byte j: low nibble q[j] = j, high nibble q[j + 16] = 15 - j
    raw = _block(2.0, [j | ((15 - j) << 4) for j in range(16)])[None]
    want = np.concatenate([np.arange(16) - 8, (15 - np.arange(16)) - 8]) * 2.0
    np.testing.assert_array_equal(linear.dequantize_blocks(raw, "q4_0", 32)[0], want)


def test_nf4_block_uses_the_levels_and_absmax():
    codes_lo = np.arange(32) % 16
    codes_hi = (np.arange(32) * 7) % 16
    raw = _block(0.25, list(codes_lo | (codes_hi << 4)))[None]
    want = np.concatenate([linear.NF4_VALUES[codes_lo], linear.NF4_VALUES[codes_hi]]) * np.float32(0.25)
    np.testing.assert_array_equal(linear.dequantize_blocks(raw, "nf4", 64)[0], want)
    assert linear.NF4_VALUES[7] == 0.0 and linear.NF4_VALUES[0] == -1.0 and linear.NF4_VALUES[15] == 1.0


def _stored_to_f32(stored, dtype, k, scale):
    if dtype in linear.BLOCK:
        return linear.dequantize_blocks(stored, dtype, k).astype(np.float64)
    w = stored.astype(np.float32).astype(np.float64)
    return w * scale[:, None] if scale is not None else w


@pytest.mark.parametrize("dtype", TYPES)
def test_fixture_matches_numpy_within_its_tolerance(tmp_path, dtype):
    name = f"linear_{dtype}"
    assert name in fixtures.ops()
    path = tmp_path / f"{name}.safetensors"
    fixtures.write_fixture(name, 3, path)
    meta, t = read_safetensors(path)
    params = json.loads(meta["batch_forge.fixture.params"])
    tol = json.loads(meta["batch_forge.fixture.tolerance"])
    assert params["dtype"] == dtype and tol["rtol"] == 0.0
    ms = set()
    for i, case in enumerate(params["cases"]):
        m, n, k = case["m"], case["n"], case["k"]
        ms.add(m)
        stored = t[f"input.c{i}.weight"]
        if dtype in linear.BLOCK:
            elems, nbytes = linear.BLOCK[dtype]
            assert stored.dtype == np.uint8 and stored.shape == (n, k // elems * nbytes)
            assert k % elems == 0
        else:
            want_dtype = {"f32": np.float32, "f16": np.float16, "bf16": ml_dtypes.bfloat16,
                          "f8_e4m3": ml_dtypes.float8_e4m3fn}[dtype]
            assert stored.dtype == want_dtype and stored.shape == (n, k)
        scale = t.get(f"input.c{i}.scale")
        assert (scale is not None) == (dtype == "f8_e4m3")
        w = _stored_to_f32(stored, dtype, k, scale)
        x = t[f"input.c{i}.x"].astype(np.float64)
        want = x @ w.T
        if case["bias"]:
            want += t[f"input.c{i}.bias"]
        got = t[f"output.c{i}.y"]
        assert got.shape == (m, n) and n % 16 != 0
        assert np.all(np.abs(got - want) <= case["atol"]), (i, np.abs(got - want).max(), case["atol"])
        assert case["atol"] <= tol["atol"]
    assert any(m % 2 == 1 and m > 8 for m in ms) and 1 in ms  # GEMM and GEMV rows, odd counts
    assert {c["bias"] for c in params["cases"]} == {True, False}


def test_int8_bound_covers_blockwise_int8_activations():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 96)).astype(np.float32)
    w = (rng.standard_normal((7, 96)) * 0.1).astype(np.float32)
    scale = np.abs(x).reshape(5, 3, 32).max(axis=2) / 127  # [5, 3]
    q = np.rint(x.reshape(5, 3, 32) / scale[:, :, None]).reshape(5, 96)
    xq = q * np.repeat(scale, 32, axis=1)
    err = np.abs(xq.astype(np.float64) @ w.T - x.astype(np.float64) @ w.T)
    bound = linear.int8_activation_bound(x, w)
    assert np.all(err <= bound) and bound.max() < 20 * err.max()  # a bound, not a blanket
