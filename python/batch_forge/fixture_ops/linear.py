"""Parity fixtures of linear, y = x @ W.T (+ b), one per weight type (eqx.nn.Linear is the
reference).

Weights are random but valid bytes drawn with numpy (f16/bf16/fp8 values; for the block types
random codes and f16 scales), dequantized in numpy by the formulas of docs/quantization.md, so the
fixture depends on no quantizer. JAX/Equinox then computes the layer in f32 from the dequantized
weight. Every fixture holds several cases: odd row counts (GEMV and GEMM paths), n not a multiple
of 16, k a multiple of the block (64, 128 + 32, and longer ones that cross the 16-block steps of
the int8 kernels), with and without bias.

Tensors, for case i (c0, c1, ...):
    input.c<i>.x       f32 [m, k]
    input.c<i>.weight  the weight as the engine reads it: F32/F16/BF16/F8_E4M3 [n, k], or U8
                       [n, k / block * block_bytes] (raw blocks) for q8_0, q4_0, nf4
    input.c<i>.scale   f32 [n]  (f8_e4m3 only: per-row scale)
    input.c<i>.bias    f32 [n]  (cases with bias)
    output.c<i>.y      f32 [m, n]
Params: dtype, cases (list of {m, n, k, bias, atol}).

Tolerance (atol; rtol 0), computed from the data as a bound rather than fitted, per case (params)
and for the fixture (the largest):
    f32 arithmetic on both sides: 2 (k + 2) 2^-24 max_ij sum_p |x_ip w_jp|
    q8_0 / q4_0 add the int8 activations of the engine's kernels (blocks of 32, scale max|x|/127,
    error <= scale/2 per element): max_ij sum_p |w_jp| scale_i(p) / 2, plus f32 slack on it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from ..fixtures import Fixture, f32, op

U = 2.0 ** -24

# The 16 NormalFloat-4 levels (include/batch_forge/ops/quant.h), as f32.
NF4_VALUES = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=np.float32)

BLOCK = {"q8_0": (32, 34), "q4_0": (32, 18), "nf4": (64, 34)}  # elements, bytes per block

# (m, n, k, bias): k is a multiple of the block and of 64 or (128 + 32) for the q-types.
CASES = {
    "block32": [(1, 37, 160, True), (3, 70, 64, False), (13, 37, 608, True), (7, 19, 160, False),
                (1, 19, 608, False), (33, 70, 160, True)],
    "block64": [(1, 37, 192, True), (3, 70, 64, False), (13, 37, 576, True), (7, 19, 192, False),
                (33, 70, 128, True)],
    "plain": [(1, 37, 100, True), (3, 70, 64, False), (13, 37, 160, True), (7, 19, 37, False),
              (33, 70, 96, True)],
}


def _f16_scales(rng, count, positive=False):
    mag = rng.uniform(0.002, 0.02, count)
    sign = 1.0 if positive else rng.choice([-1.0, 1.0], count)
    return (mag * sign).astype(np.float16)


def random_blocks(rng, dtype: str, n: int, k: int) -> np.ndarray:
    """Raw bytes [n, k / block * block_bytes] of random valid blocks."""
    elems, nbytes = BLOCK[dtype]
    nb = n * k // elems
    scales = _f16_scales(rng, nb, positive=dtype == "nf4")  # nf4 stores absmax
    codes = rng.integers(0, 256, (nb, nbytes - 2), dtype=np.uint8)
    blocks = np.concatenate([scales.view(np.uint8).reshape(nb, 2), codes], axis=1)
    return blocks.reshape(n, k // elems * nbytes)


def dequantize_blocks(raw: np.ndarray, dtype: str, k: int) -> np.ndarray:
    """f32 [n, k] of raw blocks, by the formulas of docs/quantization.md."""
    elems, nbytes = BLOCK[dtype]
    n = raw.shape[0]
    b = raw.reshape(n, k // elems, nbytes)
    d = b[:, :, :2].copy().view(np.float16).astype(np.float32)  # [n, nb, 1]
    qs = b[:, :, 2:]
    if dtype == "q8_0":
        vals = qs.view(np.int8).astype(np.float32)
    elif dtype == "q4_0":
        q = np.concatenate([qs & 0xF, qs >> 4], axis=2).astype(np.int32)  # value j, then j + 16
        vals = (q - 8).astype(np.float32)
    else:
        codes = np.concatenate([qs & 0xF, qs >> 4], axis=2)  # code j, then j + 32
        vals = NF4_VALUES[codes]
    return (vals * d).reshape(n, k).astype(np.float32)


def int8_activation_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[m, n]: sum_p |w_jp| * scale_i(p) / 2 with scale = max|x over its block of 32| / 127."""
    m, k = x.shape
    scale = np.abs(x.astype(np.float64)).reshape(m, k // 32, 32).max(axis=2) / 127  # [m, k/32]
    wblock = np.abs(w.astype(np.float64)).reshape(w.shape[0], k // 32, 32).sum(axis=2)  # [n, k/32]
    return scale @ wblock.T / 2


def _layer(x, w, b):
    """eqx.nn.Linear with the given weight [n, k] and bias, over the rows of x."""
    n, k = w.shape
    lin = eqx.nn.Linear(k, n, use_bias=b is not None, key=jax.random.PRNGKey(0))
    lin = eqx.tree_at(lambda l: l.weight, lin, jnp.asarray(w))
    if b is not None:
        lin = eqx.tree_at(lambda l: l.bias, lin, jnp.asarray(b))
    with jax.default_matmul_precision("highest"):
        return f32(jax.vmap(lin)(jnp.asarray(x)))


def _weight(rng, dtype: str, n: int, k: int):
    """(stored weight, f32 [n, k] dequantized, per-row scale or None)."""
    if dtype in BLOCK:
        raw = random_blocks(rng, dtype, n, k)
        return raw, dequantize_blocks(raw, dtype, k), None
    values = rng.standard_normal((n, k)) * 0.1
    if dtype == "f32":
        w = f32(values)
        return w, w, None
    if dtype == "f8_e4m3":
        codes = rng.integers(0, 256, (n, k), dtype=np.uint8)
        codes[(codes & 0x7F) == 0x7F] ^= 1  # no NaN codes
        stored = codes.view(ml_dtypes.float8_e4m3fn)
        scale = f32(rng.uniform(0.002, 0.02, n))
        return stored, stored.astype(np.float32) * scale[:, None], scale
    np_type = np.float16 if dtype == "f16" else ml_dtypes.bfloat16
    stored = values.astype(np_type)
    return stored, stored.astype(np.float32), None


def linear_fixture(dtype: str, seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    family = "block32" if dtype in ("q8_0", "q4_0") else "block64" if dtype == "nf4" else "plain"
    inputs, outputs, cases, atol = {}, {}, [], 0.0
    for i, (m, n, k, has_bias) in enumerate(CASES[family]):
        x = f32(rng.standard_normal((m, k)))  # [m, k]
        stored, w, scale = _weight(rng, dtype, n, k)  # w: [n, k] f32
        bias = f32(rng.standard_normal(n)) if has_bias else None
        y = _layer(x, w, bias)  # [m, n]
        name = f"c{i}"
        inputs[f"{name}.x"] = x
        inputs[f"{name}.weight"] = stored
        if scale is not None:
            inputs[f"{name}.scale"] = scale
        if bias is not None:
            inputs[f"{name}.bias"] = bias
        outputs[f"{name}.y"] = y
        abs_sum = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T  # [m, n]
        if bias is not None:
            abs_sum += np.abs(bias)
        bound = 2 * (k + 2) * U * abs_sum
        if dtype in ("q8_0", "q4_0"):
            quant = int8_activation_bound(x, w)
            bound = bound + quant + 2 * (k + 8) * U * (abs_sum + 2 * quant)
        cases.append({"m": m, "n": n, "k": k, "bias": has_bias, "atol": float(bound.max())})
        atol = max(atol, float(bound.max()))
    return Fixture(f"linear_{dtype}", seed, inputs, outputs, {"dtype": dtype, "cases": cases},
                   atol=atol, rtol=0.0)


def _register(dtype: str):
    op(f"linear_{dtype}")(lambda seed: linear_fixture(dtype, seed))


for _dtype in ("f32", "f16", "bf16", "f8_e4m3", "q8_0", "q4_0", "nf4"):
    _register(_dtype)
