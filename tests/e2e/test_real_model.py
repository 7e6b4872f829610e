"""The real pretrained model (SmolLM2-135M-Instruct, scripts/fetch_model.sh) through the engine,
against the JAX reference with the same weights. Skipped when the converted file is absent.

- greedy generation: the engine's tokens equal JAX f32's (KV-cache generate) for 32 tokens on a
  few chat prompts;
- perplexity on tests/data/perplexity.txt: the engine's f32 number within 0.5% of JAX's
  (python -m batch_forge.perplexity, same protocol); q8_0 and q4_0 are reported, and must stay
  close to f32 (a broken quantized path would be far off);
- the streaming text equals the text of the --json run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("BF_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("BF_BINARY_DIR", SOURCE / "build")) / "apps" / "batch_forge"
MODEL = Path(os.environ.get("BF_REAL_MODEL", SOURCE / "models" / "smollm2-135m-instruct.safetensors"))
TEXT = SOURCE / "tests" / "data" / "perplexity.txt"

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} absent (scripts/fetch_model.sh)")

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
]


def run(*args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def engine_generate(prompt, *extra):
    done = run(BINARY, "generate", "--model", MODEL, "--prompt", prompt, "--chat", "--max-tokens", 32,
               "--temperature", 0, "--ignore-eos", "--json", *extra)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def reference():
    sys.path.insert(0, str(SOURCE / "python"))
    from batch_forge.generate import load_chat_model
    return load_chat_model(str(MODEL))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_tokens_identical_to_jax(reference, prompt):
    from batch_forge.families.transformer import generate
    out = engine_generate(prompt)
    assert len(out["tokens"]) == 32
    want = generate(reference.model, out["prompt_ids"], 32)
    assert out["tokens"] == want, (out["text"], reference.tokenizer.decode(want))


def test_prompt_ids_match_the_reference_tokenizer(reference):
    from batch_forge.generate import encode, render_chatml
    out = engine_generate(PROMPTS[0])
    assert out["prompt_ids"] == encode(reference, render_chatml(PROMPTS[0], reference.chat_template))


def test_streamed_text_equals_json_text():
    out = engine_generate(PROMPTS[0])
    done = run(BINARY, "generate", "--model", MODEL, "--prompt", PROMPTS[0], "--chat", "--max-tokens", 32,
               "--temperature", 0, "--ignore-eos")
    assert done.stdout.rstrip("\n") == out["text"]
    assert "tok/s" in done.stderr and "time to first token" in done.stderr


def engine_perplexity(*extra):
    return json.loads(run(BINARY, "perplexity", "--model", MODEL, "--text", TEXT, "--ctx", 256, "--json",
                          *extra).stdout)


def test_perplexity_matches_jax():
    env = dict(os.environ, PYTHONPATH=str(SOURCE / "python"), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", "batch_forge.perplexity", "--model", str(MODEL), "--text", str(TEXT),
                           "--ctx", "256", "--json"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    jax_ppl = json.loads(done.stdout)
    ours = engine_perplexity()
    assert ours["n_scored"] == jax_ppl["n_scored"]
    assert abs(ours["perplexity"] / jax_ppl["perplexity"] - 1) < 0.005, (ours, jax_ppl)
    q8 = engine_perplexity("--quant", "q8_0")
    q4 = engine_perplexity("--quant", "q4_0")
    print(f"\nperplexity: jax f32 {jax_ppl['perplexity']:.4f}, engine f32 {ours['perplexity']:.4f}, "
          f"q8_0 {q8['perplexity']:.4f}, q4_0 {q4['perplexity']:.4f}")
    assert abs(q8["perplexity"] / ours["perplexity"] - 1) < 0.02
    assert q4["perplexity"] < 1.5 * ours["perplexity"]


def test_prompt_longer_than_context_is_an_error():
    long_prompt = "word " * 9000  # more tokens than the 8192-token context
    done = subprocess.run([str(BINARY), "generate", "--model", str(MODEL), "--prompt", long_prompt],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "does not fit the context" in done.stderr
