"""Parity fixtures of rotate-half RoPE at explicit positions: families.transformer.rope, the
Equinox-form RoPE the transformer family uses (python/tests checks it against
eqx.nn.RotaryPositionalEmbedding).

`rope`: head_dim 128 at positions up to 65535. For power-of-two head dims XLA's f32 frequencies
theta^(-2i/d) are the correctly rounded ones the engine uses (src/ops/rope_freqs.h), so the only
differences are the last-ulp roundings of cos, sin and the rotation.
`rope_odd`: head_dim 40 (a 4-wide tail after 16 lanes). For such head dims XLA's f32 pow is a
few ulps off for some frequencies (up to ~1e-6 relative), which moves the angle at position p by
about p · 1e-6 · f_i: at position 4095 results differ by up to ~1e-5, hence atol 3e-5.
"""

import jax.numpy as jnp
import numpy as np

from ..families.transformer import rope
from ..fixtures import Fixture, f32, op


def _rope_fixture(name, seed, rows, heads, head_dim, positions, theta, atol, rtol):
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((rows, heads, head_dim)))  # [rows, heads, head_dim]
    positions = np.asarray(positions, dtype=np.int32)  # [rows]
    y = f32(rope(jnp.asarray(x), jnp.asarray(positions), theta))
    return Fixture(name, seed, {"x": x, "positions": positions}, {"y": y}, {"theta": theta},
                   atol=atol, rtol=rtol)


@op("rope")
def _rope(seed: int) -> Fixture:
    positions = [0, 1, 2, 3, 17, 100, 1000, 4095, 65535]
    return _rope_fixture("rope", seed, len(positions), 4, 128, positions, 10000.0,
                         atol=2e-6, rtol=1e-5)


@op("rope_odd")
def _rope_odd(seed: int) -> Fixture:
    positions = [0, 1, 5, 13, 63, 1000, 4095]
    return _rope_fixture("rope_odd", seed, len(positions), 3, 40, positions, 500000.0,
                         atol=3e-5, rtol=1e-5)
