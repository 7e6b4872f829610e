"""Exporter/loader: bitwise round trips, PyTree naming, error reporting, format versioning."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

import batch_forge
from batch_forge import families
from batch_forge.families.transformer import DEFAULT_CONFIG, TransformerConfig, init_transformer
from batch_forge.safetensors_io import read_safetensors, write_safetensors
from layout import assert_aligned_layout

forward = eqx.filter_jit(lambda model, tokens: model(tokens))  # one compile, not one per op

ODD_CONFIGS = {
    "layer_gelu_biases_tied": dict(norm="layer", mlp="gelu", qkv_bias=True, out_bias=True,
                                   mlp_bias=True, tie_embeddings=True),
    "mha": dict(n_heads=4, n_kv_heads=4),
    "head_dim_not_dim_over_heads": dict(dim=50, n_heads=3, n_kv_heads=1, head_dim=10,
                                        hidden_dim=33, vocab_size=99),
    "no_layers": dict(n_layers=0),
}


def _config(**overrides) -> TransformerConfig:
    return TransformerConfig.from_dict({**DEFAULT_CONFIG.to_dict(), **overrides})


def _assert_bitwise_equal(a, b):
    na, nb = batch_forge.named_arrays(a), batch_forge.named_arrays(b)
    assert list(na) == list(nb)
    for name in na:
        assert na[name].dtype == nb[name].dtype, name
        assert na[name].shape == nb[name].shape, name
        assert na[name].tobytes() == nb[name].tobytes(), name


@pytest.mark.parametrize("name", ["default", *ODD_CONFIGS])
def test_transformer_round_trip_bitwise(tmp_path, name):
    cfg = DEFAULT_CONFIG if name == "default" else _config(**ODD_CONFIGS[name])
    model = init_transformer(cfg, jax.random.PRNGKey(1))
    path = tmp_path / "m.safetensors"
    info = batch_forge.export(model, path, family="transformer", config=cfg, source="test")
    assert info.n_tensors == len(batch_forge.named_arrays(model))
    assert info.n_bytes == path.stat().st_size
    assert_aligned_layout(path)
    loaded = batch_forge.load(path)
    _assert_bitwise_equal(model, loaded)
    assert loaded.config == cfg
    other = init_transformer(cfg, jax.random.PRNGKey(9))
    _assert_bitwise_equal(model, batch_forge.load_into(other, path))
    tokens = jnp.array([1, 5, 7, 200 % cfg.vocab_size], jnp.int32)
    np.testing.assert_array_equal(np.asarray(forward(model, tokens)),
                                  np.asarray(forward(loaded, tokens)))
    # The reference library sees the same bytes.
    lib = safetensors.numpy.load_file(path)
    for key, arr in batch_forge.named_arrays(model).items():
        np.testing.assert_array_equal(lib[key], arr)


def test_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    model = init_transformer(DEFAULT_CONFIG, jax.random.PRNGKey(0))
    batch_forge.export(model, path, family="transformer", config=DEFAULT_CONFIG,
                       source="random(seed=0)", extra_metadata={"note": "hi"})
    meta = batch_forge.read_metadata(path)
    assert meta["batch_forge.format"] == "1"
    assert meta["batch_forge.family"] == "transformer"
    assert json.loads(meta["batch_forge.config"]) == DEFAULT_CONFIG.to_dict()
    assert meta["batch_forge.config"] == json.dumps(DEFAULT_CONFIG.to_dict(), sort_keys=True)
    assert meta["batch_forge.exporter"] == f"batch_forge.export {batch_forge.__version__}"
    assert meta["batch_forge.source"] == "random(seed=0)" and meta["note"] == "hi"


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_export(tmp_path, dtype):
    model = init_transformer(_config(dim=40, head_dim=6, hidden_dim=30), jax.random.PRNGKey(2))
    model = jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_array(x) else x, model)
    path = tmp_path / "h.safetensors"
    batch_forge.export(model, path, family="transformer", config=model.config)
    assert_aligned_layout(path)
    _, tensors = read_safetensors(path)
    want = ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.float16
    assert all(t.dtype == want for t in tensors.values())
    loaded = batch_forge.load(path)
    _assert_bitwise_equal(model, loaded)
    assert forward(loaded, jnp.arange(5)).dtype == jnp.float32


class Toy(eqx.Module):
    """A user module: list and dict fields, a None leaf, and non-array leaves."""
    blocks: list
    table: dict
    ids: np.ndarray
    scale: float
    act: object

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.blocks = [{"w": jax.random.normal(k1, (3, 5))},
                       {"w": jnp.arange(7, dtype=jnp.int32), "b": None}]
        self.table = {"alpha": jax.random.normal(k2, (2,)), "beta": jnp.array(1.5),
                      "empty": jnp.zeros((0, 3))}
        self.ids = np.arange(4, dtype=np.int64) * (1 << 40)  # numpy leaf: must stay int64
        self.scale = 0.5
        self.act = jax.nn.relu


def test_user_module_names_and_round_trip(tmp_path):
    toy = Toy(jax.random.PRNGKey(3))
    assert list(batch_forge.named_arrays(toy)) == [
        "blocks.0.w", "blocks.1.w", "table.alpha", "table.beta", "table.empty", "ids"]
    path = tmp_path / "toy.safetensors"
    batch_forge.export(toy, path, family="toy", config={"n": 1})
    assert_aligned_layout(path)
    back = batch_forge.load_into(Toy(jax.random.PRNGKey(4)), path)
    _assert_bitwise_equal(toy, back)
    assert back.ids.dtype == np.int64 and back.ids[3] == 3 << 40
    assert back.scale == 0.5 and back.act is jax.nn.relu and back.blocks[1]["b"] is None
    # A registered family loads without the caller building the skeleton.
    families.register("toy")(lambda config, key: Toy(key))
    _assert_bitwise_equal(toy, batch_forge.load(path))


def test_load_into_reports_every_mismatch(tmp_path):
    model = init_transformer(DEFAULT_CONFIG, jax.random.PRNGKey(0))
    tensors = batch_forge.named_arrays(model)
    del tensors["layers.0.attn.key_proj.weight"], tensors["final_norm.weight"]
    tensors["layers.1.mlp.up_proj.weight"] = np.zeros((3, 3), np.float32)
    tensors["embed.weight"] = np.zeros((256, 63), np.float32)
    tensors["extra.thing"] = np.zeros(2, np.float32)
    tensors["layers.9.attn_norm.weight"] = np.zeros(64, np.float32)
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, tensors, {"batch_forge.format": "1"})
    with pytest.raises(ValueError) as err:
        batch_forge.load_into(model, path)
    msg = str(err.value)
    for name in ["layers.0.attn.key_proj.weight", "final_norm.weight", "extra.thing",
                 "layers.9.attn_norm.weight", "layers.1.mlp.up_proj.weight", "embed.weight"]:
        assert name in msg
    assert "missing tensors (2)" in msg and "unexpected tensors (2)" in msg
    assert "mis-shaped tensors (2)" in msg and "[256, 63]" in msg


def _model_file(tmp_path, version):
    path = tmp_path / f"v{version}.safetensors"
    model = init_transformer(DEFAULT_CONFIG, jax.random.PRNGKey(0))
    batch_forge.export(model, path, family="transformer", config=DEFAULT_CONFIG)
    meta, tensors = read_safetensors(path)
    if version is None:
        del meta["batch_forge.format"]
    else:
        meta["batch_forge.format"] = version
    write_safetensors(path, tensors, meta)
    return path


def test_format_versions(tmp_path):
    v2 = _model_file(tmp_path, "2")
    with pytest.raises(ValueError, match=r"'2'.*major version 1"):
        batch_forge.load(v2)
    with pytest.raises(ValueError, match="major version 1"):
        batch_forge.load_into(init_transformer(DEFAULT_CONFIG, jax.random.PRNGKey(0)), v2)
    with pytest.raises(ValueError, match="not a batch_forge model"):
        batch_forge.load(_model_file(tmp_path, None))
    assert batch_forge.load(_model_file(tmp_path, "1.2")).config == DEFAULT_CONFIG


def test_unknown_family_refused(tmp_path):
    path = tmp_path / "f.safetensors"
    batch_forge.export(Toy(jax.random.PRNGKey(0)), path, family="nope", config={})
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        batch_forge.load(path)
