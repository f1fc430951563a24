#!/usr/bin/env bash
# The forward pass of every model family against `transformers` on the same checkpoint: random
# float32 checkpoints of about 130M parameters per family (written once by
# tests/bench/make_family_bench.py under $FAMILIES, default build/bench-families), logits of
# BATCH x SEQ tokens (default 1 x 256), best of 3 after a warm-up, RUNS times (default 3).
# Prints every run, then per family the range of tokens/s and of the ratio measured in the same run.
# Usage: bash tests/bench/families.sh [RUNS] [FAMILY...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-2}
SEQ=${SEQ:-256}
BATCH=${BATCH:-1}
FAMILIES=${FAMILIES:-$BUILD/bench-families}
RUNS=${1:-3}
shift || true
NAMES=${*:-gpt2 llama3 mistral qwen2 qwen3 gemma gemma2 gemma3 gpt_neox}
cmake --build "$BUILD" -j2 --target monoscope-bench >/dev/null
# shellcheck disable=SC2086
"$PY" tests/bench/make_family_bench.py "$FAMILIES" $NAMES >/dev/null 2>&1
results=$(mktemp)
for run in $(seq "$RUNS"); do
  for f in $NAMES; do
    "$BUILD/tests/bench/monoscope-bench" forward "$THREADS" "$SEQ" "$BATCH" 3 "$FAMILIES/$f" \
      | sed "s/^{/{\"run\": $run, \"name\": \"$f\", /" >> "$results"
    "$PY" tests/bench/peers.py forward --threads "$THREADS" --seq "$SEQ" --batch "$BATCH" --iters 3 --model "$FAMILIES/$f" 2>/dev/null \
      | sed "s/^{/{\"run\": $run, \"name\": \"$f\", /" >> "$results"
  done
done
"$PY" - "$results" "$BATCH" "$SEQ" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for r in rows:
    print(json.dumps(r))
print(f"forward, {sys.argv[2]} x {sys.argv[3]} tokens, float32, {len({r['run'] for r in rows})} runs (tokens/s ranges; ratio per run):")
for name in dict.fromkeys(r["name"] for r in rows):
    m = {r["run"]: r for r in rows if r["name"] == name and r["impl"] == "monoscope"}
    t = {r["run"]: r for r in rows if r["name"] == name and r["impl"] == "transformers"}
    ratios = [m[k]["tokens_per_s"] / t[k]["tokens_per_s"] for k in m if k in t]
    mv = [r["tokens_per_s"] for r in m.values()]
    tv = [r["tokens_per_s"] for r in t.values()]
    print(f"  {name:9s} {next(iter(m.values()))['parameters'] / 1e6:5.0f}M: Monoscope {min(mv):6.0f}-{max(mv):6.0f}, "
          f"transformers {min(tv):6.0f}-{max(tv):6.0f}, ratio {min(ratios):.2f}-{max(ratios):.2f}x")
PYEOF
