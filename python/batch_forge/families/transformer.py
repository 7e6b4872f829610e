"""Reference decoder-only transformer LM (family `transformer`, docs/model-format.md).

This is the ground truth the C++ engine is tested against, so it favours plain, explicit math
over speed. Conventions the engine must share:
  * pre-norm blocks: h = x + attn(attn_norm(x)); out = h + mlp(mlp_norm(h));
  * RoPE in rotate-half (NeoX) form, as eqx.nn.RotaryPositionalEmbedding, with positions 0..T-1;
  * grouped-query attention: query head h reads key/value head h // (n_heads // n_kv_heads);
  * scores scaled by 1/sqrt(head_dim), causal mask, softmax in float32;
  * tied embeddings: logits = final_norm(x) @ embed.weight.T.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import register


@dataclass(frozen=True)
class TransformerConfig:
    """Hyperparameters; field names and meaning are the `batch_forge.config` JSON object."""
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    norm: str  # "rms" | "layer"
    norm_eps: float
    mlp: str  # "swiglu" | "gelu"
    max_seq_len: int
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    tie_embeddings: bool = False
    rope_theta: float = 10000.0

    def __post_init__(self):
        errors = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                least = 0 if f.name == "n_layers" else 1
                if isinstance(value, bool) or not isinstance(value, int) or value < least:
                    errors.append(f"{f.name} must be an int >= {least}, got {value!r}")
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not math.isfinite(value) or value <= 0:
                    errors.append(f"{f.name} must be a number > 0, got {value!r}")
                else:
                    object.__setattr__(self, f.name, float(value))
            elif f.type == "bool" and not isinstance(value, bool):
                errors.append(f"{f.name} must be true or false, got {value!r}")
        if self.norm not in ("rms", "layer"):
            errors.append(f"norm must be 'rms' or 'layer', got {self.norm!r}")
        if self.mlp not in ("swiglu", "gelu"):
            errors.append(f"mlp must be 'swiglu' or 'gelu', got {self.mlp!r}")
        if not errors and self.n_heads % self.n_kv_heads:
            errors.append(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
        if not errors and self.head_dim % 2:
            errors.append(f"head_dim must be even for RoPE, got {self.head_dim}")
        if errors:
            raise ValueError("invalid transformer config: " + "; ".join(errors))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformerConfig":
        """Validated config; ValueError naming unknown, missing or bad fields."""
        if not isinstance(d, dict):
            raise ValueError(f"transformer config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING}
        unknown = sorted(set(d) - known)
        missing = sorted(required - set(d))
        if unknown or missing:
            parts = ([f"unknown field(s) {', '.join(unknown)}"] if unknown else []) + \
                    ([f"missing field(s) {', '.join(missing)}"] if missing else [])
            raise ValueError("invalid transformer config: " + "; ".join(parts))
        return cls(**d)


DEFAULT_CONFIG = TransformerConfig(
    vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, hidden_dim=172,
    norm="rms", norm_eps=1e-5, mlp="swiglu", max_seq_len=256, tie_embeddings=False)


def _norm(cfg: TransformerConfig):
    if cfg.norm == "rms":
        return eqx.nn.RMSNorm(cfg.dim, eps=cfg.norm_eps, use_bias=False)
    return eqx.nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)


def rope(x, positions, theta: float):
    """Rotate-half RoPE. x: [T, n, head_dim], positions: int [T] -> [T, n, head_dim]."""
    head_dim = x.shape[-1]
    freqs = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))  # [hd/2]
    angles = positions.astype(jnp.float32)[:, None] * freqs[None, :]  # [T, hd/2]
    cos = jnp.concatenate([jnp.cos(angles)] * 2, axis=-1)[:, None, :]  # [T, 1, hd]
    sin = jnp.concatenate([jnp.sin(angles)] * 2, axis=-1)[:, None, :]
    xf = x.astype(jnp.float32)
    half = head_dim // 2
    rotated = jnp.concatenate([-xf[..., half:], xf[..., :half]], axis=-1)
    return (xf * cos + rotated * sin).astype(x.dtype)


class Attention(eqx.Module):
    query_proj: eqx.nn.Linear
    key_proj: eqx.nn.Linear
    value_proj: eqx.nn.Linear
    output_proj: eqx.nn.Linear
    n_heads: int = eqx.field(static=True)
    n_kv_heads: int = eqx.field(static=True)
    head_dim: int = eqx.field(static=True)
    rope_theta: float = eqx.field(static=True)

    def __init__(self, cfg: TransformerConfig, *, key):
        kq, kk, kv, ko = jax.random.split(key, 4)
        q, kvw = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
        self.query_proj = eqx.nn.Linear(cfg.dim, q, use_bias=cfg.qkv_bias, key=kq)
        self.key_proj = eqx.nn.Linear(cfg.dim, kvw, use_bias=cfg.qkv_bias, key=kk)
        self.value_proj = eqx.nn.Linear(cfg.dim, kvw, use_bias=cfg.qkv_bias, key=kv)
        self.output_proj = eqx.nn.Linear(q, cfg.dim, use_bias=cfg.out_bias, key=ko)
        self.n_heads, self.n_kv_heads = cfg.n_heads, cfg.n_kv_heads
        self.head_dim, self.rope_theta = cfg.head_dim, cfg.rope_theta

    def __call__(self, x, positions):
        """x: [T, dim], positions: int [T] -> [T, dim]; causal over the T rows."""
        T = x.shape[0]
        q = jax.vmap(self.query_proj)(x).reshape(T, self.n_heads, self.head_dim)
        k = jax.vmap(self.key_proj)(x).reshape(T, self.n_kv_heads, self.head_dim)
        v = jax.vmap(self.value_proj)(x).reshape(T, self.n_kv_heads, self.head_dim)
        q, k = rope(q, positions, self.rope_theta), rope(k, positions, self.rope_theta)
        group = self.n_heads // self.n_kv_heads
        k = jnp.repeat(k, group, axis=1)  # [T, n_heads, hd]: head h uses kv head h // group
        v = jnp.repeat(v, group, axis=1)
        scores = jnp.einsum("thd,shd->hts", q.astype(jnp.float32), k.astype(jnp.float32))
        scores = scores / math.sqrt(self.head_dim)  # [H, T, T]
        causal = positions[:, None] >= positions[None, :]  # [T(query), T(key)]
        scores = jnp.where(causal[None], scores, -jnp.inf)
        probs = jax.nn.softmax(scores, axis=-1)  # f32
        out = jnp.einsum("hts,shd->thd", probs, v.astype(jnp.float32)).astype(x.dtype)
        return jax.vmap(self.output_proj)(out.reshape(T, self.n_heads * self.head_dim))


class SwiGLU(eqx.Module):
    gate_proj: eqx.nn.Linear
    up_proj: eqx.nn.Linear
    down_proj: eqx.nn.Linear

    def __init__(self, cfg: TransformerConfig, *, key):
        kg, ku, kd = jax.random.split(key, 3)
        self.gate_proj = eqx.nn.Linear(cfg.dim, cfg.hidden_dim, use_bias=cfg.mlp_bias, key=kg)
        self.up_proj = eqx.nn.Linear(cfg.dim, cfg.hidden_dim, use_bias=cfg.mlp_bias, key=ku)
        self.down_proj = eqx.nn.Linear(cfg.hidden_dim, cfg.dim, use_bias=cfg.mlp_bias, key=kd)

    def __call__(self, x):
        """x: [dim] -> [dim]."""
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class GeluMLP(eqx.Module):
    up_proj: eqx.nn.Linear
    down_proj: eqx.nn.Linear

    def __init__(self, cfg: TransformerConfig, *, key):
        ku, kd = jax.random.split(key)
        self.up_proj = eqx.nn.Linear(cfg.dim, cfg.hidden_dim, use_bias=cfg.mlp_bias, key=ku)
        self.down_proj = eqx.nn.Linear(cfg.hidden_dim, cfg.dim, use_bias=cfg.mlp_bias, key=kd)

    def __call__(self, x):
        """x: [dim] -> [dim]; tanh-approximated GELU."""
        return self.down_proj(jax.nn.gelu(self.up_proj(x), approximate=True))


class Block(eqx.Module):
    attn_norm: eqx.nn.RMSNorm | eqx.nn.LayerNorm
    attn: Attention
    mlp_norm: eqx.nn.RMSNorm | eqx.nn.LayerNorm
    mlp: SwiGLU | GeluMLP

    def __init__(self, cfg: TransformerConfig, *, key):
        ka, km = jax.random.split(key)
        self.attn_norm, self.mlp_norm = _norm(cfg), _norm(cfg)
        self.attn = Attention(cfg, key=ka)
        self.mlp = SwiGLU(cfg, key=km) if cfg.mlp == "swiglu" else GeluMLP(cfg, key=km)

    def __call__(self, x, positions):
        """x: [T, dim] -> [T, dim]."""
        h = x + self.attn(jax.vmap(self.attn_norm)(x), positions)
        return h + jax.vmap(self.mlp)(jax.vmap(self.mlp_norm)(h))


class Transformer(eqx.Module):
    embed: eqx.nn.Embedding
    layers: list
    final_norm: eqx.nn.RMSNorm | eqx.nn.LayerNorm
    lm_head: eqx.nn.Linear | None
    config: TransformerConfig = eqx.field(static=True)

    def __init__(self, config: TransformerConfig, *, key):
        """Equinox's default init; use init_transformer() for the reference random weights."""
        ke, kl, kh = jax.random.split(key, 3)
        self.config = config
        self.embed = eqx.nn.Embedding(config.vocab_size, config.dim, key=ke)
        self.layers = [Block(config, key=k) for k in jax.random.split(kl, config.n_layers)]
        self.final_norm = _norm(config)
        self.lm_head = None if config.tie_embeddings else eqx.nn.Linear(
            config.dim, config.vocab_size, use_bias=False, key=kh)

    def __call__(self, tokens):
        """tokens: int [T] (T <= max_seq_len) -> float32 logits [T, vocab_size]."""
        if tokens.shape[0] > self.config.max_seq_len:
            raise ValueError(f"{tokens.shape[0]} tokens exceed max_seq_len "
                             f"{self.config.max_seq_len}")
        positions = jnp.arange(tokens.shape[0], dtype=jnp.int32)  # [T]
        x = self.embed.weight[tokens]  # [T, dim]
        for layer in self.layers:
            x = layer(x, positions)
        x = jax.vmap(self.final_norm)(x)
        if self.lm_head is None:
            logits = x @ self.embed.weight.T
        else:
            logits = jax.vmap(self.lm_head)(x)
        return logits.astype(jnp.float32)


