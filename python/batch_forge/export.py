"""Equinox module <-> batch_forge model file (docs/model-format.md).

Tensor names are the PyTree key paths of the module's array leaves, so the file mirrors the
Python structure exactly and the C++ side can find weights by name without knowing Equinox:
attribute names, sequence indices and dict keys joined with '.', e.g. `layers.3.attn.query_proj.weight`.
Non-array leaves (ints, strings, functions) are static config and are not stored; None is absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import __version__, families
from .safetensors_io import read_safetensors, write_safetensors

FORMAT_MAJOR = 1
KEY_FORMAT = "batch_forge.format"
KEY_FAMILY = "batch_forge.family"
KEY_CONFIG = "batch_forge.config"
KEY_EXPORTER = "batch_forge.exporter"
KEY_SOURCE = "batch_forge.source"


@dataclass(frozen=True)
class ExportInfo:
    """What export() wrote: enough for a one-line summary."""
    path: str
    n_tensors: int  # real tensors, fillers not counted
    n_bytes: int  # file size


def _is_leaf_array(x) -> bool:
    """Arrays, plus shape-only stand-ins so eqx.filter_eval_shape skeletons can be loaded into."""
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def _key_name(key) -> str:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    raise TypeError(f"unsupported PyTree key {key!r}")


def _flatten(module) -> tuple[list[tuple[str, Any]], Any]:
    """([(name, leaf)] in PyTree order, treedef) over the module's array leaves."""
    arrays = eqx.filter(module, _is_leaf_array)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays)
    named = [(".".join(_key_name(k) for k in path), leaf) for path, leaf in leaves]
    seen: set[str] = set()
    for name, _ in named:
        if name in seen:
            raise ValueError(f"two array leaves share the tensor name {name!r}")
        seen.add(name)
    return named, treedef


def named_arrays(module) -> dict[str, np.ndarray]:
    """name -> numpy array for every array leaf, in PyTree (= file) order."""
    return {name: np.asarray(leaf) for name, leaf in _flatten(module)[0]}


def _config_dict(config) -> dict:
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict or have to_dict(), got {type(config).__name__}")
    return dict(config)


def export(module, path: str | os.PathLike, *, family: str, config, source: str | None = None,
           extra_metadata: Mapping[str, str] | None = None) -> ExportInfo:
    """Write `module`'s arrays to an aligned safetensors model file at `path`."""
    metadata = dict(extra_metadata or {})
    metadata.update({
        KEY_FORMAT: str(FORMAT_MAJOR),
        KEY_FAMILY: family,
        KEY_CONFIG: json.dumps(_config_dict(config), sort_keys=True),
        KEY_EXPORTER: f"batch_forge.export {__version__}",
    })
    if source is not None:
        metadata[KEY_SOURCE] = source
    tensors = named_arrays(module)
    n_bytes = write_safetensors(path, tensors.items(), metadata)
    return ExportInfo(os.fspath(path), len(tensors), n_bytes)


def _restore(like_module, file_tensors: Mapping[str, np.ndarray], where: str):
    """`like_module` with every array leaf replaced by the same-named file tensor."""
    named, treedef = _flatten(like_module)
    missing, misshaped = [], []
    for name, leaf in named:
        if name not in file_tensors:
            missing.append(name)
        elif tuple(file_tensors[name].shape) != tuple(leaf.shape):
            misshaped.append(f"{name}: file {list(file_tensors[name].shape)}, "
                             f"module {list(leaf.shape)}")
    expected = {name for name, _ in named}
    unexpected = [name for name in file_tensors if name not in expected]
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"missing tensors ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors ({len(unexpected)}): {', '.join(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped tensors ({len(misshaped)}): {'; '.join(misshaped)}")
        raise ValueError(f"{where} does not match the module: " + "; ".join(parts))
    # The file's dtype wins (a bf16 export loads as bf16): loading must be bitwise exact.
    # numpy leaves stay numpy (jnp would silently narrow 64-bit types without jax_enable_x64).
    new_leaves = [file_tensors[name] if isinstance(leaf, np.ndarray)
                  else jnp.asarray(file_tensors[name]) for name, leaf in named]
    arrays = jax.tree_util.tree_unflatten(treedef, new_leaves)
    return eqx.combine(arrays, eqx.filter(like_module, _is_leaf_array, inverse=True))


def load_into(like_module, path: str | os.PathLike):
    """A copy of `like_module` holding the arrays stored in `path` (bitwise, file dtypes kept).

    `like_module` only supplies the structure and shapes; it may be an eqx.filter_eval_shape
    skeleton. Raises ValueError naming every missing, unexpected and mis-shaped tensor at once.
    """
    metadata, tensors = read_safetensors(path)
    if KEY_FORMAT in metadata:  # plain safetensors files load too; newer model files do not
        check_format(metadata, os.fspath(path))
    return _restore(like_module, tensors, os.fspath(path))


def check_format(metadata: Mapping[str, str], where: str = "file") -> None:
    """Refuse files that are not batch_forge models or whose major version is newer than ours."""
    version = metadata.get(KEY_FORMAT)
    if version is None:
        raise ValueError(f"{where}: not a batch_forge model file (no {KEY_FORMAT} metadata)")
    major = version.split(".", 1)[0]
    if not major.isdigit():
        raise ValueError(f"{where}: malformed {KEY_FORMAT} {version!r}")
    if int(major) > FORMAT_MAJOR:
        raise ValueError(f"{where}: {KEY_FORMAT} is {version!r} but this reader supports "
                         f"major version {FORMAT_MAJOR} only; upgrade batch_forge")


def load(path: str | os.PathLike):
    """Build the file's registered family from its stored config and load its weights."""
    where = os.fspath(path)
    metadata, tensors = read_safetensors(path)
    check_format(metadata, where)
    family = families.get(metadata.get(KEY_FAMILY, ""))
    try:
        config = json.loads(metadata.get(KEY_CONFIG, "{}"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: {KEY_CONFIG} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{where}: {KEY_CONFIG} is not a JSON object")
    config = family.check_config(config)
    if family.skeleton is not None:  # shapes only: nothing allocated that we overwrite anyway
        skeleton = family.skeleton(config)
    else:
        skeleton = family.build(config, jax.random.PRNGKey(0))
    return _restore(skeleton, tensors, where)
