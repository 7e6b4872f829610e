"""Parity fixtures of the normalization and softmax ops (Equinox / jax.nn are the reference)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..fixtures import Fixture, f32, op


@op("rms_norm")
def _rms_norm(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((7, 96)) * 2.0)  # [7, 96]: odd row count on purpose
    weight = f32(1.0 + 0.2 * rng.standard_normal(96))  # [96]
    eps = 1e-5
    norm = eqx.nn.RMSNorm(96, eps=eps, use_bias=False)
    norm = eqx.tree_at(lambda n: n.weight, norm, jnp.asarray(weight))
    y = jax.vmap(norm)(jnp.asarray(x))  # [7, 96]
    return Fixture("rms_norm", seed, {"x": x, "weight": weight}, {"y": f32(y)},
                   {"eps": eps}, atol=1e-5, rtol=1e-5)


@op("softmax")
def _softmax(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((5, 67)) * 30.0)  # [5, 67]: large logits, needs max-subtraction
    x[1, 3] = 120.0  # exp(120) overflows f32 without the max trick
    y = jax.nn.softmax(jnp.asarray(x), axis=-1)  # [5, 67]
    return Fixture("softmax", seed, {"x": x}, {"y": f32(y)}, {"axis": -1},
                   atol=1e-6, rtol=1e-5)


@op("layer_norm")
def _layer_norm(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((6, 80)) * 1.5 + 3.0)  # [6, 80]: non-zero mean
    weight = f32(1.0 + 0.2 * rng.standard_normal(80))  # [80]
    bias = f32(0.1 * rng.standard_normal(80))  # [80]
    eps = 1e-5
    norm = eqx.nn.LayerNorm(80, eps=eps)
    norm = eqx.tree_at(lambda n: (n.weight, n.bias), norm,
                       (jnp.asarray(weight), jnp.asarray(bias)))
    y = jax.vmap(norm)(jnp.asarray(x))  # [6, 80]
    return Fixture("layer_norm", seed, {"x": x, "weight": weight, "bias": bias},
                   {"y": f32(y)}, {"eps": eps}, atol=1e-5, rtol=1e-5)