def init_transformer(config: TransformerConfig, key) -> Transformer:
    """Seeded random weights (float32) scaled so activations and logits stay O(1).

    Norm weights/biases and linear biases are random (not 1/0) on purpose: parity tests against
    the C++ engine then catch a swapped or ignored tensor. The numbers come from numpy seeded by
    the key's bits: drawing with jax.random would compile one kernel per distinct shape (seconds).
    """
    skeleton = eqx.filter_eval_shape(Transformer, config, key=key)  # structure, no compute
    is_shape = lambda x: isinstance(x, jax.ShapeDtypeStruct)  # noqa: E731
    arrays, static = eqx.partition(skeleton, is_shape)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays, is_leaf=is_shape)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    residual_scale = 1.0 / math.sqrt(2 * max(1, config.n_layers))

    def draw(path, leaf):
        name = ".".join(str(getattr(p, "name", getattr(p, "idx", ""))) for p in path)
        noise = rng.standard_normal(leaf.shape, dtype=np.float32)
        if name.endswith("norm.weight"):
            return 1.0 + 0.1 * noise
        if name.endswith(".bias"):
            return 0.05 * noise
        if name == "embed.weight":
            return noise / math.sqrt(config.dim)
        scale = residual_scale if name.endswith(("output_proj.weight", "down_proj.weight")) else 1
        return noise * np.float32(scale / math.sqrt(leaf.shape[1]))  # Linear weight [out, in]

    new = [jnp.asarray(draw(path, leaf), jnp.float32) for path, leaf in leaves]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


