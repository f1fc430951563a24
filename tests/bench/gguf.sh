#!/usr/bin/env bash
# GGUF import of SmolLM2-135M-Instruct (Q4_1, 98 MB): `monoscope-cli import-gguf` (dequantise,
# un-permute q/k, write an F32 Hugging Face folder) against `transformers` loading the same file
# (`from_pretrained(gguf_file=...)`: the `gguf` package's dequantisation and the same renaming),
# each RUNS times in the same run; prints the range and the ratio of medians.
# Usage: bash tests/bench/gguf.sh [RUNS]   (peers in .venv: bash tests/bench/setup-peers.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PY:-.venv/bin/python}
RUNS=${1:-3}
bash packaging/install-models.sh >/dev/null
GGUF=data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cmake --build "$BUILD" -j2 --target monoscope-cli >/dev/null
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ours=()
for i in $(seq "$RUNS"); do
  rm -rf "$OUT/m"
  s=$(date +%s%N)
  "$BUILD/app/monoscope-cli" import-gguf --gguf "$GGUF" --out "$OUT/m" 2>/dev/null
  e=$(date +%s%N)
  ours+=("$(( (e - s) / 1000000 ))e-3")
done
theirs=()
for i in $(seq "$RUNS"); do
  theirs+=("$("$PY" - "$GGUF" <<'PY'
import os, sys, time, warnings
warnings.filterwarnings("ignore")
os.environ["TQDM_DISABLE"] = "1"
import torch
from transformers import AutoModelForCausalLM
p = sys.argv[1]
t = time.perf_counter()
AutoModelForCausalLM.from_pretrained(os.path.dirname(p), gguf_file=os.path.basename(p), dtype=torch.float32)
print(f"{time.perf_counter() - t:.3f}")
PY
)")
done
"$PY" - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
print(f"GGUF import, SmolLM2-135M Q4_1 -> F32 ({len(a)} runs each):")
print(f"  monoscope-cli import-gguf   {min(a):.2f}-{max(a):.2f} s (writes model.safetensors, config, tokenizer)")
print(f"  transformers from_pretrained {min(b):.2f}-{max(b):.2f} s (in memory, writes nothing)")
print(f"  ratio of medians: {statistics.median(b) / statistics.median(a):.2f}x")
PY
