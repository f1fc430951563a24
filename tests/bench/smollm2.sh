#!/usr/bin/env bash
# SmolLM2-135M-Instruct benchmarks, peers measured in the same run, RUNS times (default 3):
#  - forward: the whole model's logits on 8 windows of 128 tokens, Monoscope (f32) against
#    `transformers` (f32, and bf16 where the CPU has bfloat16 instructions);
#  - index: `monoscope-cli index` of the real demo (scan, statistics, examples, logit effects,
#    neighbours, UMAP, explanations, concept scores) on INDEX_TOKENS tokens against a plain torch
#    harvest loop that only runs the model to the hook, encodes and keeps each feature's top 20;
#  - first launch: the app opening the real demo with no database and an empty model cache
#    (GGUF import, the database build with its progress bar, the model loaded), offscreen.
# Prints each run's figures, the ranges and the worst run's ratios.
# Usage: bash tests/bench/smollm2.sh [RUNS]   FIRST_LAUNCH=0 leaves the first launch out.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-2}
RUNS=${1:-3}
INDEX_TOKENS=${INDEX_TOKENS:-65536}
bash packaging/install-models.sh >/dev/null
GGUF=data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cmake --build "$BUILD" -j2 --target monoscope-cli monoscope monoscope-bench >/dev/null
CLI="$BUILD/app/monoscope-cli"
BENCH="$BUILD/tests/bench/monoscope-bench"
F32="$BUILD/bench-smollm2-f32"
[ -s "$F32/model.safetensors" ] || "$CLI" import-gguf --gguf "$GGUF" --out "$F32" >/dev/null 2>&1
DTYPES="float32"
if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then DTYPES="float32 bfloat16"; fi
results=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for run in $(seq "$RUNS"); do
  "$BENCH" forward "$THREADS" 128 8 3 "$F32" | sed "s/^{/{\"run\": $run, /" >> "$results"
  for dt in $DTYPES; do
    "$PY" tests/bench/smollm2_peers.py forward --model "$F32" --dtype "$dt" --threads "$THREADS" 2>/dev/null |
      sed "s/^{/{\"run\": $run, /" >> "$results"
  done
  rm -f "$WORK/index.db"
  /usr/bin/time -f '%e %M' -o "$WORK/index.time" "$CLI" index --model "$F32" --sae data/smollm2/sae \
    --corpus data/smollm2/corpus/sample.tokens.safetensors --tokens "$INDEX_TOKENS" --context 128 \
    --out "$WORK/index.db" --threads "$THREADS" >/dev/null 2>&1
  read -r secs kb < "$WORK/index.time"
  echo "{\"run\": $run, \"bench\": \"harvest\", \"impl\": \"monoscope index\", \"dtype\": \"float32\", \"tokens\": $INDEX_TOKENS, \"seconds\": $secs, \"tokens_per_s\": $(python3 -c "print($INDEX_TOKENS / $secs)"), \"peak_rss_mb\": $(python3 -c "print($kb / 1024)")}" >> "$results"
  for dt in $DTYPES; do
    "$PY" tests/bench/smollm2_peers.py harvest --model "$F32" --dtype "$dt" --tokens "$INDEX_TOKENS" --threads "$THREADS" \
      2>/dev/null | sed "s/^{/{\"run\": $run, /" >> "$results"
  done
  if [ "${FIRST_LAUNCH:-1}" != 0 ]; then
    # A fresh user's first launch: the demo's files, no database, no imported model.
    rm -rf "$WORK/demo" "$WORK/cache"
    mkdir -p "$WORK/demo/corpus"
    ln -s "$PWD/$GGUF" "$WORK/demo/"
    ln -s "$PWD/data/smollm2/sae" "$WORK/demo/sae"
    ln -s "$PWD/data/smollm2/corpus/sample.tokens.safetensors" "$WORK/demo/corpus/"
    s=$(date +%s%N)
    MONOSCOPE_DEMO="$WORK/demo" MONOSCOPE_CACHE="$WORK/cache" XDG_CONFIG_HOME="$WORK/config" QT_QPA_PLATFORM=offscreen \
      /usr/bin/time -f '%M' -o "$WORK/launch.time" "$BUILD/app/monoscope" --demo --screenshot "$WORK/launch.png" >/dev/null 2>&1
    e=$(date +%s%N)
    echo "{\"run\": $run, \"bench\": \"first-launch\", \"impl\": \"monoscope\", \"seconds\": $(( (e - s) / 1000000 ))e-3, \"peak_rss_mb\": $(python3 -c "print($(cat "$WORK/launch.time") / 1024)"), \"db_mb\": $(python3 -c "import os; print(os.path.getsize('$WORK/demo/features.db') / 2**20)")}" >> "$results"
  fi
done
"$PY" - "$results" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def fig(bench, impl, dtype=None, key="tokens_per_s"):
    return [r[key] for r in rows if r["bench"] == bench and r["impl"] == impl and (dtype is None or r.get("dtype") == dtype)]
def rng(v, fmt="{:.0f}"):
    return (fmt.format(min(v)) + "-" + fmt.format(max(v))) if v else "n/a"
runs = sorted({r["run"] for r in rows})
print(f"SmolLM2-135M-Instruct, {len(runs)} runs, ranges over runs:")
for bench, impls, what in [("forward", ["monoscope", "transformers"], "forward, logits of 8 x 128 tokens (tokens/s)"),
                           ("harvest", ["monoscope index", "torch-loop"], "index / harvest to blocks.15 (tokens/s)")]:
    print(f"  {what}:")
    ours = [r for r in rows if r["bench"] == bench and r["impl"] == impls[0]]
    print(f"    {impls[0]:16s} float32   {rng([r['tokens_per_s'] for r in ours])}")
    for dt in ("float32", "bfloat16"):
        peer = fig(bench, impls[1], dt)
        if not peer:
            continue
        ratios = []
        for run in runs:
            a = [r["tokens_per_s"] for r in ours if r["run"] == run]
            b = [r["tokens_per_s"] for r in rows if r["bench"] == bench and r["impl"] == impls[1] and r.get("dtype") == dt and r["run"] == run]
            if a and b:
                ratios.append(a[0] / b[0])
        print(f"    {impls[1]:16s} {dt:9s} {rng(peer)}   ratio monoscope/peer per run {rng(ratios, '{:.2f}')}x (worst {min(ratios):.2f}x)")
launch = [r for r in rows if r["bench"] == "first-launch"]
if launch:
    print(f"  first launch (import, database build, model open): {rng([r['seconds'] for r in launch], '{:.1f}')} s, "
          f"peak {rng([r['peak_rss_mb'] for r in launch])} MB, database {launch[0]['db_mb']:.0f} MB (target < 900 s)")
PYEOF
