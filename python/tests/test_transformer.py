"""Reference transformer: tensor names/shapes per docs/model-format.md, config validation,
causality, and agreement with an independent numpy implementation of the same math."""

import os
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batch_forge
from batch_forge.families.transformer import (DEFAULT_CONFIG, TransformerConfig,
                                              init_transformer, rope)
from conftest import REPO_ROOT

forward = eqx.filter_jit(lambda model, tokens: model(tokens))


def _config(**overrides) -> TransformerConfig:
    return TransformerConfig.from_dict({**DEFAULT_CONFIG.to_dict(), **overrides})


def _shapes(cfg):
    model = init_transformer(cfg, jax.random.PRNGKey(0))
    return {k: list(v.shape) for k, v in batch_forge.named_arrays(model).items()}


def expected_shapes(c: TransformerConfig) -> dict:
    """The docs/model-format.md tensor table, written out by hand."""
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    out = {"embed.weight": [c.vocab_size, c.dim]}

    def norm(prefix):
        out[f"{prefix}.weight"] = [c.dim]
        if c.norm == "layer":
            out[f"{prefix}.bias"] = [c.dim]

    def linear(prefix, rows, cols, bias):
        out[f"{prefix}.weight"] = [rows, cols]
        if bias:
            out[f"{prefix}.bias"] = [rows]

    for i in range(c.n_layers):
        p = f"layers.{i}"
        norm(f"{p}.attn_norm")
        linear(f"{p}.attn.query_proj", q, c.dim, c.qkv_bias)
        linear(f"{p}.attn.key_proj", kv, c.dim, c.qkv_bias)
        linear(f"{p}.attn.value_proj", kv, c.dim, c.qkv_bias)
        linear(f"{p}.attn.output_proj", c.dim, q, c.out_bias)
        norm(f"{p}.mlp_norm")
        if c.mlp == "swiglu":
            linear(f"{p}.mlp.gate_proj", c.hidden_dim, c.dim, c.mlp_bias)
        linear(f"{p}.mlp.up_proj", c.hidden_dim, c.dim, c.mlp_bias)
        linear(f"{p}.mlp.down_proj", c.dim, c.hidden_dim, c.mlp_bias)
    norm("final_norm")
    if not c.tie_embeddings:
        out["lm_head.weight"] = [c.vocab_size, c.dim]
    return out


def test_default_model_matches_documented_tensors():
    shapes = _shapes(DEFAULT_CONFIG)
    assert shapes == expected_shapes(DEFAULT_CONFIG)
    assert shapes["embed.weight"] == [256, 64]
    assert shapes["layers.1.attn.query_proj.weight"] == [64, 64]
    assert shapes["layers.0.attn.key_proj.weight"] == [32, 64]  # 2 kv heads * 16
    assert shapes["layers.0.attn.output_proj.weight"] == [64, 64]
    assert shapes["layers.0.mlp.gate_proj.weight"] == [172, 64]
    assert shapes["layers.1.mlp.down_proj.weight"] == [64, 172]
    assert shapes["final_norm.weight"] == [64] and shapes["lm_head.weight"] == [256, 64]
    assert list(shapes)[:3] == ["embed.weight", "layers.0.attn_norm.weight",
                                "layers.0.attn.query_proj.weight"]
    # Every weight named in the doc's transformer table exists in the default model.
    with open(os.path.join(REPO_ROOT, "docs", "model-format.md"), encoding="utf-8") as f:
        doc = f.read().split("## Family `transformer`", 1)[1]
    documented = re.findall(r"^\| `([a-z_.{}]+\.weight)`", doc, flags=re.M)
    assert len(documented) >= 10
    for name in documented:
        assert name.replace("{i}", "1") in shapes, name


def test_odd_config_matches_documented_tensors():
    cfg = _config(norm="layer", mlp="gelu", qkv_bias=True, out_bias=True, mlp_bias=True,
                  tie_embeddings=True, dim=48, head_dim=10, n_heads=6, n_kv_heads=3)
    shapes = _shapes(cfg)
    assert shapes == expected_shapes(cfg)
    assert shapes["layers.0.attn.query_proj.bias"] == [60]
    assert shapes["layers.1.attn_norm.bias"] == [48]
    assert "lm_head.weight" not in shapes and "layers.0.mlp.gate_proj.weight" not in shapes


