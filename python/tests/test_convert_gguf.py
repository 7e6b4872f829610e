"""GGUF -> model file conversion on small synthetic llama GGUF files written with the `gguf`
package from a known random reference model, Q/K rows permuted the way llama.cpp's converter
does it. The converted file must load into a model whose weights and logits are the original's."""

import json
import os
import subprocess
import sys

import equinox as eqx
import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from tokenizers import Tokenizer

import batch_forge
from batch_forge import convert_gguf
from batch_forge.families.transformer import TransformerConfig, init_transformer
from conftest import PYTHON_DIR

forward = eqx.filter_jit(lambda model, tokens: model(tokens))

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "t he", "Ġt he", "a t", "Ġ c", "Ġc at", "c at", "i n", "Ġ in"]
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}")


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes, in byte order: printable
    Latin-1 bytes stand for themselves, the rest map to code points 256, 257, ... in order."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | \
        set(range(0xAE, 0xFF + 1))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def vocabulary() -> list[str]:
    merged = ["".join(m.split(" ")) for m in MERGES]
    return SPECIALS + byte_alphabet() + merged


def llama_cpp_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf: within each head, rows (half, i) move to (i, half)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]) \
        .swapaxes(1, 2).reshape(w.shape)


def roundtrip(w: np.ndarray, qtype) -> np.ndarray:
    return gguf.quants.dequantize(gguf.quants.quantize(w, qtype), qtype).reshape(w.shape)


