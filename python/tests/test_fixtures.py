"""Parity fixtures: files are well-formed and their outputs match independent numpy formulas."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from batch_forge import fixtures
from batch_forge.safetensors_io import read_safetensors
from conftest import PYTHON_DIR
from layout import assert_aligned_layout


def _rms_norm(t, p):
    x, w = t["input.x"].astype(np.float64), t["input.weight"].astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + p["eps"]) * w


def _softmax(t, p):
    x = t["input.x"].astype(np.float64)
    e = np.exp(x - x.max(axis=p["axis"], keepdims=True))
    return e / e.sum(axis=p["axis"], keepdims=True)


def _layer_norm(t, p):
    x = t["input.x"].astype(np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + p["eps"]) * t["input.weight"] + t["input.bias"]


REFERENCES = {"rms_norm": _rms_norm, "softmax": _softmax, "layer_norm": _layer_norm}
SHAPES = {"rms_norm": (7, 96), "softmax": (5, 67), "layer_norm": (6, 80)}


def test_registry_holds_these_ops():
    # Other op groups check their fixtures in their own test files (test_*_fixture*.py).
    assert set(REFERENCES) <= set(fixtures.ops())


@pytest.mark.parametrize("op", sorted(REFERENCES))
@pytest.mark.parametrize("seed", [0, 5])
def test_fixture_matches_numpy(tmp_path, op, seed):
    path = tmp_path / f"{op}.safetensors"
    fixtures.write_fixture(op, seed, path)
    assert_aligned_layout(path)
    meta, tensors = read_safetensors(path)
    assert meta["batch_forge.fixture.op"] == op
    assert meta["batch_forge.fixture.seed"] == str(seed)
    params = json.loads(meta["batch_forge.fixture.params"])
    tol = json.loads(meta["batch_forge.fixture.tolerance"])
    assert set(tol) == {"atol", "rtol"}
    assert all(v.dtype == np.float32 for v in tensors.values())
    assert tensors["input.x"].shape == SHAPES[op] == tensors["output.y"].shape
    want = REFERENCES[op](tensors, params)
    np.testing.assert_allclose(tensors["output.y"], want, atol=tol["atol"], rtol=tol["rtol"])
    # Same seed, same bytes: fixtures are reproducible.
    again = fixtures.make_fixture(op, seed)
    assert again.inputs["x"].tobytes() == tensors["input.x"].tobytes()


def test_cli_list_and_write(tmp_path):
    env = {**os.environ, "PYTHONPATH": PYTHON_DIR, "JAX_PLATFORMS": "cpu"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "batch_forge.fixtures", *a],  # noqa
                                    cwd=tmp_path, env=env, capture_output=True, text=True)
    r = run("--list")
    assert r.returncode == 0 and r.stdout.split() == fixtures.ops()
    r = run("--op", "softmax", "--seed", "3", "--out", "sm.safetensors")
    assert r.returncode == 0, r.stderr
    meta, tensors = read_safetensors(tmp_path / "sm.safetensors")
    assert meta["batch_forge.fixture.seed"] == "3"
    assert json.loads(meta["batch_forge.fixture.params"]) == {"axis": -1}
    assert fixtures.main(["--op", "nope", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
