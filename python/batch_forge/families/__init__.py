"""Registry of model families: the name stored in `batch_forge.family` -> how to build it.

Why a registry: `batch_forge.load(path)` and `export_eqx.py --family NAME` must turn a family name
plus a config JSON object back into an Equinox module skeleton without the caller importing the
right class. A family registers a builder `builder(config: dict, key) -> eqx.Module`:

    @register("toy", default_config={"n": 3})
    def build_toy(config, key): ...

`default_config` (what `export_eqx.py` starts from), `check_config` (fills defaults, raises
ValueError naming bad fields) and `skeleton` (config -> module of the right structure, whose
array leaves may be jax.ShapeDtypeStruct, so load() need not allocate random weights it then
overwrites) are optional; `register("toy")(builder)` alone is enough for load().
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[dict, Any], Any]  # (config dict, jax PRNG key) -> eqx.Module
    default_config: dict = field(default_factory=dict)
    check_config: Callable[[dict], dict] = dict  # validated config with defaults filled in
    skeleton: Callable[[dict], Any] | None = None  # config -> structure-only module


_REGISTRY: dict[str, Family] = {}


def register(name: str, *, default_config: dict | None = None,
             check_config: Callable[[dict], dict] | None = None,
             skeleton: Callable[[dict], Any] | None = None):
    """Decorator registering `builder` under `name`; returns the builder unchanged."""

    def decorate(builder):
        _REGISTRY[name] = Family(name, builder, dict(default_config or {}),
                                 check_config or dict, skeleton)
        return builder

    return decorate


def get(name: str) -> Family:
    """The registered family; ValueError listing the known names if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"unknown model family {name!r} (known: {known})") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


# Built-in families register themselves on import.
from . import transformer  # noqa: E402,F401
