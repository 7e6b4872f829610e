"""The two quantizers write the same bytes, and the engine reads what they write.

For every scheme: an exported model is quantized by `python -m batch_forge.quant` and by
`batch_forge quantize`; the files must be byte-identical (cmp), and `batch_forge inspect` must
validate the result (exit 0) and list the quantized weights with their logical dtypes and shapes.
A hand-made file covers what exported models do not: f16/bf16 inputs, awkward names and metadata,
zero-size tensors sharing an offset, rint ties, tiny and huge values, and rows whose fp8 scale is 1
so that every f16 value goes through the C++ f32 → e4m3fn conversion and must equal ml_dtypes'.
Bad inputs make the CLI exit 1 with a message and leave no file behind.
Run through CTest (cli_end_to_end), which sets BF_BINARY_DIR and BF_SOURCE_DIR.
"""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

SOURCE = Path(os.environ.get("BF_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("BF_BINARY_DIR", SOURCE / "build")) / "apps" / "batch_forge"
sys.path.insert(0, str(SOURCE / "python"))

from batch_forge import quant  # noqa: E402
from batch_forge.safetensors_io import write_safetensors  # noqa: E402

SCHEMES = list(quant.SCHEMES)
LOGICAL = {"q8_0": "q8_0", "q4_0": "q4_0", "nf4": "nf4", "fp8_e4m3": "f8_e4m3"}


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(SOURCE / "python"), JAX_PLATFORMS="cpu")
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)


def export(directory, name, *args):
    path = directory / name
    done = run(sys.executable, SOURCE / "python" / "export_eqx.py", "--out", path, *args)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "default": export(d, "default.safetensors"),  # hidden_dim 172: down_proj stays f32 (blocks)
        "bf16": export(d, "bf16.safetensors", "--dtype", "bf16", "--config",
                       '{"n_layers": 1, "hidden_dim": 128, "tie_embeddings": true, "norm": "layer", '
                       '"mlp": "gelu", "qkv_bias": true}'),
        "f16": export(d, "f16.safetensors", "--dtype", "f16", "--config", '{"n_layers": 1, "dim": 96}'),
    }


