#!/usr/bin/env bash
# Proves the core and command-line tool configure and build against PyPI's torch 2.x (a
# CUDA-enabled LibTorch), then runs the CLI on a fixture. Needs torch in .venv
# (bash tests/bench/setup-peers.sh) and the CUDA toolkit (nvcc); no GPU is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-torch-pypi}
PY=${PY:-.venv/bin/python}
PREFIX=$("$PY" -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
TORCH_LIB=$("$PY" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# The CUDA libraries torch was built against come as PyPI wheels (nvidia-*); link against those,
# not against whatever CUDA/NCCL the system has.
NV_LIBS=$("$PY" -c "import glob, os, torch; sp = os.path.dirname(os.path.dirname(torch.__file__)); print(':'.join(sorted(glob.glob(os.path.join(sp, 'nvidia', '*', 'lib')) + glob.glob(os.path.join(sp, 'nvidia', 'cu*', 'lib')))))")
echo "torch $("$PY" -c 'import torch; print(torch.__version__)') at $PREFIX"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DMONOSCOPE_BUILD_TESTS=OFF -DMONOSCOPE_WERROR=OFF -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$NV_LIBS" ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j2 --target monoscope-cli
LD_LIBRARY_PATH="$TORCH_LIB:$NV_LIBS:${LD_LIBRARY_PATH:-}" "$BUILD/app/monoscope-cli" logits \
  --model tests/fixtures/models/llama-tiny --ids 1,2,3 --out "$BUILD/check.safetensors" --device auto
echo "built and ran against PyPI torch: OK"