def _check(config: dict) -> dict:
    return TransformerConfig.from_dict(config).to_dict()


def transformer_skeleton(config: dict) -> Transformer:
    """Structure and shapes only (ShapeDtypeStruct leaves); what load() fills from a file."""
    cfg = TransformerConfig.from_dict(config)
    return eqx.filter_eval_shape(Transformer, cfg, key=jax.random.PRNGKey(0))


@register("transformer", default_config=DEFAULT_CONFIG.to_dict(), check_config=_check,
          skeleton=transformer_skeleton)
def build_transformer(config: dict, key) -> Transformer:
    """Registry builder: config dict (as stored in the file) + key -> random-init model."""
    return init_transformer(TransformerConfig.from_dict(config), key)


# ---- Incremental decoding with a key/value cache -------------------------------------------
#
# The cache has a fixed size so that one compiled decode step serves every position: keys and
# values of position p live in row p, and a query at position q attends to rows 0..q only. Rows
# past the last written position may hold anything (zeros, or leftovers of a padded prefill);
# the position mask never lets a query read them, and a step writes its own row before reading.


class KVCache(eqx.Module):
    """Keys (after RoPE) and values of every layer, by absolute position."""
    keys: jax.Array  # [n_layers, max_len, n_kv_heads, head_dim], model dtype
    values: jax.Array  # [n_layers, max_len, n_kv_heads, head_dim], model dtype

    @property
    def max_len(self) -> int:
        return self.keys.shape[1]