def write_llama_gguf(path, model, cfg: TransformerConfig, *, quantize=True, key_length=False,
                     arch="llama", pre="smollm"):
    """Writes `model` as llama.cpp would, and returns the weights a faithful reader recovers.

    Quantized tensors come back as gguf's own dequantization of what was written; since llama.cpp
    quantizes row by row, quantizing permuted rows equals permuting quantized rows, so the
    expected Q/K weights need no un-permutation here.
    """
    arrays = batch_forge.named_arrays(model)
    expected = {}
    w = gguf.GGUFWriter(os.fspath(path), arch)
    p = arch + "."
    w.add_uint32(p + "block_count", cfg.n_layers)
    w.add_uint32(p + "context_length", cfg.max_seq_len)
    w.add_uint32(p + "embedding_length", cfg.dim)
    w.add_uint32(p + "feed_forward_length", cfg.hidden_dim)
    w.add_uint32(p + "attention.head_count", cfg.n_heads)
    w.add_uint32(p + "attention.head_count_kv", cfg.n_kv_heads)
    w.add_float32(p + "rope.freq_base", cfg.rope_theta)
    w.add_float32(p + "attention.layer_norm_rms_epsilon", cfg.norm_eps)
    w.add_uint32(p + "rope.dimension_count", cfg.head_dim)
    w.add_uint32(p + "vocab_size", cfg.vocab_size)
    if key_length:
        w.add_uint32(p + "attention.key_length", cfg.head_dim)
        w.add_uint32(p + "attention.value_length", cfg.head_dim)
    tokens = vocabulary()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template(TEMPLATE)

    def put(gguf_name, ref_name, n_heads=None, qtype=None):
        arr = np.asarray(arrays[ref_name], np.float32)
        stored = llama_cpp_permute(arr, n_heads) if n_heads else arr
        if qtype is None or arr.ndim == 1:
            w.add_tensor(gguf_name, stored)
            expected[ref_name] = arr
        else:
            w.add_tensor(gguf_name, gguf.quants.quantize(stored, qtype), raw_dtype=qtype)
            expected[ref_name] = roundtrip(arr, qtype)

    put("token_embd.weight", "embed.weight", qtype=QT.Q8_0 if quantize else None)
    for i in range(cfg.n_layers):
        r, g = f"layers.{i}.", f"blk.{i}."
        # Layer 0 stays f32 so Q/K row order is checked without any rounding in between.
        q = (QT.Q4_1 if i % 2 else QT.Q8_0) if quantize and i > 0 else None
        put(g + "attn_norm.weight", r + "attn_norm.weight")
        for part, ref, heads in (("attn_q", "attn.query_proj", cfg.n_heads),
                                 ("attn_k", "attn.key_proj", cfg.n_kv_heads),
                                 ("attn_v", "attn.value_proj", None),
                                 ("attn_output", "attn.output_proj", None)):
            put(g + part + ".weight", r + ref + ".weight", heads, q)
            if r + ref + ".bias" in arrays:
                put(g + part + ".bias", r + ref + ".bias", heads)
        put(g + "ffn_norm.weight", r + "mlp_norm.weight")
        for part, ref in (("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                          ("ffn_down", "mlp.down_proj")):
            put(g + part + ".weight", r + ref + ".weight", None, q)
            if r + ref + ".bias" in arrays:
                put(g + part + ".bias", r + ref + ".bias")
    put("output_norm.weight", "final_norm.weight")
    if "lm_head.weight" in arrays:
        put("output.weight", "lm_head.weight", qtype=QT.Q8_0 if quantize else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return expected


def _config(**overrides) -> TransformerConfig:
    base = dict(vocab_size=len(vocabulary()), dim=64, n_layers=3, n_heads=4, n_kv_heads=2,
                head_dim=16, hidden_dim=96, norm="rms", norm_eps=1e-6, mlp="swiglu",
                max_seq_len=128, rope_theta=50000.0)
    return TransformerConfig(**{**base, **overrides})


CASES = {
    "quantized_tied": dict(tie_embeddings=True),
    "f32_untied": dict(),
    "biases_key_length": dict(head_dim=24, qkv_bias=True, out_bias=True, mlp_bias=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_converted_model_reproduces_the_original(tmp_path, case):
    cfg = _config(**CASES[case])
    original = init_transformer(cfg, jax.random.PRNGKey(11))
    quantize = case == "quantized_tied"
    expected = write_llama_gguf(tmp_path / "m.gguf", original, cfg, quantize=quantize,
                                key_length=case == "biases_key_length")
    info = convert_gguf.convert(str(tmp_path / "m.gguf"), str(tmp_path / "m.safetensors"),
                                log=lambda *_: None)
    assert info.n_tensors == len(expected)

    converted = batch_forge.load(tmp_path / "m.safetensors")
    assert converted.config == cfg
    got = batch_forge.named_arrays(converted)
    assert list(got) == list(batch_forge.named_arrays(original))
    for name, want in expected.items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)

    tokens = jnp.asarray(np.random.default_rng(0).integers(0, cfg.vocab_size, 40), jnp.int32)
    if quantize:  # the original with the quantization rounding the file holds
        original = eqx.combine(
            jax.tree_util.tree_unflatten(
                jax.tree_util.tree_structure(eqx.filter(original, eqx.is_array)),
                [jnp.asarray(expected[n]) for n in got]),
            eqx.filter(original, eqx.is_array, inverse=True))
    np.testing.assert_allclose(np.asarray(forward(converted, tokens)),
                               np.asarray(forward(original, tokens)), rtol=1e-6, atol=1e-6)


def test_without_unpermuting_the_logits_differ(tmp_path):
    """Guards the test itself: the Q/K row order matters, so a converter that kept llama.cpp's
    order would fail test_converted_model_reproduces_the_original."""
    cfg = _config()
    original = init_transformer(cfg, jax.random.PRNGKey(11))
    permuted = original
    for i in range(cfg.n_layers):
        for attr, heads in (("query_proj", cfg.n_heads), ("key_proj", cfg.n_kv_heads)):
            permuted = eqx.tree_at(
                lambda m: getattr(m.layers[i].attn, attr).weight, permuted,
                jnp.asarray(llama_cpp_permute(
                    np.asarray(getattr(original.layers[i].attn, attr).weight), heads)))
    tokens = jnp.arange(20, dtype=jnp.int32)
    diff = np.abs(np.asarray(forward(permuted, tokens)) - np.asarray(forward(original, tokens)))
    assert diff.max() > 1e-2


def test_unpermute_inverts_llama_cpp_permute():
    rng = np.random.default_rng(0)
    for heads, hd in ((1, 2), (3, 8), (9, 64)):
        w = rng.standard_normal((heads * hd, 5)).astype(np.float32)
        np.testing.assert_array_equal(
            convert_gguf.unpermute_rope_rows(llama_cpp_permute(w, heads), heads), w)
        b = rng.standard_normal(heads * hd).astype(np.float32)
        np.testing.assert_array_equal(
            convert_gguf.unpermute_rope_rows(llama_cpp_permute(b, heads), heads), b)
    # Head 0 of width 4 stores original rows (0, 2, 1, 3): pairs (i, i + hd/2) side by side.
    rows = np.arange(8.0)
    np.testing.assert_array_equal(llama_cpp_permute(rows, 2), [0, 2, 1, 3, 4, 6, 5, 7])
    np.testing.assert_array_equal(convert_gguf.unpermute_rope_rows(rows, 2),
                                  [0, 2, 1, 3, 4, 6, 5, 7])


def test_metadata_tokenizer_and_special_tokens(tmp_path):
    cfg = _config(n_layers=1, tie_embeddings=True)
    write_llama_gguf(tmp_path / "m.gguf", init_transformer(cfg, jax.random.PRNGKey(0)), cfg)
    convert_gguf.convert(str(tmp_path / "m.gguf"), str(tmp_path / "m.safetensors"),
                         log=lambda *_: None)
    meta = batch_forge.read_metadata(tmp_path / "m.safetensors")
    assert meta["batch_forge.family"] == "transformer"
    assert meta["batch_forge.source"] == "gguf:m.gguf"
    assert meta["batch_forge.chat_template"] == TEMPLATE
    assert json.loads(meta["batch_forge.special_tokens"]) == \
        {"bos": 1, "eos": [0, 2], "add_bos": False}  # eos_token_id and <|im_end|>

    tok = Tokenizer.from_str(meta["batch_forge.tokenizer"])
    vocab = vocabulary()
    assert tok.get_vocab_size() == len(vocab)
    assert all(tok.id_to_token(i) == t for i, t in enumerate(vocab))
    # Merges apply in rank order inside each pre-token; digits split one by one; special tokens
    # written in the text are matched whole.
    enc = tok.encode("<|im_start|>the cat in 42<|im_end|>", add_special_tokens=False)
    assert enc.tokens == ["<|im_start|>", "the", "Ġcat", "Ġin", "Ġ", "4", "2", "<|im_end|>"]
    assert tok.encode("cat", add_special_tokens=False).tokens == ["cat"]
    assert enc.ids[0] == 1 and enc.ids[-1] == 2
    text = "Naïve café: 1234 cats\n\tin the hat!"
    assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text
    assert tok.decode([1] + tok.encode("the", add_special_tokens=False).ids,
                      skip_special_tokens=True) == "the"


def _run_cli(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": PYTHON_DIR}
    return subprocess.run([sys.executable, "-m", "batch_forge.convert_gguf", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("kind", ["arch", "pre"])
def test_unsupported_files_are_refused_with_a_message(tmp_path, kind):
    cfg = _config(n_layers=1)
    model = init_transformer(cfg, jax.random.PRNGKey(0))
    if kind == "arch":
        write_llama_gguf(tmp_path / "m.gguf", model, cfg, arch="qwen2")
        message = "architecture 'qwen2' is not supported"
    else:
        write_llama_gguf(tmp_path / "m.gguf", model, cfg, pre="llama-bpe")
        message = "tokenizer.ggml.pre 'llama-bpe' is not supported"
    result = _run_cli(str(tmp_path / "m.gguf"), "--out", str(tmp_path / "m.safetensors"))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.safetensors").exists()
