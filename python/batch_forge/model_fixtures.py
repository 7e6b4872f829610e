"""Model-family parity fixtures: tiny random-weight models and what JAX computes with them.

For each config in CONFIGS this writes into --out-dir:
  <name>.model.safetensors    the model, exported with batch_forge.export (f32)
  <name>.fixture.safetensors  tensors
      tokens  int32 [T]          a random token sequence
      logits  f32   [T, vocab]   the reference forward's logits at every position of `tokens`
      prompt  int32 [P]          a prompt
      greedy  int32 [G]          greedy continuation of `prompt`, G steps (argmax of the full
                                 forward, re-run on the growing sequence; ties → lowest id)
  with metadata batch_forge.fixture.tolerance = {"atol": a, "rtol": r}.

The configs cover the odd shapes the engine must handle: head_dim not a power of two, fewer KV
heads than query heads (and one), a vocabulary that is not a multiple of 32, LayerNorm with
biases and a GELU MLP, tied and separate output heads.

Usage: python -m batch_forge.model_fixtures --out-dir build/fixtures/models
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .export import export
from .families.transformer import TransformerConfig, init_transformer
from .safetensors_io import write_safetensors

GREEDY_STEPS = 64
PROMPT_LEN = 8
SEQ_LEN = 40

CONFIGS = {
    # GQA 4:2, head_dim 12, vocab 97, separate head.
    "gqa_rms_swiglu": TransformerConfig(
        vocab_size=97, dim=48, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=12, hidden_dim=80,
        norm="rms", norm_eps=1e-5, mlp="swiglu", max_seq_len=160),
    # Multi-head, head_dim 10, LayerNorm, GELU, every bias, tied embeddings, vocab 131.
    "mha_layer_gelu_bias": TransformerConfig(
        vocab_size=131, dim=40, n_layers=3, n_heads=5, n_kv_heads=5, head_dim=10, hidden_dim=72,
        norm="layer", norm_eps=1e-6, mlp="gelu", max_seq_len=96, qkv_bias=True, out_bias=True,
        mlp_bias=True, tie_embeddings=True),
    # One KV head for 4 query heads (MQA), tied, a different RoPE base.
    "mqa_rms_tied": TransformerConfig(
        vocab_size=64, dim=64, n_layers=1, n_heads=4, n_kv_heads=1, head_dim=16, hidden_dim=128,
        norm="rms", norm_eps=1e-5, mlp="swiglu", max_seq_len=80, tie_embeddings=True,
        rope_theta=500.0),
}

# f32 throughout; the engine's kernels sum in other orders (blocked GEMM, online softmax).
TOLERANCE = {"atol": 2e-4, "rtol": 2e-4}


def _logits_fn(model, length: int):
    """Logits at every position of a sequence padded to `length` (causal: padding after
    position t does not change logits[t]); one compilation per model."""
    @jax.jit
    def run(tokens):
        return model(tokens)
    return lambda toks: np.asarray(run(jnp.asarray(
        np.pad(np.asarray(toks, np.int32), (0, length - len(toks))))))[: len(toks)]


def make(name: str, config: TransformerConfig, out_dir: Path, seed: int) -> None:
    model = init_transformer(config, jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    export(model, out_dir / f"{name}.model.safetensors", family="transformer",
           config=config.to_dict(), source=f"random(seed={seed})")

    tokens = rng.integers(0, config.vocab_size, SEQ_LEN, dtype=np.int32)
    logits = np.asarray(model(jnp.asarray(tokens)), np.float32)

    prompt = rng.integers(0, config.vocab_size, PROMPT_LEN, dtype=np.int32)
    total = PROMPT_LEN + GREEDY_STEPS
    assert total <= config.max_seq_len
    logits_of = _logits_fn(model, total)
    seq = list(prompt)
    for _ in range(GREEDY_STEPS):
        seq.append(int(np.argmax(logits_of(seq)[-1])))
    greedy = np.asarray(seq[PROMPT_LEN:], np.int32)

    write_safetensors(out_dir / f"{name}.fixture.safetensors",
                      [("tokens", tokens), ("logits", logits), ("prompt", prompt),
                       ("greedy", greedy)],
                      {"batch_forge.fixture.tolerance": json.dumps(TOLERANCE),
                       "batch_forge.fixture.config": json.dumps(config.to_dict())})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m batch_forge.model_fixtures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    jax.config.update("jax_platforms", "cpu")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, config in CONFIGS.items():
        make(name, config, out, args.seed)
    print(f"wrote {len(CONFIGS)} model fixtures into {out}: {', '.join(CONFIGS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