def init_cache(model: Transformer, max_len: int) -> KVCache:
    """An empty cache for positions 0..max_len-1 (max_len <= config.max_seq_len)."""
    cfg = model.config
    if not 1 <= max_len <= cfg.max_seq_len:
        raise ValueError(f"cache length {max_len} must be in 1..max_seq_len ({cfg.max_seq_len})")
    shape = (cfg.n_layers, max_len, cfg.n_kv_heads, cfg.head_dim)
    dtype = model.embed.weight.dtype
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def _attention_with_cache(attn: Attention, x, positions, cache: KVCache, layer: int, start_pos):
    """x: [T, dim] at `positions` (= start_pos + 0..T-1) -> ([T, dim], cache with rows written).

    Same math as Attention.__call__, with the keys/values of earlier positions read from the
    cache. Query heads are grouped per KV head instead of repeating K/V: [T, n_kv, group, hd].
    """
    T, n_kv, hd = x.shape[0], attn.n_kv_heads, attn.head_dim
    group = attn.n_heads // n_kv
    q = jax.vmap(attn.query_proj)(x).reshape(T, attn.n_heads, hd)
    k = jax.vmap(attn.key_proj)(x).reshape(T, n_kv, hd)
    v = jax.vmap(attn.value_proj)(x).reshape(T, n_kv, hd)
    q, k = rope(q, positions, attn.rope_theta), rope(k, positions, attn.rope_theta)
    at = (layer, start_pos, 0, 0)
    keys = jax.lax.dynamic_update_slice(cache.keys, k[None].astype(cache.keys.dtype), at)
    values = jax.lax.dynamic_update_slice(cache.values, v[None].astype(cache.values.dtype), at)
    k_all, v_all = keys[layer], values[layer]  # [S, n_kv, hd], S = cache length
    qg = q.reshape(T, n_kv, group, hd).astype(jnp.float32)
    scores = jnp.einsum("tkgd,skd->kgts", qg, k_all.astype(jnp.float32)) / math.sqrt(hd)
    visible = positions[:, None] >= jnp.arange(k_all.shape[0], dtype=jnp.int32)[None, :]  # [T, S]
    scores = jnp.where(visible[None, None], scores, -jnp.inf)  # [n_kv, group, T, S]
    probs = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("kgts,skd->tkgd", probs, v_all.astype(jnp.float32)).astype(x.dtype)
    out = jax.vmap(attn.output_proj)(out.reshape(T, attn.n_heads * hd))
    return out, KVCache(keys, values)


