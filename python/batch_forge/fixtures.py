"""Parity fixtures: small input/output pairs computed by JAX/Equinox for the C++ kernel tests.

Why files and not a live Python call: the C++ tests must run without Python, and a fixture pins
exactly which inputs the reference saw. Each file is an aligned safetensors file with tensors
`input.<name>` / `output.<name>` and metadata

    batch_forge.fixture.op         op name
    batch_forge.fixture.seed       numpy default_rng seed the inputs came from
    batch_forge.fixture.params     JSON object of scalar parameters (eps, axis, ...)
    batch_forge.fixture.tolerance  JSON {"atol": a, "rtol": r}: pass if |got-want| <= a + r*|want|

Usage: python -m batch_forge.fixtures --op rms_norm --seed 0 --out rms_norm.safetensors
       python -m batch_forge.fixtures --all --seed 0 --out-dir build/fixtures   # <op>.safetensors each
       python -m batch_forge.fixtures --list

Fixture functions live in batch_forge/fixture_ops/<group>.py, registered with @fixtures.op(name).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .safetensors_io import write_safetensors


@dataclass
class Fixture:
    op: str
    seed: int
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    params: dict
    atol: float
    rtol: float

    def metadata(self) -> dict[str, str]:
        return {
            "batch_forge.fixture.op": self.op,
            "batch_forge.fixture.seed": str(self.seed),
            "batch_forge.fixture.params": json.dumps(self.params, sort_keys=True),
            "batch_forge.fixture.tolerance": json.dumps({"atol": self.atol, "rtol": self.rtol}),
        }


_OPS: dict[str, Callable[[int], Fixture]] = {}


def op(name: str):
    """Registers a fixture function `fn(seed) -> Fixture` under `name` (one module per op group
    in batch_forge/fixture_ops/, all imported below)."""
    def decorate(fn):
        if name in _OPS:
            raise ValueError(f"fixture op {name!r} registered twice")
        _OPS[name] = fn
        return fn
    return decorate


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


_modules_loaded = False


def _load_op_modules() -> None:
    global _modules_loaded
    if _modules_loaded:
        return
    _modules_loaded = True
    import importlib
    import pkgutil
    from . import fixture_ops
    for info in pkgutil.iter_modules(fixture_ops.__path__):
        importlib.import_module(f"{fixture_ops.__name__}.{info.name}")


def ops() -> list[str]:
    _load_op_modules()
    return sorted(_OPS)


def make_fixture(op: str, seed: int) -> Fixture:
    """Compute a fixture in float32 on the CPU backend."""
    if op not in ops():
        raise ValueError(f"unknown fixture op {op!r} (known: {', '.join(ops())})")
    jax.config.update("jax_enable_x64", False)
    with jax.default_device(jax.devices("cpu")[0]):
        return _OPS[op](seed)


def write_fixture(op: str, seed: int, out: str | os.PathLike) -> Fixture:
    fx = make_fixture(op, seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # e.g. <build>/fixtures/ on a clean tree
    tensors = [(f"input.{k}", v) for k, v in fx.inputs.items()]
    tensors += [(f"output.{k}", v) for k, v in fx.outputs.items()]
    write_safetensors(out, tensors, fx.metadata())
    return fx


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m batch_forge.fixtures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--op", help="fixture op name (see --list)")
    p.add_argument("--seed", type=int, default=0, help="numpy default_rng seed (default 0)")
    p.add_argument("--out", help="output .safetensors path")
    p.add_argument("--all", action="store_true", help="write every op's fixture into --out-dir")
    p.add_argument("--out-dir", help="directory for --all (files named <op>.safetensors)")
    p.add_argument("--list", action="store_true", help="print the known ops and exit")
    args = p.parse_args(argv)
    jax.config.update("jax_platforms", "cpu")  # fresh process: pin the reference to the CPU
    if args.list:
        print("\n".join(ops()))
        return 0
    if args.all:
        if not args.out_dir:
            p.error("--all needs --out-dir")
        for name in ops():
            write_fixture(name, args.seed, Path(args.out_dir) / f"{name}.safetensors")
        print(f"wrote {len(ops())} fixtures into {args.out_dir}: {', '.join(ops())}")
        return 0
    if not args.op or not args.out:
        p.error("--op and --out are required (or --all, or --list)")
    if args.op not in ops():
        print(f"error: unknown fixture op {args.op!r} (known: {', '.join(ops())})",
              file=sys.stderr)
        return 2
    fx = write_fixture(args.op, args.seed, args.out)
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in {**fx.inputs, **fx.outputs}.items())
    print(f"wrote {args.out}: op={fx.op} seed={fx.seed} ({shapes})")
    return 0


if __name__ == "__main__":
    # Run through the package module, not this __main__ copy: fixture_ops register their
    # functions into batch_forge.fixtures.
    from batch_forge import fixtures as _package_module
    sys.exit(_package_module.main())