@pytest.mark.parametrize("field,value", [
    ("head_dim", 15), ("n_kv_heads", 3), ("dim", 0), ("norm", "batch"), ("mlp", "relu"),
    ("qkv_bias", 1), ("norm_eps", -1.0), ("n_layers", 2.0), ("vocab_size", True)])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        _config(**{field: value})


def test_config_unknown_and_missing_fields():
    with pytest.raises(ValueError, match="unknown field.*dimm"):
        _config(dimm=3)
    with pytest.raises(ValueError, match="missing field.*max_seq_len.*vocab_size"):
        TransformerConfig.from_dict({"dim": 8})
    assert TransformerConfig.from_dict(DEFAULT_CONFIG.to_dict()) == DEFAULT_CONFIG
    assert _config(rope_theta=500000).rope_theta == 500000.0


def test_rope_matches_equinox():
    x = jax.random.normal(jax.random.PRNGKey(0), (9, 16))  # [T, head_dim]
    want = eqx.nn.RotaryPositionalEmbedding(16, theta=10000.0)(x)
    got = rope(x[:, None, :], jnp.arange(9), 10000.0)[:, 0, :]
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


def test_forward_is_causal():
    model = init_transformer(DEFAULT_CONFIG, jax.random.PRNGKey(1))
    tokens = jnp.array([3, 14, 15, 92, 65, 35, 89, 79, 32, 38], jnp.int32)
    changed = tokens.at[6].set(200)
    a, b = np.asarray(forward(model, tokens)), np.asarray(forward(model, changed))
    assert a.shape == (10, 256) and np.isfinite(a).all()
    np.testing.assert_allclose(a[:6], b[:6], atol=1e-6)
    assert np.abs(a[6:] - b[6:]).max(axis=-1).min() > 1e-4
    with pytest.raises(ValueError, match="max_seq_len"):
        model(jnp.zeros(DEFAULT_CONFIG.max_seq_len + 1, jnp.int32))


# ---- independent numpy reference (float64), written from the math, not from the module ----

def _np_rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _np_rope(x, theta):
    """x: [T, heads, hd]; rotate pairs (j, j + hd/2) by angle pos * theta^(-2j/hd)."""
    T, _, hd = x.shape
    ang = np.arange(T)[:, None] * theta ** (-np.arange(0, hd, 2) / hd)[None, :]  # [T, hd/2]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _np_forward(w, c: TransformerConfig, tokens):
    w = {k: v.astype(np.float64) for k, v in w.items()}
    T, H, KV, hd = len(tokens), c.n_heads, c.n_kv_heads, c.head_dim
    x = w["embed.weight"][tokens]  # [T, dim]
    for i in range(c.n_layers):
        p = f"layers.{i}."
        h = _np_rms(x, w[p + "attn_norm.weight"], c.norm_eps)
        q = _np_rope((h @ w[p + "attn.query_proj.weight"].T).reshape(T, H, hd), c.rope_theta)
        k = _np_rope((h @ w[p + "attn.key_proj.weight"].T).reshape(T, KV, hd), c.rope_theta)
        v = (h @ w[p + "attn.value_proj.weight"].T).reshape(T, KV, hd)
        o = np.zeros((T, H, hd))
        for head in range(H):
            kvh = head // (H // KV)
            s = q[:, head] @ k[:, kvh].T / np.sqrt(hd)  # [T, T]
            s[np.triu_indices(T, 1)] = -np.inf
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            o[:, head] = (e / e.sum(axis=-1, keepdims=True)) @ v[:, kvh]
        x = x + o.reshape(T, H * hd) @ w[p + "attn.output_proj.weight"].T
        h = _np_rms(x, w[p + "mlp_norm.weight"], c.norm_eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    x = _np_rms(x, w["final_norm.weight"], c.norm_eps)
    return x @ w["lm_head.weight"].T


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_one_layer_matches_numpy_reference(n_kv_heads):
    cfg = _config(n_layers=1, n_heads=4, n_kv_heads=n_kv_heads, head_dim=12, rope_theta=500.0)
    model = init_transformer(cfg, jax.random.PRNGKey(7))
    tokens = np.array([5, 1, 250, 17, 17, 99, 3], np.int32)
    want = _np_forward(batch_forge.named_arrays(model), cfg, tokens)
    got = np.asarray(forward(model, jnp.asarray(tokens)))
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)
