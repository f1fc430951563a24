#!/usr/bin/env bash
# Configures, builds and runs the test suite (CTest). Run packaging/install-deps.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
# Live tokenizer parity needs Hugging Face `tokenizers` (PyPI) in .venv; small and quick to install.
# tiktoken (also small) checks the Llama 3 vocabulary's ids against the tokenizer it was made for.
if ! .venv/bin/python -c "import tokenizers, tiktoken" 2>/dev/null; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q tokenizers tiktoken || { [ "${CI:-}" != "true" ] || exit 1; echo "tokenizers unavailable: parity test will be skipped" >&2; }
fi
# The real SmolLM2 and Gemma 3 270M checks (GGUF import, tokenizer parity, logits) run where the
# models are installed (Gemma 3 for tests only, never shipped).
bash packaging/install-models.sh --gemma || { [ "${CI:-}" != "true" ] || exit 1; echo "SmolLM2 / Gemma 3 unavailable: their tests will be skipped" >&2; }
# The parity test's Python is named explicitly, so a build folder configured before .venv
# existed (e.g. by the demo command) does not keep a cached system Python.
PYTHON_ARG=""
if [ -x .venv/bin/python ]; then PYTHON_ARG="-DMONOSCOPE_PYTHON=$PWD/.venv/bin/python"; fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release $PYTHON_ARG ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j2
cd "$BUILD"
ctest --output-on-failure -j2 ${CTEST_ARGS:-}
