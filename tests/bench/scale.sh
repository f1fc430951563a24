#!/usr/bin/env bash
# Dictionaries the paper's size: synthetic feature databases of 1M, 4M and 34M features, written
# once into $BUILD/scale by `monoscope-bench synthetic-db` (about 0.8, 1.9 and 15 GB; summaries,
# explanations and the search index for every feature, examples for 20,000 of them), then for each
# size and run: the feature page, sorting the list, scrolling it, search as you type (core
# queries), the list model and map frames through a zoom from the whole map to single points
# (the app's panels, offscreen), peak memory; and the HNSW neighbour graph over random unit
# directions. Targets: page < 20 ms, search < 50 ms, sort < 200 ms, map frame < 16 ms; the worst
# run counts. Also the index's memory for wide dictionaries: `monoscope-cli index` of the demo
# model with random TopK SAEs of 65,536 to 1,048,576 features (written by make_full_size.py's SAE
# writer; numpy from .venv) on 4,096 tokens, peak RSS and time.
# And SAEs the paper's size opened by the engine: `monoscope-bench wide-sae` writes a synthetic TopK
# SAE of 1M / 34M features at d_in 64 in F16 (0.26 / 8.7 GB, into $BUILD/scale/wide-N), opens it
# with the tiny GPT-2 fixture (d_model 64), and times every query the app makes of an SAE.
# Usage: bash tests/bench/scale.sh [RUNS]   (SIZES="1000000 4000000" to skip 34M, HNSW="1000000:64"
# for the neighbour graphs, n:dimensions each, INDEX="65536 262144" for the index sizes,
# WIDE="1000000" for the SAE sizes)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RUNS=${1:-3}
SIZES=${SIZES-"1000000 4000000 34000000"}
HNSW=${HNSW-"250000:64 1000000:64"}
INDEX=${INDEX-"65536 262144 1048576"}
WIDE=${WIDE-"1000000 34000000"}
PY=${PY:-.venv/bin/python}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONOSCOPE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-bench monoscope-ui-bench monoscope-cli >/dev/null
BENCH="$BUILD/tests/bench/monoscope-bench"
UI="$BUILD/tests/bench/monoscope-ui-bench"
mkdir -p "$BUILD/scale"
export QT_QPA_PLATFORM=offscreen
results=$(mktemp)
for n in $SIZES; do
  db="$BUILD/scale/$n.db"
  if [ ! -s "$db" ]; then
    echo "writing a synthetic database of $n features into $db" >&2
    "$BENCH" synthetic-db "$db" "$n" >> "$results"
  fi
