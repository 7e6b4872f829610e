"""Element-wise parity fixtures (batch_forge/fixture_ops/{norms,activations,rope,embedding}.py):
files are well-formed and reproducible, outputs match independent formulas in float64, the
transformer family's RoPE is Equinox's, and quantized tables follow
include/batch_forge/ops/quant.h."""

import importlib
import json
import math
import pkgutil
import os
import re

import equinox as eqx
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from batch_forge import fixture_ops, fixtures
from batch_forge.families.transformer import rope
from batch_forge.fixture_ops import embedding
from batch_forge.safetensors_io import read_safetensors
from conftest import REPO_ROOT
from layout import assert_aligned_layout


# fixtures.ops() imports the fixture modules only when none is registered yet; importing one
# directly (as this file does) would leave the others out, so import them all.
for _info in pkgutil.iter_modules(fixture_ops.__path__):
    importlib.import_module(f"{fixture_ops.__name__}.{_info.name}")


def _f64(t, name):
    return t[name].astype(np.float64)


def _silu(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return x / (1.0 + np.exp(-x))


def _gelu(x):
    with np.errstate(invalid="ignore"):  # −inf · erfc(inf) = −inf · 0: NaN, as in JAX
        return 0.5 * x * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def _gelu_tanh(x):
    with np.errstate(over="ignore", invalid="ignore"):
        u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
        return x / (1.0 + np.exp(-2.0 * u))  # = x (1 + tanh u) / 2 without cancellation


def _softplus(x):
    with np.errstate(invalid="ignore"):
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _rms(t, p):
    x = _f64(t, "input.x")
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + p["eps"])
    return y * (_f64(t, "input.weight") if "input.weight" in t else 1.0) + (
        _f64(t, "input.bias") if "input.bias" in t else 0.0)


def _layer(t, p):
    x = _f64(t, "input.x")
    c = x - x.mean(axis=-1, keepdims=True)
    y = c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + p["eps"])
    return y * (_f64(t, "input.weight") if "input.weight" in t else 1.0) + (
        _f64(t, "input.bias") if "input.bias" in t else 0.0)


def _softmax(t, p):
    x = _f64(t, "input.x")
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def _rope(t, p):
    """The engine's definition (src/ops/rope_freqs.h): f32 frequencies and f32 angles, as the JAX
    model rounds them (at position 65535 that rounding alone moves an angle by up to 0.002), with
    cos and sin taken in float64."""
    x, pos = _f64(t, "input.x"), t["input.positions"]
    half = x.shape[-1] // 2
    exponent = np.float32(2 * np.arange(half)) / np.float32(x.shape[-1])
    power = np.power(np.float64(np.float32(p["theta"])), np.float64(exponent)).astype(np.float32)
    freqs = np.float32(1) / power  # [half] f32
    a = (pos.astype(np.float32)[:, None, None] * freqs).astype(np.float64)  # [T, 1, half]
    x1, x2 = x[..., :half], x[..., half:]
    c, s = np.cos(a), np.sin(a)
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def _embedding(t, p):
    table = t["input.table"]
    if p["dtype"] in embedding.BLOCKS:
        values = _decode_blocks_loop(table, p["dtype"], p["dim"])
    else:
        values = table.astype(np.float64)
    return values[t["input.ids"]]


FORMULAS = {
    "rms_norm_plain": _rms, "rms_norm_bias": _rms,
    "layer_norm_plain": _layer, "layer_norm_weight": _layer,
    "softmax_masked": _softmax,
    "silu": lambda t, p: _silu(_f64(t, "input.x")), "gelu": lambda t, p: _gelu(_f64(t, "input.x")),
    "gelu_tanh": lambda t, p: _gelu_tanh(_f64(t, "input.x")),
    "softplus": lambda t, p: _softplus(_f64(t, "input.x")),
    "silu_mul": lambda t, p: _silu(_f64(t, "input.gate")) * _f64(t, "input.up"),
    "add": lambda t, p: _f64(t, "input.a") + _f64(t, "input.b"),
    "rope": _rope, "rope_odd": _rope,
    **{f"embedding_{d}": _embedding for d in ("f32", "f16", "bf16", "q8_0", "q4_0", "nf4")},
}
# The formulas are float64 (rope: of the f32 angles); the fixtures' tolerances cover JAX's f32.


