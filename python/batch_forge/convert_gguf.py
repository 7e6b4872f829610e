"""Convert a llama-architecture GGUF file (llama.cpp's format) to a batch_forge model file.

    python -m batch_forge.convert_gguf IN.gguf --out OUT.safetensors [--check]

The result is an ordinary `transformer` family file (docs/model-format.md) with float32 weights,
plus the tokenizer, chat template and special token ids in its metadata. On the way:

  * every tensor is dequantized to float32 with gguf.quants.dequantize (Q4_1, Q8_0, F16, ...);
  * ggml lists dimensions innermost first, numpy outermost first: a GGUF [n_in, n_out] matrix
    arrives as a numpy (n_out, n_in) array, which is already the Equinox Linear layout;
  * llama.cpp's converter reorders the rows of attn_q / attn_k (weights and biases) within each
    head so that its interleaved-pair RoPE (rotating dims 2i, 2i+1) reproduces a rotate-half
    checkpoint. The reference rotates halves (dims i, i + head_dim/2), so those rows are put
    back: stored row 2i + p of a head is original row p * head_dim/2 + i;
  * the tokenizer (tokenizer.ggml.*) is rebuilt as a Hugging Face tokenizer.json.

--check loads the written file and greedily answers two chat prompts with the JAX reference, as
a smoke test that the weights, the row order and the tokenizer all came through.
Errors (unsupported architecture, tokenizer or tensor) exit with status 2 and one message line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import equinox as eqx
import jax
import numpy as np

from .export import ExportInfo, export
from .families.transformer import Transformer, TransformerConfig, transformer_skeleton

KEY_TOKENIZER = "batch_forge.tokenizer"
KEY_CHAT_TEMPLATE = "batch_forge.chat_template"
KEY_SPECIAL_TOKENS = "batch_forge.special_tokens"

# GGUF per-block tensor -> reference tensor under layers.{i}.
_BLOCK_NAMES = {
    "attn_norm": "attn_norm",
    "attn_q": "attn.query_proj",
    "attn_k": "attn.key_proj",
    "attn_v": "attn.value_proj",
    "attn_output": "attn.output_proj",
    "ffn_norm": "mlp_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {"token_embd": "embed", "output_norm": "final_norm", "output": "lm_head"}

# tokenizer.ggml.pre -> the tokenizer.json pre-tokenizer llama.cpp's pre-tokenizer stands for.
# "smollm": every digit on its own, then the GPT-2 byte-level split (llama.cpp runs the regexes
# "\p{N}" and then the GPT-2 one).
_PRE_TOKENIZERS = {
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ]},
}

_TOKEN_TYPE_CONTROL = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL: special tokens
_TOKEN_TYPE_USER_DEFINED = 4  # added tokens matched whole but not special


class ConversionError(ValueError):
    """The GGUF file uses something this converter does not support, or is inconsistent."""


class _Fields:
    """Typed access to a GGUF file's key/value fields, with errors naming the file and key."""

    def __init__(self, reader, where: str):
        self.reader, self.where = reader, where

    def get(self, key: str, default=None):
        field = self.reader.fields.get(key)
        return default if field is None else field.contents()

    def require(self, key: str):
        field = self.reader.fields.get(key)
        if field is None:
            raise ConversionError(f"{self.where}: missing GGUF key {key!r}")
        return field.contents()


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head row interleave of attn_q / attn_k (weight [rows, in] or bias).

    Within each head of width hd, llama.cpp stores original row p * hd/2 + i at row 2i + p
    (p in {0, 1}); this returns the rows in their original (rotate-half) order.
    """
    rows = w.shape[0]
    if rows % n_heads or (rows // n_heads) % 2:
        raise ConversionError(f"cannot split {rows} rows into {n_heads} heads of even width")
    half = rows // n_heads // 2
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _f32(value) -> float:
    """A GGUF float32 as the shortest decimal that rounds to it: 1e-05, not 9.99999974e-06."""
    return float(str(np.float32(value)))


def read_config(fields: _Fields, tensor_names: set[str]) -> TransformerConfig:
    arch = fields.require("general.architecture")
    if arch != "llama":
        raise ConversionError(f"{fields.where}: architecture {arch!r} is not supported "
                              "(only 'llama')")
    p = "llama."
    dim = int(fields.require(p + "embedding_length"))
    n_heads = int(fields.require(p + "attention.head_count"))
    n_kv_heads = int(fields.get(p + "attention.head_count_kv", n_heads))
    if dim % n_heads and fields.get(p + "attention.key_length") is None:
        raise ConversionError(f"{fields.where}: embedding_length {dim} is not a multiple of "
                              f"head_count {n_heads} and no attention.key_length is given")
    head_dim = int(fields.get(p + "attention.key_length", dim // n_heads))
    value_dim = int(fields.get(p + "attention.value_length", head_dim))
    if value_dim != head_dim:
        raise ConversionError(f"{fields.where}: attention.value_length {value_dim} differs from "
                              f"key_length {head_dim}; the reference needs them equal")
    rope_dims = int(fields.get(p + "rope.dimension_count", head_dim))
    if rope_dims != head_dim:
        raise ConversionError(f"{fields.where}: rope.dimension_count {rope_dims} != head_dim "
                              f"{head_dim}; partial RoPE is not supported")
    scaling = fields.get(p + "rope.scaling.type", "none")
    if scaling not in ("none", "linear") or float(fields.get(p + "rope.scaling.factor", 1.0)) \
            not in (0.0, 1.0):
        raise ConversionError(f"{fields.where}: RoPE scaling ({scaling}) is not supported")
    if "rope_freqs.weight" in tensor_names:
        raise ConversionError(f"{fields.where}: per-frequency RoPE factors (rope_freqs.weight, "
                              "Llama 3.1 style) are not supported")
    vocab = fields.get(p + "vocab_size")
    if vocab is None:
        vocab = len(fields.require("tokenizer.ggml.tokens"))
    has = lambda suffix: f"blk.0.{suffix}" in tensor_names  # noqa: E731
    return TransformerConfig(
        vocab_size=int(vocab), dim=dim, n_layers=int(fields.require(p + "block_count")),
        n_heads=n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim,
        hidden_dim=int(fields.require(p + "feed_forward_length")),
        norm="rms", norm_eps=_f32(fields.require(p + "attention.layer_norm_rms_epsilon")),
        mlp="swiglu", max_seq_len=int(fields.require(p + "context_length")),
        qkv_bias=has("attn_q.bias"), out_bias=has("attn_output.bias"),
        mlp_bias=has("ffn_up.bias"), tie_embeddings="output.weight" not in tensor_names,
        rope_theta=_f32(fields.get(p + "rope.freq_base", 10000.0)))


def _reference_name(gguf_name: str) -> str | None:
    """`blk.3.attn_q.weight` -> `layers.3.attn.query_proj.weight`; None when unknown."""
    parts = gguf_name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _BLOCK_NAMES:
        return f"layers.{parts[1]}.{_BLOCK_NAMES[parts[2]]}.{parts[3]}"
    if len(parts) == 2 and parts[0] in _TOP_NAMES:
        return f"{_TOP_NAMES[parts[0]]}.{parts[1]}"
    return None


def read_tensors(reader, cfg: TransformerConfig, where: str) -> dict[str, np.ndarray]:
    """Reference tensor name -> float32 array in the reference layout and row order."""
    from gguf.quants import dequantize

    out: dict[str, np.ndarray] = {}
    unknown = []
    for t in reader.tensors:
        name = _reference_name(t.name)
        if name is None:
            unknown.append(t.name)
            continue
        shape = tuple(int(d) for d in reversed(t.shape))  # ggml order is innermost first
        try:
            w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        except NotImplementedError:
            raise ConversionError(f"{where}: tensor {t.name!r} has type {t.tensor_type.name}, "
                                  "which gguf.quants cannot dequantize") from None
        if w.size != int(np.prod(shape)):
            raise ConversionError(f"{where}: tensor {t.name!r} holds {w.size} values, its shape "
                                  f"{list(shape)} needs {int(np.prod(shape))}")
        w = w.reshape(shape)
        if ".attn.query_proj." in name:
            w = unpermute_rope_rows(w, cfg.n_heads)
        elif ".attn.key_proj." in name:
            w = unpermute_rope_rows(w, cfg.n_kv_heads)
        out[name] = w
    if unknown:
        raise ConversionError(f"{where}: unsupported tensor(s) {', '.join(unknown)}")
    return out


def _model_from_tensors(cfg: TransformerConfig, tensors: dict[str, np.ndarray],
                        where: str) -> Transformer:
    """The reference module holding `tensors`; names and shapes must match it exactly."""
    skeleton = transformer_skeleton(cfg.to_dict())
    is_shape = lambda x: isinstance(x, jax.ShapeDtypeStruct)  # noqa: E731
    arrays, static = eqx.partition(skeleton, is_shape)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays, is_leaf=is_shape)
    names = [".".join(str(getattr(k, "name", getattr(k, "idx", ""))) for k in path)
             for path, _ in leaves]
    missing = [n for n in names if n not in tensors]
    extra = sorted(set(tensors) - set(names))
    wrong = [f"{n}: {list(tensors[n].shape)} (expected {list(leaf.shape)})"
             for n, (_, leaf) in zip(names, leaves)
             if n in tensors and tensors[n].shape != tuple(leaf.shape)]
    if missing or extra or wrong:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"unexpected {', '.join(extra)}"] if extra else []) + \
                   ([f"mis-shaped {'; '.join(wrong)}"] if wrong else [])
        raise ConversionError(f"{where}: tensors do not fit the config: " + "; ".join(problems))
    filled = jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(tensors[n]) for n in names])
    return eqx.combine(filled, static)


def build_tokenizer_json(fields: _Fields) -> str:
    """A Hugging Face tokenizer.json equivalent to the file's llama.cpp tokenizer."""
    from tokenizers import AddedToken, Tokenizer, models

    kind = fields.require("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ConversionError(f"{fields.where}: tokenizer.ggml.model {kind!r} is not supported "
                              "(only 'gpt2', byte-level BPE)")
    pre = fields.get("tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZERS:
        raise ConversionError(f"{fields.where}: tokenizer.ggml.pre {pre!r} is not supported "
                              f"(known: {', '.join(sorted(_PRE_TOKENIZERS))})")
    tokens = list(fields.require("tokenizer.ggml.tokens"))
    types = list(fields.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = list(fields.require("tokenizer.ggml.merges"))
    vocab: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in vocab:
            raise ConversionError(f"{fields.where}: token {tok!r} appears twice "
                                  f"(ids {vocab[tok]} and {i})")
        vocab[tok] = i
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep or not a or not b or " " in b:
            raise ConversionError(f"{fields.where}: merge {m!r} is not two tokens "
                                  "separated by one space")
        pairs.append((a, b))
    unk_id = fields.get("tokenizer.ggml.unknown_token_id")
    unk = tokens[int(unk_id)] if unk_id is not None and 0 <= int(unk_id) < len(tokens) else None
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=pairs, unk_token=unk, fuse_unk=False,
                               byte_fallback=False))
    spec = json.loads(bpe.to_str())
    spec["pre_tokenizer"] = _PRE_TOKENIZERS[pre]
    # The post-processor only trims offsets; whether a BOS goes in front is the caller's choice
    # (batch_forge.special_tokens "add_bos"), so the tokenizer never inserts one itself.
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True,
                              "trim_offsets": False, "use_regex": True}
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                       "use_regex": True}
    tok = Tokenizer.from_str(json.dumps(spec))
    added = [AddedToken(t, special=ty == _TOKEN_TYPE_CONTROL, normalized=False)
             for t, ty in zip(tokens, types)
             if ty in (_TOKEN_TYPE_CONTROL, _TOKEN_TYPE_USER_DEFINED)]
    tok.add_tokens([a for a in added if not a.special])
    tok.add_special_tokens([a for a in added if a.special])
    _check_tokenizer(tok, tokens, fields.where)
    return tok.to_str()


