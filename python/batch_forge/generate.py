"""Generate text with the JAX reference from a model file that carries a tokenizer.

    python -m batch_forge.generate --model M.safetensors "What is the capital of France?" --chat
    python -m batch_forge.generate --model M.safetensors "Once upon a time" --max-new-tokens 40

The file must hold `batch_forge.tokenizer` (and, for --chat, a ChatML `batch_forge.chat_template`),
as batch_forge.convert_gguf writes them. Decoding is greedy unless --temperature > 0.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass

import jax

from .export import load
from .safetensors_io import read_metadata

KEY_TOKENIZER = "batch_forge.tokenizer"
KEY_CHAT_TEMPLATE = "batch_forge.chat_template"
KEY_SPECIAL_TOKENS = "batch_forge.special_tokens"


@dataclass(frozen=True)
class ChatModel:
    model: object  # the family's Equinox module (a Transformer)
    tokenizer: object  # tokenizers.Tokenizer
    bos: int | None
    eos: tuple[int, ...]
    add_bos: bool
    chat_template: str | None


def load_tokenizer(path: str):
    """(tokenizers.Tokenizer, special tokens dict) from a model file's metadata."""
    from tokenizers import Tokenizer

    metadata = read_metadata(path)
    if KEY_TOKENIZER not in metadata:
        raise ValueError(f"{path}: no {KEY_TOKENIZER} metadata; convert the model with "
                         "batch_forge.convert_gguf or add a tokenizer")
    special = json.loads(metadata.get(KEY_SPECIAL_TOKENS, '{"bos": null, "eos": [], '
                                                          '"add_bos": false}'))
    return Tokenizer.from_str(metadata[KEY_TOKENIZER]), special, metadata


def load_chat_model(path: str) -> ChatModel:
    tokenizer, special, metadata = load_tokenizer(path)
    return ChatModel(load(path), tokenizer, special.get("bos"), tuple(special.get("eos", ())),
                     bool(special.get("add_bos", False)), metadata.get(KEY_CHAT_TEMPLATE))


def render_chatml(user: str, template: str | None) -> str:
    """One user turn and the assistant header, ChatML, with the template's default system turn.

    Only ChatML templates are understood (no Jinja here): the default system message is the
    literal `<|im_start|>system\\n...<|im_end|>` the template inserts when none is given.
    """
    if template is None or "<|im_start|>" not in template:
        raise ValueError("the model's chat template is not ChatML; only ChatML is rendered")
    text = ""
    default_system = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", template, re.S)
    if default_system:
        text += f"<|im_start|>system\n{default_system.group(1)}<|im_end|>\n"
    return text + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def encode(loaded: ChatModel, text: str) -> list[int]:
    """Token ids of `text`; special tokens written in the text are matched whole."""
    ids = loaded.tokenizer.encode(text, add_special_tokens=False).ids
    return ([loaded.bos] if loaded.add_bos and loaded.bos is not None else []) + ids


def complete(loaded: ChatModel, text: str, *, max_new_tokens: int = 64,
             temperature: float = 0.0, key=None) -> str:
    """The model's continuation of `text`, without the stop token."""
    from .families.transformer import generate

    new = generate(loaded.model, encode(loaded, text), max_new_tokens, eos_ids=loaded.eos,
                   temperature=temperature, key=key)
    if new and new[-1] in loaded.eos:
        new = new[:-1]
    return loaded.tokenizer.decode(new, skip_special_tokens=True)


def chat(loaded: ChatModel, user: str, **kwargs) -> str:
    """The assistant's reply to one user message."""
    return complete(loaded, render_chatml(user, loaded.chat_template), **kwargs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_forge.generate",
                                     description="Generate text with the JAX reference.")
    parser.add_argument("prompt")
    parser.add_argument("--model", required=True, help="model file with a tokenizer")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt as a user turn")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (temperature > 0)")
    args = parser.parse_args(argv)
    try:
        loaded = load_chat_model(args.model)
        run = chat if args.chat else complete
        print(run(loaded, args.prompt, max_new_tokens=args.max_new_tokens,
                  temperature=args.temperature, key=jax.random.PRNGKey(args.seed)))
    except (OSError, ValueError) as e:
        print(f"generate: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
