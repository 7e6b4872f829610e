"""`batch_forge generate` and `batch_forge perplexity` on small exported models, and the bad input
of the transformer issue: a model without a tokenizer, a tokenizer that does not match the
vocabulary, a family this build does not run, a prompt longer than the context, an exhausted KV
pool. Each is a clear error (exit 1, a message naming the problem), never a crash.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

SOURCE = Path(os.environ.get("BF_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("BF_BINARY_DIR", SOURCE / "build")) / "apps" / "batch_forge"
sys.path.insert(0, str(SOURCE / "python"))

from batch_forge.export import export  # noqa: E402
from batch_forge.families.transformer import TransformerConfig, generate, init_transformer  # noqa: E402
from batch_forge.safetensors_io import write_safetensors  # noqa: E402


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)


def byte_tokenizer(extra_tokens: int = 0) -> str:
    """A byte-level BPE whose 256 tokens are the 256 bytes (plus `extra_tokens` merges)."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    merges = []
    for a, b in [("t", "h"), ("th", "e"), ("a", "n"), ("i", "n"), ("o", "n")][:extra_tokens]:
        vocab[a + b] = len(vocab)
        merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok.to_str()


CONFIG = TransformerConfig(vocab_size=256, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                           hidden_dim=96, norm="rms", norm_eps=1e-5, mlp="swiglu", max_seq_len=64)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gen")


@pytest.fixture(scope="module")
def tiny(model_dir):
    model = init_transformer(CONFIG, jax.random.PRNGKey(3))
    path = model_dir / "tiny.safetensors"
    export(model, path, family="transformer", config=CONFIG.to_dict(),
           extra_metadata={"batch_forge.tokenizer": byte_tokenizer(),
                           "batch_forge.special_tokens": json.dumps({"bos": None, "eos": [], "add_bos": False})})
    return model, path