def _check_tokenizer(tok, tokens: list[str], where: str) -> None:
    """Every id maps to its GGUF token and back; plain text survives encode + decode."""
    if tok.get_vocab_size(with_added_tokens=True) != len(tokens):
        raise ConversionError(f"{where}: rebuilt tokenizer has "
                              f"{tok.get_vocab_size(with_added_tokens=True)} tokens, "
                              f"the file {len(tokens)}")
    bad = [i for i, t in enumerate(tokens) if tok.id_to_token(i) != t or tok.token_to_id(t) != i]
    if bad:
        raise ConversionError(f"{where}: rebuilt tokenizer maps ids {bad[:5]} differently")
    sample = "Hello world! 12 + 345 = 357.\n  Indented, naïve café — ok?"
    ids = tok.encode(sample, add_special_tokens=False).ids
    if tok.decode(ids, skip_special_tokens=False) != sample:
        raise ConversionError(f"{where}: rebuilt tokenizer does not round-trip {sample!r}")


def special_tokens(fields: _Fields, tokens: list[str]) -> dict:
    """{"bos": id | None, "eos": [ids that end generation], "add_bos": bool}."""
    def token_id(key):
        value = fields.get(key)
        return int(value) if value is not None and 0 <= int(value) < len(tokens) else None

    eos = [t for t in (token_id("tokenizer.ggml.eos_token_id"),
                       token_id("tokenizer.ggml.eot_token_id")) if t is not None]
    if "<|im_end|>" in tokens:  # ChatML turns end with it, whatever the file calls EOS
        eos.append(tokens.index("<|im_end|>"))
    return {"bos": token_id("tokenizer.ggml.bos_token_id"),
            "eos": sorted(set(eos)),
            "add_bos": bool(fields.get("tokenizer.ggml.add_bos_token", False))}


