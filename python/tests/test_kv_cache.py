"""KV-cache decoding of the reference transformer: prefill + one-token decode steps give the same
logits as the plain forward over the whole sequence, and generate() is the argmax of re-running
the full forward after every token."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from batch_forge.families.transformer import (TransformerConfig, forward_with_cache, generate,
                                              init_cache, init_transformer)

forward = eqx.filter_jit(lambda model, tokens: model(tokens))
cached = eqx.filter_jit(forward_with_cache)

# Odd shapes on purpose: head_dim 12, vocab 97, grouped KV heads, every bias and both variants.
CONFIGS = {
    "rms_swiglu_gqa_untied": dict(norm="rms", mlp="swiglu", n_heads=6, n_kv_heads=2),
    "layer_gelu_biases_tied": dict(norm="layer", mlp="gelu", n_heads=6, n_kv_heads=3,
                                   qkv_bias=True, out_bias=True, mlp_bias=True,
                                   tie_embeddings=True),
    "rms_gelu_mha_biases": dict(norm="rms", mlp="gelu", n_heads=4, n_kv_heads=4,
                                qkv_bias=True, mlp_bias=True),
    "layer_swiglu_mqa_tied": dict(norm="layer", mlp="swiglu", n_heads=6, n_kv_heads=1,
                                  out_bias=True, tie_embeddings=True, rope_theta=500.0),
}


def _config(**overrides) -> TransformerConfig:
    base = dict(vocab_size=97, dim=40, n_layers=3, head_dim=12, hidden_dim=56, norm_eps=1e-5,
                max_seq_len=64)
    return TransformerConfig(**{**base, **overrides})


def _assert_close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_prefill_then_decode_matches_full_forward(name):
    cfg = _config(**CONFIGS[name])
    model = init_transformer(cfg, jax.random.PRNGKey(3))
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, cfg.vocab_size, 23), jnp.int32)
    want = forward(model, tokens)  # [23, vocab]

    cache = init_cache(model, 40)  # longer than the sequence: unwritten rows must stay unseen
    prefill, cache = cached(model, tokens[:9], cache, jnp.int32(0))
    _assert_close(prefill, want[:9])
    for pos in range(9, 23):
        step, cache = cached(model, tokens[pos:pos + 1], cache, jnp.int32(pos))
        assert step.shape == (1, cfg.vocab_size) and step.dtype == jnp.float32
        _assert_close(step[0], want[pos])


def test_chunked_prefill_matches_full_forward():
    cfg = _config(**CONFIGS["layer_gelu_biases_tied"])
    model = init_transformer(cfg, jax.random.PRNGKey(4))
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, cfg.vocab_size, 30), jnp.int32)
    want = forward(model, tokens)
    cache = init_cache(model, 30)  # exactly full at the end
    got = []
    for start, stop in ((0, 7), (7, 19), (19, 30)):
        logits, cache = cached(model, tokens[start:stop], cache, jnp.int32(start))
        got.append(logits)
    _assert_close(jnp.concatenate(got), want)


def test_cache_holds_rotated_keys_at_their_positions():
    cfg = _config(**CONFIGS["rms_swiglu_gqa_untied"])
    model = init_transformer(cfg, jax.random.PRNGKey(5))
    cache = init_cache(model, 16)
    assert cache.keys.shape == (cfg.n_layers, 16, cfg.n_kv_heads, cfg.head_dim)
    assert cache.values.shape == cache.keys.shape
    tokens = jnp.asarray([5, 17, 42, 96], jnp.int32)
    _, cache = cached(model, tokens, cache, jnp.int32(0))
    keys = np.asarray(cache.keys)
    assert np.abs(keys[:, :4]).max() > 0 and np.abs(keys[:, 4:]).max() == 0
    # Layer 0 sees the embeddings directly, so its values are value_proj(attn_norm(embedding)).
    x = jax.vmap(model.layers[0].attn_norm)(model.embed.weight[tokens])
    v = jax.vmap(model.layers[0].attn.value_proj)(x).reshape(4, cfg.n_kv_heads, cfg.head_dim)
    _assert_close(cache.values[0, :4], v)


def test_overflowing_the_cache_is_refused():
    model = init_transformer(_config(**CONFIGS["rms_swiglu_gqa_untied"]), jax.random.PRNGKey(0))
    cache = init_cache(model, 8)
    with pytest.raises(ValueError, match="overflow a cache of 8 positions"):
        forward_with_cache(model, jnp.zeros(3, jnp.int32), cache, 6)
    with pytest.raises(ValueError, match="max_seq_len"):
        init_cache(model, 65)


def _greedy_by_full_forward(model, prompt, n):
    """Re-runs the whole sequence for every token. The forward is causal, so padding the
    sequence to one fixed length leaves the logits of the real positions unchanged (and needs
    a single compilation)."""
    seq = list(prompt)
    length = len(prompt) + n
    for _ in range(n):
        logits = forward(model, jnp.asarray(seq + [0] * (length - len(seq)), jnp.int32))
        seq.append(int(jnp.argmax(logits[len(seq) - 1])))
    return seq[len(prompt):]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_greedy_generate_equals_full_forward_argmax(name):
    cfg = _config(**CONFIGS[name])
    model = init_transformer(cfg, jax.random.PRNGKey(7))
    prompt = [int(t) for t in np.random.default_rng(3).integers(0, cfg.vocab_size, 5)]
    want = _greedy_by_full_forward(model, prompt, 12)
    assert generate(model, prompt, 12) == want


def test_generate_stops_after_eos_and_respects_limits():
    cfg = _config(**CONFIGS["rms_swiglu_gqa_untied"])
    model = init_transformer(cfg, jax.random.PRNGKey(7))
    prompt = [1, 2, 3]
    full = generate(model, prompt, 10)
    stop = full[4]
    first = full.index(stop)
    assert generate(model, prompt, 10, eos_ids=[stop]) == full[:first + 1]
    assert generate(model, prompt, 0) == []
    # The longest request that fits: the last new token is never fed back.
    assert len(generate(model, [0] * 60, 5)) == 5
    with pytest.raises(ValueError, match="exceed max_seq_len"):
        generate(model, [0] * 60, 6)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, [97], 1)


def test_sampling_is_reproducible_and_follows_the_distribution():
    cfg = _config(**CONFIGS["layer_gelu_biases_tied"])
    model = init_transformer(cfg, jax.random.PRNGKey(8))
    prompt = [4, 8, 15]
    a = generate(model, prompt, 8, temperature=0.7, key=jax.random.PRNGKey(11))
    assert a == generate(model, prompt, 8, temperature=0.7, key=jax.random.PRNGKey(11))
    assert all(0 <= t < cfg.vocab_size for t in a) and len(a) == 8
    # At a tiny temperature sampling collapses onto the greedy choice.
    assert generate(model, prompt, 8, temperature=1e-4, key=jax.random.PRNGKey(1)) == \
        generate(model, prompt, 8)
    with pytest.raises(ValueError, match="needs a key"):
        generate(model, prompt, 2, temperature=1.0)
