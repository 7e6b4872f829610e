"""Parity fixtures of the element-wise ops: jax.nn.silu, jax.nn.gelu (erf and tanh),
jax.nn.softplus, the SwiGLU gate silu(gate) * up, and the residual add.

Inputs mix normal values at two scales with the values where formulas break: ±0, ±1e-30, ±20,
±88.8 (e^x overflows f32 past 88.7), ±100, ±1e20, ±inf and NaN. The width 101 (96 + 5) is not a
multiple of any vector length, so every kernel runs its tail.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ..fixtures import Fixture, f32, op

SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0, 5.0, -5.0, 20.0, -20.0, 88.8, -88.8, 100.0, -100.0,
           1e20, -1e20, np.inf, -np.inf, np.nan]

# XLA's f32 exp / erfc / tanh / log1p are a few ulps from exact, as ours are; the tanh GELU
# loses 1 + tanh u to cancellation below x ≈ −3 in JAX (absolute error ≈ |x| · 2^-25). Where
# results are tiny, XLA flushes subnormals to 0, which atol covers.
ATOL, RTOL = 1e-6, 1e-5


def _inputs(rng, rows=7, dim=101):
    x = rng.standard_normal((rows, dim)) * 4.0
    x[1] *= 8.0  # a row at a wider scale
    flat = x.reshape(-1)
    flat[-len(SPECIAL):] = SPECIAL
    return f32(x)  # [rows, dim]


def _unary(name, fn):
    @op(name)
    def _fixture(seed: int) -> Fixture:
        rng = np.random.default_rng(seed)
        x = _inputs(rng)
        y = f32(fn(jnp.asarray(x)))
        return Fixture(name, seed, {"x": x}, {"y": y}, {}, atol=ATOL, rtol=RTOL)
    return _fixture


_unary("silu", jax.nn.silu)
_unary("gelu", lambda x: jax.nn.gelu(x, approximate=False))
_unary("gelu_tanh", lambda x: jax.nn.gelu(x, approximate=True))
_unary("softplus", jax.nn.softplus)


@op("silu_mul")
def _silu_mul(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    gate = _inputs(rng, 5)  # [5, 101]
    up = f32(rng.standard_normal((5, 101)))  # [5, 101]
    up[np.isnan(gate) | np.isinf(gate)] = 1.0  # keep the specials' own results visible
    y = f32(jax.nn.silu(jnp.asarray(gate)) * jnp.asarray(up))
    return Fixture("silu_mul", seed, {"gate": gate, "up": up}, {"y": y}, {}, atol=ATOL, rtol=RTOL)


@op("add")
def _add(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    a = f32(rng.standard_normal((5, 101)))  # [5, 101]
    b = f32(rng.standard_normal((5, 101)) * 1e-3)  # [5, 101]: a small update to a residual
    y = f32(jnp.asarray(a) + jnp.asarray(b))
    return Fixture("add", seed, {"a": a, "b": b}, {"y": y}, {}, atol=0.0, rtol=0.0)