def forward_with_cache(model: Transformer, tokens, cache: KVCache, start_pos):
    """Run `tokens` (int [T]) at positions start_pos..start_pos+T-1 on top of `cache`.

    Returns (float32 logits [T, vocab_size], the cache with those T positions written); the
    logits equal model(all tokens so far)[start_pos:start_pos+T]. Prefill is start_pos = 0 with
    the whole prompt, decode is T = 1. start_pos may be a traced int32 (one compilation for all
    decode steps) but then start_pos + T <= cache.max_len is the caller's duty: XLA clamps an
    out-of-range write instead of failing.
    """
    T = tokens.shape[0]
    if isinstance(start_pos, int) and not 0 <= start_pos <= cache.max_len - T:
        raise ValueError(f"{T} tokens at position {start_pos} overflow a cache of "
                         f"{cache.max_len} positions")
    positions = start_pos + jnp.arange(T, dtype=jnp.int32)  # [T]
    x = model.embed.weight[tokens]  # [T, dim]
    for i, layer in enumerate(model.layers):
        a, cache = _attention_with_cache(layer.attn, jax.vmap(layer.attn_norm)(x), positions,
                                         cache, i, start_pos)
        h = x + a
        x = h + jax.vmap(layer.mlp)(jax.vmap(layer.mlp_norm)(h))
    x = jax.vmap(model.final_norm)(x)
    if model.lm_head is None:
        logits = x @ model.embed.weight.T
    else:
        logits = jax.vmap(model.lm_head)(x)
    return logits.astype(jnp.float32), cache


def _last_logits_step(model, cache, tokens, start_pos, n_valid):
    """forward_with_cache keeping only the logits of row n_valid - 1: [vocab_size]."""
    logits, cache = forward_with_cache(model, tokens, cache, start_pos)
    return logits[n_valid - 1], cache


# The cache is donated: each step updates it in place instead of copying every layer's rows.
_step = eqx.filter_jit(_last_logits_step, donate="all-except-first")

_PREFILL_BUCKET = 32  # prompts are padded up to a multiple of this: fewer distinct compilations
_CACHE_BUCKET = 256  # cache lengths likewise


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def generate(model: Transformer, prompt_tokens, max_new_tokens: int, *, eos_ids=(),
             temperature: float = 0.0, key=None) -> list[int]:
    """New tokens after `prompt_tokens` (ints), at most max_new_tokens, through the KV cache.

    Greedy (argmax) when temperature == 0, otherwise samples softmax(logits / temperature) with
    the PRNG `key`. Stops after the first token in `eos_ids`, which is included in the result.
    """
    prompt = [int(t) for t in prompt_tokens]
    cfg = model.config
    if not prompt:
        raise ValueError("generate needs at least one prompt token")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0 or (temperature > 0 and key is None):
        raise ValueError("temperature must be >= 0, and sampling (temperature > 0) needs a key")
    if bad := [t for t in prompt if not 0 <= t < cfg.vocab_size]:
        raise ValueError(f"prompt token(s) {bad[:5]} outside the vocabulary "
                         f"0..{cfg.vocab_size - 1}")
    # The last generated token is never fed back, hence the - 1.
    needed = len(prompt) + max(max_new_tokens - 1, 0)
    if needed > cfg.max_seq_len:
        raise ValueError(f"prompt ({len(prompt)}) + new tokens ({max_new_tokens}) exceed "
                         f"max_seq_len {cfg.max_seq_len}")
    if max_new_tokens == 0:
        return []
    cache_len = min(_round_up(needed, _CACHE_BUCKET), cfg.max_seq_len)
    padded = min(_round_up(len(prompt), _PREFILL_BUCKET), cache_len)
    cache = init_cache(model, cache_len)
    tokens = jnp.asarray(prompt + [0] * (padded - len(prompt)), jnp.int32)
    logits, cache = _step(model, cache, tokens, jnp.int32(0), jnp.int32(len(prompt)))
    eos = {int(t) for t in eos_ids}
    out: list[int] = []
    one = jnp.int32(1)
    for pos in range(len(prompt), len(prompt) + max_new_tokens):
        if temperature == 0:
            token = int(jnp.argmax(logits))
        else:
            key, sub = jax.random.split(key)
            token = int(jax.random.categorical(sub, logits / temperature))
        out.append(token)
        if token in eos or len(out) == max_new_tokens:
            break
        logits, cache = _step(model, cache, jnp.asarray([token], jnp.int32), jnp.int32(pos), one)
    return out
