"""Parity fixtures: small input/output pairs computed by JAX/Equinox for the C++ kernel tests.

Why files and not a live Python call: the C++ tests must run without Python, and a fixture pins
exactly which inputs the reference saw. Each file is an aligned safetensors file with tensors
`input.<name>` / `output.<name>` and metadata

    batch_forge.fixture.op         op name
    batch_forge.fixture.seed       numpy default_rng seed the inputs came from
    batch_forge.fixture.params     JSON object of scalar parameters (eps, axis, ...)
    batch_forge.fixture.tolerance  JSON {"atol": a, "rtol": r}: pass if |got-want| <= a + r*|want|

Usage: python -m batch_forge.fixtures --op rms_norm --seed 0 --out rms_norm.safetensors
       python -m batch_forge.fixtures --list
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


def _op(name: str):
    def decorate(fn):
        _OPS[name] = fn
        return fn
    return decorate


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


@_op("rms_norm")
def _rms_norm(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    x = _f32(rng.standard_normal((7, 96)) * 2.0)  # [7, 96]: odd row count on purpose
    weight = _f32(1.0 + 0.2 * rng.standard_normal(96))  # [96]
    eps = 1e-5
    norm = eqx.nn.RMSNorm(96, eps=eps, use_bias=False)
    norm = eqx.tree_at(lambda n: n.weight, norm, jnp.asarray(weight))
    y = jax.vmap(norm)(jnp.asarray(x))  # [7, 96]
    return Fixture("rms_norm", seed, {"x": x, "weight": weight}, {"y": _f32(y)},
                   {"eps": eps}, atol=1e-5, rtol=1e-5)


@_op("softmax")
def _softmax(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    x = _f32(rng.standard_normal((5, 67)) * 30.0)  # [5, 67]: large logits, needs max-subtraction
    x[1, 3] = 120.0  # exp(120) overflows f32 without the max trick
    y = jax.nn.softmax(jnp.asarray(x), axis=-1)  # [5, 67]
    return Fixture("softmax", seed, {"x": x}, {"y": _f32(y)}, {"axis": -1},
                   atol=1e-6, rtol=1e-5)


@_op("layer_norm")
def _layer_norm(seed: int) -> Fixture:
    rng = np.random.default_rng(seed)
    x = _f32(rng.standard_normal((6, 80)) * 1.5 + 3.0)  # [6, 80]: non-zero mean
    weight = _f32(1.0 + 0.2 * rng.standard_normal(80))  # [80]
    bias = _f32(0.1 * rng.standard_normal(80))  # [80]
    eps = 1e-5
    norm = eqx.nn.LayerNorm(80, eps=eps)
    norm = eqx.tree_at(lambda n: (n.weight, n.bias), norm,
                       (jnp.asarray(weight), jnp.asarray(bias)))
    y = jax.vmap(norm)(jnp.asarray(x))  # [6, 80]
    return Fixture("layer_norm", seed, {"x": x, "weight": weight, "bias": bias},
                   {"y": _f32(y)}, {"eps": eps}, atol=1e-5, rtol=1e-5)


def ops() -> list[str]:
    return sorted(_OPS)


def make_fixture(op: str, seed: int) -> Fixture:
    """Compute a fixture in float32 on the CPU backend."""
    if op not in _OPS:
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
    p.add_argument("--list", action="store_true", help="print the known ops and exit")
    args = p.parse_args(argv)
    jax.config.update("jax_platforms", "cpu")  # fresh process: pin the reference to the CPU
    if args.list:
        print("\n".join(ops()))
        return 0
    if not args.op or not args.out:
        p.error("--op and --out are required (or --list)")
    if args.op not in _OPS:
        print(f"error: unknown fixture op {args.op!r} (known: {', '.join(ops())})",
              file=sys.stderr)
        return 2
    fx = write_fixture(args.op, args.seed, args.out)
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in {**fx.inputs, **fx.outputs}.items())
    print(f"wrote {args.out}: op={fx.op} seed={fx.seed} ({shapes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
