#!/usr/bin/env bash
# Real sizes on this machine: random checkpoints with the shapes of Gemma-2-2B (2.6B parameters)
# and Llama-3.1-8B (8.0B), stored in BF16 as the released weights are, written once by
# tests/bench/make_full_size.py (about 21 GB under $FULL, default build/full-size). For each, RUNS
# times (default 3): load time, resident memory after loading and at the peak, forward tokens/s
# (1 x SEQ tokens, best of 3 after a warm-up), and `monoscope-cli index` with a random 16,384-feature TopK SAE at the middle
# layer over INDEX_TOKENS tokens of the real demo's corpus sample (the SmolLM2 tokenizer stands in,
# filled up to each model's vocabulary with unused tokens); beside each forward run, the peer:
# transformers loading the same folder in BF16 and running the same forward. Prints every run, the
# ranges and the ratios.
# Usage: bash tests/bench/full_size.sh [RUNS] [MODEL...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-2}
FULL=${FULL:-$BUILD/full-size}
SEQ=${SEQ:-64}
INDEX_TOKENS=${INDEX_TOKENS:-1024}
RUNS=${1:-3}
shift || true
MODELS=${*:-gemma-2-2b llama-3.1-8b}
bash packaging/install-models.sh >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-cli monoscope-bench >/dev/null
CLI="$BUILD/app/monoscope-cli"
BENCH="$BUILD/tests/bench/monoscope-bench"
TOKENIZER="$BUILD/bench-smollm2-f32/tokenizer.json"
[ -s "$TOKENIZER" ] || "$CLI" import-gguf --gguf data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out "$BUILD/bench-smollm2-f32" >/dev/null 2>&1
# shellcheck disable=SC2086
"$PY" tests/bench/make_full_size.py "$FULL" --tokenizer "$TOKENIZER" $MODELS >/dev/null
results=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for run in $(seq "$RUNS"); do
  for m in $MODELS; do
    dir="$FULL/$m"
    "$BENCH" forward "$THREADS" "$SEQ" 1 3 "$dir" | sed "s/^{/{\"run\": $run, \"name\": \"$m\", /" >> "$results"
    # The peer: transformers loading the same folder (BF16) and running the same forward.
    "$PY" tests/bench/peers.py forward --threads "$THREADS" --seq "$SEQ" --batch 1 --iters 3 --model "$dir" 2>/dev/null \
      | sed "s/^{/{\"run\": $run, \"name\": \"$m\", /" >> "$results"
    rm -f "$WORK/index.db"
    /usr/bin/time -f '%e %M' -o "$WORK/index.time" "$CLI" index --model "$dir" --sae "$dir/sae" \
      --corpus data/smollm2/corpus/sample.tokens.safetensors --tokens "$INDEX_TOKENS" --context 128 \
      --out "$WORK/index.db" --threads "$THREADS" >/dev/null 2>"$WORK/index.log" || { cat "$WORK/index.log"; exit 1; }
    read -r secs kb < "$WORK/index.time"
    echo "{\"run\": $run, \"name\": \"$m\", \"bench\": \"index\", \"seconds\": $secs, \"tokens_per_s\": $(python3 -c "print($INDEX_TOKENS / $secs)"), \"peak_rss_mb\": $(python3 -c "print($kb / 1024)")}" >> "$results"
  done
done
"$PY" - "$results" "$SEQ" "$INDEX_TOKENS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
seq, index_tokens = sys.argv[2], sys.argv[3]
for r in rows:
    print(json.dumps(r))
def rng(v, fmt):
    return fmt.format(min(v)) + "-" + fmt.format(max(v))
print(f"full-size random checkpoints (BF16 on disk), {len({r['run'] for r in rows})} runs, ranges:")
for name in dict.fromkeys(r["name"] for r in rows):
    f = [r for r in rows if r["name"] == name and r["bench"] == "forward" and r["impl"] == "monoscope"]
    p = {r["run"]: r for r in rows if r["name"] == name and r["bench"] == "forward" and r["impl"] == "transformers"}
    i = [r for r in rows if r["name"] == name and r["bench"] == "index"]
    print(f"  {name}: {f[0]['parameters'] / 1e9:.2f}B parameters kept as {f[0]['weights']}")
    print(f"    load {rng([r['load_s'] for r in f], '{:.1f}')} s; resident after load {rng([r['rss_after_load_mb'] / 1024 for r in f], '{:.1f}')} GB, "
          f"peak in the forward bench {rng([r['peak_rss_mb'] / 1024 for r in f], '{:.1f}')} GB")
    print(f"    forward 1 x {seq} tokens ({f[0]['dtype']}): {rng([r['tokens_per_s'] for r in f], '{:.1f}')} tokens/s")
    if p:
        both = [(r, p[r["run"]]) for r in f if r["run"] in p]
        print(f"    transformers (peer, {next(iter(p.values()))['weights']}): load {rng([q['load_s'] for q in p.values()], '{:.1f}')} s, "
              f"resident after load {rng([q['rss_after_load_mb'] / 1024 for q in p.values()], '{:.1f}')} GB, "
              f"forward {rng([q['tokens_per_s'] for q in p.values()], '{:.1f}')} tokens/s; "
              f"Monoscope / transformers forward, same run: {rng([a['tokens_per_s'] / b['tokens_per_s'] for a, b in both], '{:.2f}')}x "
              "(transformers maps the weights lazily: its load reads nothing, its warm-up forward reads them)")
    print(f"    index ({index_tokens} tokens, whole job with load): {rng([r['tokens_per_s'] for r in i], '{:.1f}')} tokens/s, "
          f"peak {rng([r['peak_rss_mb'] / 1024 for r in i], '{:.1f}')} GB")
PYEOF
