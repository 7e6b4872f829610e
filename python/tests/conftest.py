"""Test setup: make `batch_forge` (python/) and the test helpers importable, pin JAX to CPU."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(PYTHON_DIR)

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before anything imports jax
for p in (PYTHON_DIR, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)
