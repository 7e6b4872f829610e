"""export_eqx.py as users run it: from another directory, in a fresh process."""

import importlib.util
import json
import os
import subprocess
import sys

import equinox as eqx
import jax

import batch_forge
from batch_forge.families.transformer import DEFAULT_CONFIG, TransformerConfig, init_transformer
from conftest import PYTHON_DIR
from layout import assert_aligned_layout

SCRIPT = os.path.join(PYTHON_DIR, "export_eqx.py")


def _run(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_only_out(tmp_path):
    r = _run(tmp_path, "--out", "model.safetensors")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "model.safetensors"
    assert str(path.stat().st_size) in r.stdout and "transformer" in r.stdout
    assert "tensors=21" in r.stdout and r.stdout.count("\n") == 1
    assert_aligned_layout(path)
    meta = batch_forge.read_metadata(path)
    assert json.loads(meta["batch_forge.config"]) == DEFAULT_CONFIG.to_dict()
    assert meta["batch_forge.source"] == "random(seed=0)"


def test_check_with_overrides_and_bf16(tmp_path):
    cfg = {"n_layers": 1, "norm": "layer", "mlp": "gelu", "tie_embeddings": True,
           "qkv_bias": True, "head_dim": 6}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    r = _run(tmp_path, "--out", "m.safetensors", "--config", "cfg.json", "--dtype", "bf16",
             "--seed", "3", "--check")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("OK")
    model = batch_forge.load(tmp_path / "m.safetensors")
    assert model.config.head_dim == 6 and model.lm_head is None
    assert str(model.embed.weight.dtype) == "bfloat16"


def test_checkpoint(tmp_path):
    cfg = {**DEFAULT_CONFIG.to_dict(), "n_layers": 1}
    module = init_transformer(TransformerConfig.from_dict(cfg), jax.random.PRNGKey(42))
    eqx.tree_serialise_leaves(tmp_path / "ck.eqx", module)
    r = _run(tmp_path, "--out", "m.safetensors", "--config", '{"n_layers": 1}',
             "--checkpoint", "ck.eqx", "--check")
    assert r.returncode == 0, r.stderr
    got = batch_forge.named_arrays(batch_forge.load(tmp_path / "m.safetensors"))
    for name, arr in batch_forge.named_arrays(module).items():
        assert got[name].tobytes() == arr.tobytes(), name
    assert batch_forge.read_metadata(tmp_path / "m.safetensors")["batch_forge.source"] == "ck.eqx"


def _load_script():
    """export_eqx.py imported in-process: error paths are tested without a process each."""
    spec = importlib.util.spec_from_file_location("export_eqx", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_config_exits_2_naming_the_field(tmp_path):
    r = _run(tmp_path, "--out", "x.safetensors", "--config", '{"n_heads": 4, "dimm": 3}')
    assert r.returncode == 2 and "dimm" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "x.safetensors").exists()


def test_errors_exit_2_with_one_clear_line(tmp_path, monkeypatch, capsys):
    script = _load_script()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.eqx").write_bytes(b"not a checkpoint")
    cases = [
        (["--config", '{"head_dim": 7}'], "head_dim"),
        (["--config", '{"n_kv_heads": 3}'], "n_kv_heads"),
        (["--config", '{"n_layers": '], "not valid JSON"),
        (["--config", "[1, 2]"], "must be a JSON object"),
        (["--config", "missing.json"], "missing.json"),
        (["--family", "mamba2"], "mamba2"),
        (["--checkpoint", "nope.eqx"], "nope.eqx"),
        (["--checkpoint", "junk.eqx"], "junk.eqx"),
        (["--out", "no/such/dir/x.safetensors"], "no/such/dir"),
    ]
    for args, needle in cases:
        assert script.main(["--out", "x.safetensors", *args]) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.startswith("export_eqx: error:"), (args, err)
    assert not (tmp_path / "x.safetensors").exists()
