"""Parity fixtures of the embedding gather from every table type: y = table[ids] in JAX, on the
table's f32 values.

Quantized tables are random valid block bytes written by numpy (finite f16 scales, any codes),
laid out as docs/quantization.md and include/batch_forge/ops/quant.h say, and dequantized here
with numpy in f32, one IEEE operation per value as the engine does, so results are bit-exact
(tolerance 0).

Tensors: input.table (f32 / f16 / bf16 [vocab, dim], or u8 [vocab, row bytes] for q8_0, q4_0,
nf4), input.ids (i32 [n]: both ends of the vocabulary and repeats), output.y (f32 [n, dim]).
Params: dtype, dim.
"""

import jax.numpy as jnp
import ml_dtypes
import numpy as np

from ..fixtures import Fixture, f32, op

VOCAB = 40

# The f32 values of kNf4Values (include/batch_forge/ops/quant.h; python/tests checks they agree).
NF4_VALUES = f32([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0])

# Elements and bytes per block; every block starts with its f16 scale (2 bytes, little-endian).
BLOCKS = {"q8_0": (32, 34), "q4_0": (32, 18), "nf4": (64, 34)}


def random_blocks(rng, scheme: str, rows: int, dim: int):
    """Random valid blocks: (u8 [rows, dim / block · block_bytes], f32 values [rows, dim])."""
    block, block_bytes = BLOCKS[scheme]
    n_blocks = rows * dim // block
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    scale = np.abs(rng.standard_normal(n_blocks) * 0.05).astype(np.float16)  # finite f16
    raw[:, 0:2] = scale.view(np.uint8).reshape(n_blocks, 2)  # little-endian, as the engine
    d = scale.astype(np.float32)[:, None]  # [n_blocks, 1]
    body = raw[:, 2:]
    if scheme == "q8_0":  # x[i] = qs[i] · d
        values = body.view(np.int8).astype(np.float32) * d
    elif scheme == "q4_0":  # byte j: q[j] low nibble, q[j + 16] high; x = (q − 8) · d
        q = np.concatenate([body & 0xF, body >> 4], axis=1).astype(np.int32) - 8
        values = q.astype(np.float32) * d
    else:  # nf4, byte j: c[j] low nibble, c[j + 32] high; x = NF4[c] · absmax
        c = np.concatenate([body & 0xF, body >> 4], axis=1)
        values = NF4_VALUES[c] * d
    return raw.reshape(rows, -1), f32(values.reshape(rows, dim))


def _ids(rng):
    ids = rng.integers(0, VOCAB, size=13).astype(np.int32)
    return np.concatenate([ids, np.int32([0, VOCAB - 1, ids[0]])])  # the ends, and a repeat


def _embedding(name, seed, dtype):
    rng = np.random.default_rng(seed)
    if dtype in BLOCKS:
        dim = 5 * BLOCKS[dtype][0] if dtype != "nf4" else 3 * BLOCKS[dtype][0]
        table, values = random_blocks(rng, dtype, VOCAB, dim)
    else:
        dim = 101  # 96 + 5: a tail for every vector width
        values = f32(rng.standard_normal((VOCAB, dim)))
        if dtype != "f32":  # f16 / bf16: include what a conversion can get wrong
            values[3, :6] = [np.inf, -np.inf, np.nan, 1e-7, -3e-6, 0.0]  # subnormal in f16
            np_type = np.float16 if dtype == "f16" else ml_dtypes.bfloat16
            table = values.astype(np_type)
            values = table.astype(np.float32)
        else:
            table = values
    ids = _ids(rng)
    ids[1] = 3  # the row of special values
    y = f32(jnp.asarray(values)[jnp.asarray(ids)])  # [n, dim]
    return Fixture(name, seed, {"table": table, "ids": ids}, {"y": y}, {"dtype": dtype, "dim": dim},
                   atol=0.0, rtol=0.0)


def _register(dtype):
    name = f"embedding_{dtype}"
    op(name)(lambda seed: _embedding(name, seed, dtype))


for _dtype in ("f32", "f16", "bf16", "q8_0", "q4_0", "nf4"):
    _register(_dtype)
