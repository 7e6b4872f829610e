"""The batch_forge CLI as a user runs it, end to end.

export_eqx.py writes a model, `batch_forge inspect` reads it (table and --json); a file written
by the reference `safetensors` library inspects as a plain file; every malformed corpus file makes
inspect exit non-zero with its own message and no crash; the no-argument run loads the model.
Run through CTest (cli_end_to_end), which sets BF_BINARY_DIR and BF_SOURCE_DIR.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

SOURCE = Path(os.environ.get("BF_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BINARY = Path(os.environ.get("BF_BINARY_DIR", SOURCE / "build")) / "apps" / "batch_forge"
CORPUS = SOURCE / "tests" / "corpus"


def run(*args, env=None):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "default.safetensors"
    done = run(sys.executable, SOURCE / "python" / "export_eqx.py", "--out", path)
    assert done.returncode == 0, done.stderr
    return path


def test_inspect_exported_model_table(exported):
    done = run(BINARY, "inspect", exported)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "format    batch_forge model v1" in out
    assert "family    transformer:" in out
    assert "embed.weight" in out and "layers.1.mlp.down_proj.weight" in out
    assert "check     ok: tensors match the transformer config" in out
    assert "__bf_pad_" not in out  # fillers are counted, not listed


def test_inspect_exported_model_json_is_aligned(exported):
    done = run(BINARY, "inspect", exported, "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["batch_forge_model"] and info["family"] == "transformer" and info["valid"]
    assert info["config"]["n_layers"] == 2
    assert info["tensors"], "no tensors listed"
    for t in info["tensors"]:
        assert t["offset"] % 64 == 0, t
        assert t["alignment"] >= 64, t
    assert info["totals"]["aligned_64"] == info["totals"]["tensors"] == len(info["tensors"])
    assert sum(t["bytes"] for t in info["tensors"]) == info["totals"]["bytes"]


def test_inspect_file_from_the_safetensors_library(tmp_path):
    path = tmp_path / "lib.safetensors"
    save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros((0,), np.int8),
               "s": np.array(3.5, dtype=np.float64)}, str(path), metadata={"note": "from safetensors"})
    done = run(BINARY, "inspect", path, "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert not info["batch_forge_model"]
    by_name = {t["name"]: t for t in info["tensors"]}
    assert by_name["a"]["shape"] == [2, 3] and by_name["a"]["dtype"] == "f32" and by_name["a"]["bytes"] == 24
    assert by_name["b"]["shape"] == [0] and by_name["b"]["bytes"] == 0
    assert by_name["s"]["shape"] == [] and by_name["s"]["dtype"] == "f64"
    assert info["metadata"] == {"note": "from safetensors"}
    table = run(BINARY, "inspect", path)
    assert table.returncode == 0 and "plain safetensors" in table.stdout


def corpus_cases():
    lines = (CORPUS / "expected.txt").read_text().splitlines()
    return [tuple(l.split("\t", 1)) for l in lines if l.strip() and not l.startswith("#")]


@pytest.mark.parametrize("name,expected", corpus_cases())
def test_inspect_rejects_each_malformed_file(name, expected):
    done = run(BINARY, "inspect", CORPUS / name)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)  # 1: a clean error, no crash
    assert expected in done.stderr and name in done.stderr, done.stderr
    assert done.stderr.startswith("batch_forge: [safetensors]"), done.stderr


def test_inspect_reports_config_mismatch(tmp_path, exported):
    # A valid safetensors file whose tensors do not match its config: listed, then exit 1.
    from safetensors.numpy import load_file
    from safetensors import safe_open
    with safe_open(str(exported), "np") as f:
        meta = f.metadata()
    tensors = {k: v for k, v in load_file(str(exported)).items() if not k.startswith("__bf_pad_")}
    del tensors["final_norm.weight"]
    tensors["lm_head.weight"] = tensors["lm_head.weight"][:, :3].copy()
    bad = tmp_path / "mismatch.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    done = run(BINARY, "inspect", bad)
    assert done.returncode == 1
    assert "2 problems" in done.stdout
    assert "missing tensor 'final_norm.weight'" in done.stdout
    assert "tensor 'lm_head.weight' has shape [256, 3]" in done.stdout
    # The no-argument run refuses it with the same list.
    done = run(BINARY, "--model", bad)
    assert done.returncode == 1 and "missing tensor 'final_norm.weight'" in done.stderr


def test_missing_file_and_bad_flags(tmp_path):
    done = run(BINARY, "inspect", tmp_path / "nope.safetensors")
    assert done.returncode == 1 and "nope.safetensors" in done.stderr
    assert run(BINARY, "inspect").returncode != 0  # FILE is required
    assert "inspect" in run(BINARY, "--help").stdout


def test_default_run_loads_the_model(exported):
    env = dict(os.environ, BATCH_FORGE_MODEL=str(exported))
    done = run(BINARY, env=env)
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout and "transformer" in done.stdout
    # ... then prints the quick benchmark table beside the measured roofline.
    assert "roofline  read bandwidth" in done.stdout
    assert "q4_0 gemv" in done.stdout and "openblas sgemv" in done.stdout
    done = run(BINARY, env=dict(os.environ, BATCH_FORGE_MODEL="/nonexistent/m.safetensors"))
    assert done.returncode == 1 and "fetch_model.sh" in done.stderr