done
for run in $(seq 1 "$RUNS"); do
  for n in $SIZES; do
    db="$BUILD/scale/$n.db"
    "$BENCH" scale "$db" 200 | sed "s/^{/{\"run\": $run, \"size\": $n, /" >> "$results"
    "$UI" list "$db" 2>/dev/null | sed "s/^{/{\"run\": $run, \"size\": $n, /" >> "$results"
    "$UI" map-layers "$db" 4 2>/dev/null | sed "s/^{/{\"run\": $run, \"size\": $n, /" >> "$results"
    echo "run $run, $n features: done" >&2
  done
  for d in $INDEX; do
    sae="$BUILD/scale/sae-$d"
    [ -s "$sae/sae/sae_weights.safetensors" ] || "$PY" -c "import sys; sys.path.insert(0, 'tests/bench'); import make_full_size as m; \
m.write_sae('$sae', {'hidden_size': 256, 'num_hidden_layers': 7}, d_sae=$d, k=32)"
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$BUILD/scale/index.rss" "$BUILD/app/monoscope-cli" index --model data/demo/model --sae "$sae/sae" \
      --corpus data/demo/corpus/sample.tokens.safetensors --tokens 4096 --out "$BUILD/scale/index-$d.db" --umap false \
      --neighbours 0 >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "{\"run\": $run, \"bench\": \"index_wide\", \"d_sae\": $d, \"seconds\": $(python3 -c "print(round($t1 - $t0, 2))"), \"peak_rss_mb\": $(( $(cat "$BUILD/scale/index.rss") / 1024 ))}" >> "$results"
    rm -f "$BUILD/scale/index-$d.db" "$BUILD/scale/index-$d.db-wal" "$BUILD/scale/index-$d.db-shm"
  done
  for w in $WIDE; do
    model="$BUILD/scale/wide-model"
    mkdir -p "$model"
    cp tests/fixtures/models/gpt2-tiny/config.json tests/fixtures/models/gpt2-tiny/model.safetensors "$model/"
    cp tests/fixtures/tokenizer_small/tokenizer.json "$model/"
    "$BENCH" wide-sae "$model" "$BUILD/scale/wide-$w" "$w" 64 | sed "s/^{/{\"run\": $run, /" >> "$results"
  done
  for h in $HNSW; do
    "$BENCH" hnsw "${h%%:*}" "${h##*:}" 2 | sed "s/^{/{\"run\": $run, /" >> "$results"
  done
done
python3 - "$results" <<'PYEOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def rng(vals, fmt="{:.2f}"):
    return (fmt + "-" + fmt).format(min(vals), max(vals)) if vals else "-"
sizes = sorted({r["size"] for r in rows if "size" in r})
for r in rows:
    if r["bench"] == "synthetic_db":
        print(f"synthetic database of {r['features']:,} features written: rows {r['rows_s']:.0f} s, indexes "
              f"{r['indexes_s']:.0f} s, layers {r['layers_s']:.0f} s, peak {r['peak_rss_mb']:.0f} MB")
worst = {}
print("ranges over runs (ms unless named); target in brackets")
for n in sizes:
    s = [r for r in rows if r.get("size") == n]
    core = [r for r in s if r["bench"] == "scale"]
    lst = [r for r in s if r["bench"] == "ui_list_load"]
    scroll = [r for r in s if r["bench"] == "ui_list_scroll_frame"]
    frame = [r for r in s if r["bench"] == "ui_map_layers_frame"]
    rss = [r for r in s if r["bench"] == "ui_map_layers_rss"]
    size = os.path.getsize(f"{os.environ.get('BUILD', 'build')}/scale/{n}.db") / 1e9
    print(f"{n:,} features ({size:.1f} GB):")
    def line(name, vals, target=None):
        t = f" [< {target}]" if target else ""
        print(f"  {name:38s} {rng(vals)}{t}")
        if target and vals:
            worst[(n, name)] = max(vals) / target
    line("open", [r["open_ms"] for r in core])
    line("feature page, max of 200", [r["page"]["max_ms"] for r in core], 20)
    line("sort + first screen, max of 12", [r["sort_first_screen"]["max_ms"] for r in core], 200)
    line("list model sort, max of 3", [r["sort_max_ms"] for r in lst], 200)
    line("search as you type, max", [r["search_as_you_type"]["max_ms"] for r in core], 50)
    line("list model search, max", [r["search_max_ms"] for r in lst], 50)
    line("scroll 40 rows, max of 200", [r["max_ms"] for r in scroll], 16)
    line("map frame, max over the zoom", [r["max_ms"] for r in frame], 16)
    line("core peak RSS (MB)", [r["peak_rss_mb"] for r in core])
    line("app list peak RSS (MB)", [r["peak_rss_mb"] for r in lst])
    line("app map peak RSS (MB)", [r["peak_rss_mb"] for r in rss])
for h in sorted({(r["n"], r["d"]) for r in rows if r["bench"] == "hnsw"}):
    hs = [r for r in rows if r["bench"] == "hnsw" and (r["n"], r["d"]) == h]
    print(f"HNSW {h[0]:,} x {h[1]}: build {rng([r['seconds'] for r in hs], '{:.0f}')} s, peak RSS "
          f"{rng([r['peak_rss_mb'] for r in hs], '{:.0f}')} MB (vectors {hs[0]['vectors_mb']:.0f} MB)")
for d in sorted({r["d_sae"] for r in rows if r["bench"] == "index_wide"}):
    xs = [r for r in rows if r["bench"] == "index_wide" and r["d_sae"] == d]
    print(f"index of {d:,} features (d_in 256, 4,096 tokens): {rng([r['seconds'] for r in xs], '{:.0f}')} s, peak RSS "
          f"{rng([r['peak_rss_mb'] for r in xs], '{:.0f}')} MB (weights {d * 256 * 8 / 2**20:.0f} MB as float32)")
for n in sorted({r["features"] for r in rows if r["bench"] == "wide_sae"}):
    xs = [r for r in rows if r["bench"] == "wide_sae" and r["features"] == n]
    print(f"SAE of {n:,} features at d_in 64, F16 ({xs[0]['file_gb']:.2f} GB, mapped: {xs[0]['mapped']}), ms:")
    for key in ["open_ms", "encode_prompt_ms", "feature_values_ms", "top_last_token_ms", "contrastive_ms", "attribute_ms",
                "logit_effects_ms", "generate_4_steered_ms"]:
        print(f"  {key[:-3]:38s} {rng([r[key] for r in xs], '{:.0f}')}")
    print(f"  {'peak RSS (MB)':38s} {rng([r['peak_rss_mb'] for r in xs], '{:.0f}')}  (after opening "
          f"{rng([r['open_rss_mb'] for r in xs], '{:.0f}')}; both count the mapped file's pages read; the process's "
          f"own memory at the end: {rng([r.get('anon_rss_mb', 0) for r in xs], '{:.0f}')})")
if worst:
    k = max(worst, key=worst.get)
    print(f"worst run over target: {worst[k]:.2f}x ({k[1]}, {k[0]:,} features)")
PYEOF
rm -f "$results"
