"""Perplexity of a text under a model file, with the JAX reference in float32.

    python -m batch_forge.perplexity --model M.safetensors --text tests/data/perplexity.txt \
        [--ctx 256] [--json]

The protocol, which the C++ engine implements identically (results must agree within 0.5%):

  1. The text is the file's bytes decoded as UTF-8, unchanged (no stripping, no normalization;
     a trailing newline counts).
  2. It is tokenized with the model file's tokenizer (`batch_forge.tokenizer`) without special
     tokens added: Tokenizer.encode(text, add_special_tokens=False). If the file's
     `batch_forge.special_tokens` says "add_bos": true, the BOS id is put in front, once.
  3. The ids are cut into consecutive, non-overlapping windows of `ctx` tokens: ids[0:ctx],
     ids[ctx:2*ctx], ...; the last window may be shorter, and a last window of a single token
     is dropped (there is nothing in it to score).
  4. Every window is evaluated on its own, from position 0, with no state carried over from
     the previous window.
  5. In a window w of n tokens, every token after the first is scored:
     nll_j = logsumexp(logits[j-1]) - logits[j-1][w[j]] for j = 1..n-1, where logits[j-1] are
     the f32 logits the model gives at position j-1 of that window.
  6. perplexity = exp(sum of all nll_j / number of scored tokens), with the sum accumulated in
     float64.

--json prints one object: model, text, ctx, n_tokens, n_windows, n_scored, nll_sum, mean_nll,
perplexity.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .export import load
from .generate import load_tokenizer


def token_ids(tokenizer, special: dict, text: str) -> list[int]:
    """Protocol steps 1-2."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if special.get("add_bos") and special.get("bos") is not None:
        ids = [int(special["bos"])] + ids
    return ids


def windows(ids: list[int], ctx: int) -> list[list[int]]:
    """Protocol step 3."""
    if ctx < 2:
        raise ValueError(f"--ctx must be at least 2, got {ctx}")
    out = [ids[i:i + ctx] for i in range(0, len(ids), ctx)]
    return [w for w in out if len(w) >= 2]


@eqx.filter_jit
def _window_nll(model, window):
    """window: int [n] -> f32 [n - 1]: the negative log-likelihood of tokens 1..n-1."""
    logits = model(window)[:-1]  # [n - 1, vocab], f32
    target = jnp.take_along_axis(logits, window[1:, None], axis=-1)[:, 0]
    return jax.nn.logsumexp(logits, axis=-1) - target


def perplexity(model, ids: list[int], ctx: int) -> dict:
    """Protocol steps 3-6 over token ids; the counts and sums the --json output reports."""
    if ctx > model.config.max_seq_len:
        raise ValueError(f"--ctx {ctx} exceeds the model's max_seq_len {model.config.max_seq_len}")
    parts = windows(ids, ctx)
    if not parts:
        raise ValueError(f"the text has {len(ids)} token(s); at least 2 are needed")
    nll_sum, n_scored = 0.0, 0
    for w in parts:
        nll = np.asarray(_window_nll(model, jnp.asarray(w, jnp.int32)), dtype=np.float64)
        nll_sum += float(nll.sum())
        n_scored += nll.size
    mean = nll_sum / n_scored
    return {"ctx": ctx, "n_tokens": len(ids), "n_windows": len(parts), "n_scored": n_scored,
            "nll_sum": nll_sum, "mean_nll": mean, "perplexity": math.exp(mean)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_forge.perplexity",
                                     description="Perplexity of a text (JAX reference, f32).")
    parser.add_argument("--model", required=True, help="model file with a tokenizer")
    parser.add_argument("--text", required=True, help="UTF-8 text file")
    parser.add_argument("--ctx", type=int, default=256, help="tokens per window (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        with open(args.text, encoding="utf-8", newline="") as f:
            text = f.read()
        tokenizer, special, _ = load_tokenizer(args.model)
        ids = token_ids(tokenizer, special, text)
        result = {"model": args.model, "text": args.text,
                  **perplexity(load(args.model), ids, args.ctx)}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        print(f"perplexity: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"perplexity {result['perplexity']:.4f} over {result['n_scored']} tokens "
              f"({result['n_windows']} windows of <= {args.ctx}; {result['n_tokens']} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