def _decode_blocks_loop(raw, scheme, dim):
    """Per element, straight from the layouts in include/batch_forge/ops/quant.h."""
    block, block_bytes = embedding.BLOCKS[scheme]
    out = np.zeros((raw.shape[0], dim))
    for r in range(raw.shape[0]):
        for b in range(dim // block):
            blk = raw[r, b * block_bytes:(b + 1) * block_bytes]
            d = float(blk[:2].view(np.float16)[0])
            qs = blk[2:]
            for i in range(block):
                if scheme == "q8_0":
                    v = float(qs[i].view(np.int8)) * d
                elif scheme == "q4_0":
                    nib = qs[i] & 0xF if i < 16 else qs[i - 16] >> 4
                    v = (int(nib) - 8) * d
                else:
                    code = qs[i] & 0xF if i < 32 else qs[i - 32] >> 4
                    v = float(embedding.NF4_VALUES[code]) * d
                out[r, b * block + i] = v
    return out


def test_every_elementwise_fixture_is_registered():
    assert set(FORMULAS) <= set(fixtures.ops())


@pytest.mark.parametrize("op", sorted(FORMULAS))
def test_fixture_matches_float64_formula(tmp_path, op):
    path = tmp_path / f"{op}.safetensors"
    fixtures.write_fixture(op, 3, path)
    assert_aligned_layout(path)
    meta, tensors = read_safetensors(path)
    assert meta["batch_forge.fixture.op"] == op
    params = json.loads(meta["batch_forge.fixture.params"])
    tol = json.loads(meta["batch_forge.fixture.tolerance"])
    y = tensors["output.y"]
    assert y.dtype == np.float32
    want = FORMULAS[op](tensors, params)
    np.testing.assert_allclose(y, want, atol=tol["atol"], rtol=tol["rtol"] + 1e-6)
    again = fixtures.make_fixture(op, 3)  # same seed, same inputs
    first = next(iter(again.inputs))
    assert again.inputs[first].tobytes() == tensors[f"input.{first}"].tobytes()


def test_activation_inputs_hold_the_special_values():
    fx = fixtures.make_fixture("silu", 0)
    x = fx.inputs["x"]
    assert x.shape[-1] % 16 != 0
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    assert (np.abs(x[np.isfinite(x)]) >= 88.8).any()


def test_softmax_masked_has_the_rows_jax_makes_nan():
    y = fixtures.make_fixture("softmax_masked", 0).outputs["y"]
    assert np.isnan(y[0]).all() and np.isnan(y[2]).all()  # fully masked; holds +inf
    assert (y[1, 50:] == 0).all() and abs(y[1].sum() - 1) < 1e-5


def test_rms_norm_bias_fixture_uses_equinox_defaults():
    norm = eqx.nn.RMSNorm(8)
    assert norm.use_weight and norm.use_bias and norm.eps == 1e-5
    fx = fixtures.make_fixture("rms_norm_bias", 0)
    assert set(fx.inputs) == {"x", "weight", "bias"} and fx.params == {"eps": 1e-5}


@pytest.mark.parametrize("head_dim", [8, 40, 128])
def test_transformer_rope_is_equinox_rope(head_dim):
    rng = np.random.default_rng(head_dim)
    x = np.float32(rng.standard_normal((11, head_dim)))  # [T, head_dim]
    ours = rope(jnp.asarray(x)[:, None, :], jnp.arange(11), 10000.0)[:, 0, :]
    theirs = eqx.nn.RotaryPositionalEmbedding(head_dim, theta=10000.0)(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=2e-6, rtol=1e-6)


def test_nf4_values_are_the_engines():
    text = open(os.path.join(REPO_ROOT, "include/batch_forge/ops/quant.h")).read()
    body = text[text.index("kNf4Values[16] = {"):]
    body = body[:body.index("};")]
    values = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", body)]
    assert np.array_equal(np.float32(values), embedding.NF4_VALUES)


@pytest.mark.parametrize("scheme", sorted(embedding.BLOCKS))
def test_random_blocks_decode_as_documented(scheme):
    rng = np.random.default_rng(7)
    dim = 2 * embedding.BLOCKS[scheme][0]
    raw, values = embedding.random_blocks(rng, scheme, 3, dim)
    assert raw.dtype == np.uint8 and raw.shape == (3, 2 * embedding.BLOCKS[scheme][1])
    assert values.dtype == np.float32 and np.isfinite(values).all()
    np.testing.assert_array_equal(values, _decode_blocks_loop(raw, scheme, dim).astype(np.float32))


def test_half_tables_are_stored_as_their_type():
    for dtype, np_type in (("f16", np.float16), ("bf16", ml_dtypes.bfloat16)):
        fx = fixtures.make_fixture(f"embedding_{dtype}", 0)
        assert fx.inputs["table"].dtype == np.dtype(np_type)
        assert fx.inputs["ids"].dtype == np.int32
        assert np.isnan(fx.outputs["y"]).any() and np.isinf(fx.outputs["y"]).any()
