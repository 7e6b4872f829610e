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


# Variants beyond the three above: Equinox's other flags and widths that are not a multiple of
# any vector length (96 + 5), so every kernel runs its tail.

def _equinox_norm(cls, x, eps, weight=None, bias=None, **flags):
    """y = vmap(cls(dim, eps, **flags))(x), with the given weight / bias arrays swapped in."""
    norm = cls(x.shape[-1], eps=eps, **flags)
    if weight is not None:
        norm = eqx.tree_at(lambda n: n.weight, norm, jnp.asarray(weight))
    if bias is not None:
        norm = eqx.tree_at(lambda n: n.bias, norm, jnp.asarray(bias))
    return f32(jax.vmap(norm)(jnp.asarray(x)))


@op("rms_norm_plain")
def _rms_norm_plain(seed: int) -> Fixture:
    """eqx.nn.RMSNorm without weight or bias."""
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((5, 101)) * 3.0)  # [5, 101]
    eps = 1e-6
    y = _equinox_norm(eqx.nn.RMSNorm, x, eps, use_weight=False, use_bias=False)
    return Fixture("rms_norm_plain", seed, {"x": x}, {"y": y}, {"eps": eps}, atol=1e-5, rtol=1e-5)


@op("rms_norm_bias")
def _rms_norm_bias(seed: int) -> Fixture:
    """eqx.nn.RMSNorm with its defaults: a weight and a bias (use_bias=True), eps 1e-5."""
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((3, 4099)))  # [3, 4099]: a long row with a tail
    weight = f32(1.0 + 0.2 * rng.standard_normal(4099))  # [4099]
    bias = f32(0.1 * rng.standard_normal(4099))  # [4099]
    norm = eqx.nn.RMSNorm(4099)
    assert norm.use_weight and norm.use_bias and norm.eps == 1e-5  # the defaults tested here
    y = _equinox_norm(eqx.nn.RMSNorm, x, norm.eps, weight, bias)
    return Fixture("rms_norm_bias", seed, {"x": x, "weight": weight, "bias": bias}, {"y": y},
                   {"eps": norm.eps}, atol=1e-5, rtol=1e-5)


@op("layer_norm_plain")
def _layer_norm_plain(seed: int) -> Fixture:
    """eqx.nn.LayerNorm without weight or bias."""
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((4, 101)) * 2.0 - 1.0)  # [4, 101]
    eps = 1e-6
    y = _equinox_norm(eqx.nn.LayerNorm, x, eps, use_weight=False, use_bias=False)
    return Fixture("layer_norm_plain", seed, {"x": x}, {"y": y}, {"eps": eps}, atol=1e-5, rtol=1e-5)


@op("layer_norm_weight")
def _layer_norm_weight(seed: int) -> Fixture:
    """eqx.nn.LayerNorm with a weight and no bias."""
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((3, 37)) + 5.0)  # [3, 37]: mean far from 0
    weight = f32(1.0 + 0.2 * rng.standard_normal(37))  # [37]
    eps = 1e-5
    y = _equinox_norm(eqx.nn.LayerNorm, x, eps, weight, use_bias=False)
    return Fixture("layer_norm_weight", seed, {"x": x, "weight": weight}, {"y": y}, {"eps": eps},
                   atol=1e-5, rtol=1e-5)


@op("softmax_masked")
def _softmax_masked(seed: int) -> Fixture:
    """Rows with −inf (masked) entries, a fully masked row (JAX gives NaN), a +inf, a spike."""
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((6, 101)) * 10.0)  # [6, 101]
    x[0, :] = -np.inf  # fully masked: NaN, as −inf − (−inf)
    x[1, 50:] = -np.inf  # causal-style mask: exactly 0 there
    x[2, 100] = np.inf  # +inf: NaN everywhere (inf − inf)
    x[3, 7] = 200.0  # one logit dominates
    y = f32(jax.nn.softmax(jnp.asarray(x), axis=-1))  # [6, 101]
    return Fixture("softmax_masked", seed, {"x": x}, {"y": y}, {"axis": -1}, atol=1e-6, rtol=1e-5)
