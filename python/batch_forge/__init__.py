"""batch_forge Python side: export Equinox models to the engine's file format, reference
models, and parity fixtures for the C++ kernels. See docs/model-format.md for the file contract.
"""

__version__ = "0.1.0"

from . import families  # noqa: E402  (registers the built-in families)
from .export import ExportInfo, export, load, load_into, named_arrays  # noqa: E402
from .safetensors_io import read_metadata, read_safetensors, write_safetensors  # noqa: E402

__all__ = [
    "ExportInfo", "export", "families", "load", "load_into", "named_arrays",
    "read_metadata", "read_safetensors", "write_safetensors", "__version__",
]