def test_generate_greedy_matches_jax(tiny):
    model, path = tiny
    done = run(BINARY, "generate", "--model", path, "--prompt", "hello world", "--max-tokens", 20,
               "--temperature", 0, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    reference = Tokenizer.from_str(byte_tokenizer())
    assert out["prompt_ids"] == reference.encode("hello world").ids
    assert len(out["prompt_ids"]) == len("hello world")  # byte-level, no merges: one token per byte
    assert out["tokens"] == generate(model, out["prompt_ids"], 20)
    assert out["finish_reason"] == "length"
    assert out["timings"]["decode_tokens_per_second"] > 0


def test_generate_streams_and_reports_speed(tiny):
    _, path = tiny
    done = run(BINARY, "generate", "--model", path, "--prompt", "abc", "--max-tokens", 8, "--temperature", 0.8,
               "--seed", 7)
    assert done.returncode == 0, done.stderr
    assert "tok/s" in done.stderr and "time to first token" in done.stderr
    again = run(BINARY, "generate", "--model", path, "--prompt", "abc", "--max-tokens", 8, "--temperature", 0.8,
                "--seed", 7)
    assert again.stdout == done.stdout  # same seed, same text


def test_quantized_load_runs(tiny):
    _, path = tiny
    for scheme in ["q8_0", "q4_0", "nf4", "fp8_e4m3"]:
        done = run(BINARY, "generate", "--model", path, "--prompt", "abc", "--max-tokens", 4, "--quant", scheme,
                   "--json")
        assert done.returncode == 0, (scheme, done.stderr)
        assert f"weights {scheme if scheme != 'fp8_e4m3' else 'f8_e4m3'}" in json.loads(done.stdout)["model"]


def test_prompt_longer_than_context(tiny):
    _, path = tiny
    done = run(BINARY, "generate", "--model", path, "--prompt", "x" * 100)
    assert done.returncode == 1
    assert "prompt of 100 tokens does not fit the context of 64 tokens" in done.stderr


def test_exhausted_kv_pool(tiny):
    _, path = tiny
    # One page of 16 tokens: 2 layers × 2 × 2 kv heads × 16 × 4 bytes = 512 bytes per token.
    done = run(BINARY, "generate", "--model", path, "--prompt", "x" * 40, "--kv-memory", "8K")
    assert done.returncode == 1
    assert "KV cache full" in done.stderr and "--kv-memory" in done.stderr


def test_bad_kv_memory_flag(tiny):
    _, path = tiny
    done = run(BINARY, "generate", "--model", path, "--prompt", "x", "--kv-memory", "lots")
    assert done.returncode == 1 and "--kv-memory 'lots' is not a size" in done.stderr


def test_model_without_tokenizer(model_dir):
    path = model_dir / "no_tokenizer.safetensors"
    export(init_transformer(CONFIG, jax.random.PRNGKey(1)), path, family="transformer", config=CONFIG.to_dict())
    done = run(BINARY, "generate", "--model", path, "--prompt", "hi")
    assert done.returncode == 1 and "no tokenizer in the file" in done.stderr


def test_tokenizer_larger_than_vocabulary(model_dir):
    path = model_dir / "mismatch.safetensors"
    export(init_transformer(CONFIG, jax.random.PRNGKey(1)), path, family="transformer", config=CONFIG.to_dict(),
           extra_metadata={"batch_forge.tokenizer": byte_tokenizer(extra_tokens=3)})
    done = run(BINARY, "generate", "--model", path, "--prompt", "hi")
    assert done.returncode == 1
    assert "the tokenizer has 259 tokens but the model's vocabulary has 256" in done.stderr


def test_malformed_tokenizer(model_dir):
    path = model_dir / "bad_tokenizer.safetensors"
    export(init_transformer(CONFIG, jax.random.PRNGKey(1)), path, family="transformer", config=CONFIG.to_dict(),
           extra_metadata={"batch_forge.tokenizer": "{not json"})
    done = run(BINARY, "generate", "--model", path, "--prompt", "hi")
    assert done.returncode == 1 and "batch_forge.tokenizer" in done.stderr


def test_family_without_a_language_model(model_dir):
    path = model_dir / "mamba.safetensors"
    write_safetensors(path, [("w", np.zeros(4, np.float32))],
                      {"batch_forge.format": "1", "batch_forge.family": "mamba", "batch_forge.config": "{}"})
    done = run(BINARY, "generate", "--model", path, "--prompt", "hi")
    assert done.returncode == 1 and "mamba" in done.stderr


def test_perplexity_runs_on_tiny(tiny, tmp_path):
    _, path = tiny
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 4)
    done = run(BINARY, "perplexity", "--model", path, "--text", text, "--ctx", 32, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["n_tokens"] == len(text.read_bytes())
    assert out["n_scored"] == sum(min(32, out["n_tokens"] - i) - 1 for i in range(0, out["n_tokens"], 32))
    assert out["perplexity"] > 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_weights_match_jax_on_the_same_values(model_dir, dtype):
    """Weights stored as bf16/f16 run as stored (no upcast copy); the engine computes in f32, so
    it must follow JAX running the same rounded values in f32."""
    import equinox as eqx
    import jax.numpy as jnp
    model = init_transformer(CONFIG, jax.random.PRNGKey(5))
    half = jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_array(x) else x, model)
    path = model_dir / f"{dtype}.safetensors"
    export(half, path, family="transformer", config=CONFIG.to_dict(),
           extra_metadata={"batch_forge.tokenizer": byte_tokenizer()})
    done = run(BINARY, "generate", "--model", path, "--prompt", "hello", "--max-tokens", 16, "--temperature", 0,
               "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    rounded = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32) if eqx.is_array(x) else x, half)
    assert out["tokens"] == generate(rounded, out["prompt_ids"], 16)
    assert ("bf16" if dtype == "bfloat16" else "f16") in out["model"]