def convert(in_path: str, out_path: str, *, log=print) -> ExportInfo:
    """Read `in_path` (GGUF, llama architecture), write the model file `out_path`."""
    from gguf import GGUFReader

    where = os.path.basename(in_path)
    try:
        reader = GGUFReader(in_path)
    except (OSError, ValueError) as e:
        raise ConversionError(f"{in_path}: cannot read as GGUF ({e})") from None
    fields = _Fields(reader, where)
    cfg = read_config(fields, {t.name for t in reader.tensors})
    log(f"convert_gguf: {where}: {cfg.n_layers} layers, dim {cfg.dim}, {cfg.n_heads} heads "
        f"({cfg.n_kv_heads} kv) of {cfg.head_dim}, vocab {cfg.vocab_size}"
        f"{', tied embeddings' if cfg.tie_embeddings else ''}")
    types = sorted({t.tensor_type.name for t in reader.tensors})
    log(f"convert_gguf: dequantizing {len(reader.tensors)} tensors ({', '.join(types)}) to f32")
    model = _model_from_tensors(cfg, read_tensors(reader, cfg, where), where)
    tokenizer_json = build_tokenizer_json(fields)
    tokens = list(fields.require("tokenizer.ggml.tokens"))
    metadata = {
        KEY_TOKENIZER: tokenizer_json,
        KEY_SPECIAL_TOKENS: json.dumps(special_tokens(fields, tokens)),
    }
    template = fields.get("tokenizer.chat_template")
    if template is not None:
        metadata[KEY_CHAT_TEMPLATE] = template
    info = export(model, out_path, family="transformer", config=cfg, source=f"gguf:{where}",
                  extra_metadata=metadata)
    log(f"convert_gguf: wrote {info.path} ({info.n_tensors} tensors, "
        f"{info.n_bytes / 2**20:.1f} MiB)")
    return info


CHECK_PROMPTS = ("What is the capital of France?",
                 "Give me one tip for writing clear code.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batch_forge.convert_gguf",
        description="Convert a llama-architecture GGUF file to a batch_forge model file.")
    parser.add_argument("gguf", help="input .gguf file")
    parser.add_argument("--out", required=True, help="output .safetensors model file")
    parser.add_argument("--check", action="store_true",
                        help="then answer two chat prompts greedily with the JAX reference")
    args = parser.parse_args(argv)
    try:
        convert(args.gguf, args.out)
    except ConversionError as e:
        print(f"convert_gguf: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        from .generate import chat, load_chat_model

        loaded = load_chat_model(args.out)
        for prompt in CHECK_PROMPTS:
            print(f"--- user: {prompt}\n--- assistant: {chat(loaded, prompt, max_new_tokens=64)}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
