#!/usr/bin/env bash
# The main job: set up, build, make the default model if it is not there, and run `batch_forge`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
model=${BATCH_FORGE_MODEL:-models/default.safetensors}
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  .venv/bin/python python/export_eqx.py --out "$model"
fi
BATCH_FORGE_MODEL="$model" build/apps/batch_forge "$@"
