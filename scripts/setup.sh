#!/usr/bin/env bash
# Installs what batch_forge needs on a fresh Debian 12 machine (run as root): build tools and
# libraries from Debian's packages, and a Python virtual environment (.venv) with the pinned
# JAX/Equinox stack from PyPI. Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  cmake ninja-build g++ git pkg-config time  # build; `time` measures peak RSS in docs/benchmarks
  clang libclang-rt-14-dev                   # libFuzzer + sanitizer runtimes for the fuzz build
  libgtest-dev                               # GoogleTest (C++ tests through CTest)
  libopenblas-pthread-dev                    # the vendor BLAS of the CPU backend (pinned to 1 thread: our pool threads it)
  libcli11-dev                               # the CLI's argument parsing
  nlohmann-json3-dev                         # JSON (safetensors headers, configs)
  libboost1.81-dev                           # Boost.Asio + Boost.Beast (header-only): the HTTP server
  python3 python3-venv                       # the exporter and the JAX reference
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The virtual environment is rebuilt only when python/requirements.txt changes.
stamp=.venv/.requirements.sha256
want=$(sha256sum python/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with python/requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r python/requirements.txt
  echo "$want" > "$stamp"
fi
echo "setup: ok"