def both(src, out_dir, scheme, python_cli=False):
    """(python output, C++ output) of quantizing src."""
    py, cc = out_dir / f"py_{scheme}.safetensors", out_dir / f"cc_{scheme}.safetensors"
    if python_cli:
        done = run(sys.executable, "-m", "batch_forge.quant", src, py, "--scheme", scheme)
        assert done.returncode == 0, done.stderr
    else:
        quant.quantize_file(src, py, scheme)
    done = run(BINARY, "quantize", src, cc, "--scheme", scheme)
    assert done.returncode == 0, done.stderr
    assert f"quantized to {scheme}" in done.stdout
    return py, cc


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("model", ["default", "bf16", "f16"])
def test_exported_model_identical_and_valid(models, tmp_path, model, scheme):
    py, cc = both(models[model], tmp_path, scheme, python_cli=(model == "default"))
    assert filecmp.cmp(py, cc, shallow=False), f"{model} {scheme}: python and C++ files differ"

    done = run(BINARY, "inspect", cc, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads(done.stdout)
    assert info["valid"] and info["problems"] == []
    qmap = json.loads(info["metadata"][quant.QUANT_KEY])
    assert qmap, "nothing was quantized"
    listed = {t["name"]: t for t in info["tensors"]}
    assert not any(n.endswith(".scale") for n in listed)  # fp8 scales are part of their weight
    for name, entry in qmap.items():
        assert entry["scheme"] == scheme
        assert listed[name]["dtype"] == LOGICAL[scheme] and listed[name]["shape"] == entry["shape"], name
        assert listed[name]["offset"] % 64 == 0
    for name, t in listed.items():
        if name not in qmap:
            assert t["dtype"] in ("f32", "f16", "bf16"), name
    table = run(BINARY, "inspect", cc)
    assert table.returncode == 0 and "check     ok" in table.stdout
    assert f" {LOGICAL[scheme]} " in table.stdout


def edge_file(path):
    """A plain safetensors file built to hit the corners of both quantizers."""
    rng = np.random.default_rng(11)
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    h = h[np.isfinite(h) & (np.abs(h) <= 448)]
    h = np.concatenate([h, np.zeros((-len(h)) % 1024, np.float32)])
    fp8_rows = h.reshape(-1, 1024)
    fp8_rows[:, 0] = 448.0  # scale 1: the codes are the conversions of the values themselves
    rand = rng.integers(0, 1 << 32, 1 << 17, dtype=np.uint64).astype(np.uint32).view(np.float32)
    rand = rand[np.isfinite(rand) & (np.abs(rand) <= 448)]
    rand = rand[: len(rand) // 1023 * 1023].reshape(-1, 1023)
    rand_rows = np.concatenate([np.full((len(rand), 1), -448.0, np.float32), rand], axis=1)
    ties = (np.arange(-64, 64, dtype=np.float32) + 0.5).reshape(2, 64)  # x.5 everywhere
    ties[:, 0] = 127.0  # q8_0 d = 1 exactly: every code is a rint tie
    tiny = (rng.standard_normal((5, 128)) * 1e-6).astype(np.float32)
    tiny[1] = rng.standard_normal(128).astype(np.float32) * np.float32(1e-30)  # f16 scales underflow
    tiny[2] = 0.0
    tiny[3, ::2] = -0.0
    tiny[4] = rng.standard_normal(128).astype(np.float32) * np.float32(1e-39)  # f32 subnormals
    big = rng.uniform(-60000, 60000, (2, 64)).astype(np.float32)  # under every f16 scale limit
    tensors = [
        ("b.empty", np.zeros((0,), np.float32)),
        ("a.empty", np.zeros((0,), np.uint8)),
        ("fp8_table.weight", fp8_rows),
        ("fp8_random.weight", rand_rows),
        ("ties.weight", ties),
        ("tiny.weight", tiny),
        ("big.weight", big),
        ("h.weight", rng.standard_normal((8, 64)).astype(np.float16)),
        ("bf.weight", rng.standard_normal((8, 192)).astype(ml_dtypes.bfloat16)),
        ("名前\n\"x\".weight", rng.standard_normal((2, 64)).astype(np.float32)),
        ("odd.weight", rng.standard_normal((3, 7)).astype(np.float32)),
        ("flag", np.array([True, False])),
    ]
    meta = {"z": "é\u0001\u007f\\\"", "a": "😀", "batch_forge.note": "{\"json\": [1, 2]}"}
    write_safetensors(path, tensors, meta)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_edge_file_identical(tmp_path, scheme):
    src = tmp_path / "edge.safetensors"
    edge_file(src)
    py, cc = both(src, tmp_path, scheme)
    assert filecmp.cmp(py, cc, shallow=False), f"{scheme}: python and C++ files differ"
    done = run(BINARY, "inspect", cc, "--json")
    assert done.returncode == 0, done.stderr
    listed = {t["name"]: t["dtype"] for t in json.loads(done.stdout)["tensors"]}
    assert listed["ties.weight"] == LOGICAL[scheme] and listed["flag"] == "bool"
    assert listed["odd.weight"] == ("f8_e4m3" if scheme == "fp8_e4m3" else "f32")


def assert_refused(tmp_path, src, out, *words):
    done = run(BINARY, "quantize", src, out, "--scheme", "q8_0")
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("batch_forge: [") and "Traceback" not in done.stderr
    for w in words:
        assert w in done.stderr, (w, done.stderr)
    assert not Path(out).exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p], os.listdir(tmp_path)


def test_cli_refuses_bad_input_and_leaves_no_file(tmp_path, models):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    assert_refused(tmp_path, junk, tmp_path / "out1.safetensors", "junk.safetensors", "JSON")

    nan = tmp_path / "nan.safetensors"
    w = np.ones((4, 64), np.float32)
    w[2, 9] = np.nan
    write_safetensors(nan, [("ok.weight", np.ones((2, 32), np.float32)), ("layers.3.w.weight", w)])
    assert_refused(tmp_path, nan, tmp_path / "out2.safetensors", "'layers.3.w.weight'", "row 2", "column 9", "nan")

    assert_refused(tmp_path, models["default"], tmp_path / "no_dir" / "out.safetensors", "no_dir")

    done = run(BINARY, "quantize", models["default"], tmp_path / "q.safetensors", "--scheme", "q8_0")
    assert done.returncode == 0, done.stderr
    assert_refused(tmp_path, tmp_path / "q.safetensors", tmp_path / "out3.safetensors", "already quantized")
