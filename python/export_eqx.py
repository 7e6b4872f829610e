#!/usr/bin/env python3
"""Export an Equinox model to a batch_forge model file (docs/model-format.md).

    python python/export_eqx.py --out model.safetensors            # default transformer, seed 0
    python python/export_eqx.py --out m.safetensors --config '{"n_layers": 4}' --dtype bf16 --check
    python python/export_eqx.py --out m.safetensors --config cfg.json --checkpoint model.eqx

--config overrides are merged onto the family's default config. --checkpoint is a file written
by eqx.tree_serialise_leaves for the module that config describes. Errors exit with status 2
and one message line (no traceback), so scripts and people can act on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # find batch_forge from any cwd

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import batch_forge  # noqa: E402
from batch_forge import families  # noqa: E402

DTYPES = {"f32": jnp.float32, "f16": jnp.float16, "bf16": jnp.bfloat16}


class UsageError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


def parse_config(text: str | None) -> dict:
    """--config value: inline JSON (starts with "{" or "[") or a path to a JSON file."""
    if text is None:
        return {}
    if text.lstrip().startswith(("{", "[")):
        where, raw = "--config", text
    else:
        where = f"--config file {text!r}"
        try:
            with open(text, encoding="utf-8") as f:
                raw = f.read()
        except OSError as e:
            raise UsageError(f"cannot read {where}: {e.strerror}") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(f"{where} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def build_module(args) -> tuple[object, dict, str]:
    """(module, validated config, source description) from the command line."""
    try:
        family = families.get(args.family)
    except ValueError as e:
        raise UsageError(str(e)) from None
    merged = {**family.default_config, **parse_config(args.config)}
    try:
        config = family.check_config(merged)
    except ValueError as e:
        raise UsageError(str(e)) from None
    module = family.build(config, jax.random.PRNGKey(args.seed))
    source = f"random(seed={args.seed})"
    if args.checkpoint:
        if not os.path.isfile(args.checkpoint):
            raise UsageError(f"checkpoint {args.checkpoint!r} does not exist")
        try:
            module = eqx.tree_deserialise_leaves(args.checkpoint, module)
        except Exception as e:  # any failure here means "not this model's checkpoint"
            raise UsageError(f"cannot read checkpoint {args.checkpoint!r} as a {args.family} "
                             f"module with this config: {type(e).__name__}: {e}") from None
        source = args.checkpoint
    if args.dtype:
        dtype = DTYPES[args.dtype]
        module = jax.tree_util.tree_map(
            lambda x: x.astype(dtype)
            if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating) else x, module)
    return module, config, source


def check(path: str, module) -> list[str]:
    """Problems found re-reading `path` with the safetensors library and batch_forge.load."""
    from safetensors import deserialize

    want = batch_forge.named_arrays(module)
    problems = []
    with open(path, "rb") as f:
        raw = {name: info for name, info in deserialize(f.read())}
    for name, arr in want.items():
        info = raw.get(name)
        if info is None:
            problems.append(f"safetensors library: {name} missing")
        elif bytes(info["data"]) != np.ascontiguousarray(arr).tobytes() \
                or list(info["shape"]) != list(arr.shape):
            problems.append(f"safetensors library: {name} differs")
    loaded = batch_forge.named_arrays(batch_forge.load(path))
    if list(loaded) != list(want):
        problems.append("batch_forge.load: tensor names differ")
    for name, arr in want.items():
        got = loaded.get(name)
        if got is not None and (got.dtype != arr.dtype or got.tobytes() != arr.tobytes()):
            problems.append(f"batch_forge.load: {name} differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--family", default="transformer", help="model family (default transformer)")
    p.add_argument("--config", help="JSON object or path to a JSON file; merged onto the default")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="cast floating weights to this dtype")
    p.add_argument("--checkpoint", help="eqx.tree_serialise_leaves file to take weights from")
    p.add_argument("--check", action="store_true", help="re-read the file and verify it bitwise")
    args = p.parse_args(argv)
    try:
        module, config, source = build_module(args)
        info = batch_forge.export(module, args.out, family=args.family, config=config,
                                  source=source)
    except UsageError as e:
        print(f"export_eqx: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"export_eqx: error: cannot write {args.out!r}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"{info.path}: family={args.family} tensors={info.n_tensors} bytes={info.n_bytes}")
    if args.check:
        problems = check(args.out, module)
        if problems:
            print("export_eqx: check FAILED: " + "; ".join(problems), file=sys.stderr)
            return 1
        print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
