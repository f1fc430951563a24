#!/usr/bin/env bash
# The test suite built with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/): any
# memory error or undefined behaviour in Monoscope's code fails the test that hit it. Run after
# packaging/install-deps.sh; CI runs it after tests/run.sh. CTEST_ARGS selects tests (e.g. -L core).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-asan}
PYTHON_ARG=""
if [ -x .venv/bin/python ]; then PYTHON_ARG="-DMONOSCOPE_PYTHON=$PWD/.venv/bin/python"; fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONOSCOPE_SANITIZE=ON $PYTHON_ARG ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j2
# LibTorch, OpenBLAS and Qt are not built with the sanitizers; leak reports from their caches
# would drown ours, so leak checking is off. Memory errors and UB abort the process.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_odr_violation=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD"
ctest --output-on-failure -j2 --timeout 900 ${CTEST_ARGS:-}
