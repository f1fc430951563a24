#!/usr/bin/env bash
# Benchmarks: Monoscope against its named peers, measured in the same run; prints ratios.
# Usage: bash tests/bench/run.sh [all|engine|index|ui|gguf|smollm2|tokenizers|full-size|families|scale]   (peers in .venv: bash tests/bench/setup-peers.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-2}
PY=${PY:-.venv/bin/python}
VOCAB=${VOCAB:-tests/fixtures/gpt2}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONOSCOPE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-bench monoscope-cli >/dev/null
WHAT=${1:-all}
if [ "$WHAT" = "index" ]; then exec bash tests/bench/index.sh; fi
if [ "$WHAT" = "ui" ]; then exec bash tests/bench/ui.sh; fi
if [ "$WHAT" = "gguf" ]; then exec bash tests/bench/gguf.sh; fi
if [ "$WHAT" = "smollm2" ]; then exec bash tests/bench/smollm2.sh "${@:2}"; fi
if [ "$WHAT" = "tokenizers" ]; then exec bash tests/bench/tokenizers.sh "${@:2}"; fi
if [ "$WHAT" = "full-size" ]; then exec bash tests/bench/full_size.sh "${@:2}"; fi
if [ "$WHAT" = "families" ]; then exec bash tests/bench/families.sh "${@:2}"; fi
if [ "$WHAT" = "scale" ]; then exec bash tests/bench/scale.sh "${@:2}"; fi

# The same large English text for every tokenizer: Debian's fortunes (quotations, 2.5 MB).
TEXT="$BUILD/bench-english.txt"
if [ ! -s "$TEXT" ]; then
  if [ ! -d /usr/share/games/fortunes ]; then
    echo "installing fortunes for the benchmark text" >&2
    apt-get install -y -q fortunes fortunes-min >/dev/null
  fi
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat > "$TEXT"
fi
echo "text: $TEXT ($(du -h "$TEXT" | cut -f1))"

results=$(mktemp)
"$BUILD/tests/bench/monoscope-bench" tokenizer "$VOCAB" "$TEXT" 3 >> "$results"
"$PY" tests/bench/peers.py tokenizer --vocab "$VOCAB" --text "$TEXT" --repeats 3 >> "$results"
"$BUILD/tests/bench/monoscope-bench" forward "$THREADS" 256 1 5 >> "$results"
"$PY" tests/bench/peers.py forward --threads "$THREADS" --seq 256 --batch 1 --iters 5 >> "$results"
for arch in standard topk; do
  "$BUILD/tests/bench/monoscope-bench" sae "$arch" "$THREADS" 2048 5 >> "$results"
  "$PY" tests/bench/peers.py sae --arch "$arch" --threads "$THREADS" --batch 2048 --steps 5 >> "$results"
done
# Inference products: the demo SAE's encoder and MLP shapes, GPT-2 small's MLP.
for shape in "2048 256 4096" "2048 256 1024" "2048 1024 256" "256 768 3072"; do
  "$BUILD/tests/bench/monoscope-bench" product $shape "$THREADS" 20 >> "$results"
done
# Causal attention: the demo model's heads (16 windows of 256 tokens, 8 heads of 32) and GPT-2
# small's (4 x 1024, 12 heads of 64).
for shape in "16 8 256 32" "4 12 1024 64"; do
  "$BUILD/tests/bench/monoscope-bench" attention $shape "$THREADS" 20 >> "$results"
done
# The SAE encoder on one scan block of the demo (16 windows at the hook), one thread as a lane
# runs it: screened (AMX) against the packed product and the sparse pass.
"$BUILD/tests/bench/monoscope-bench" encoder data/demo/model data/demo/sae data/demo/corpus/sample.tokens.safetensors 16 9 >> "$results"
"$PY" - "$results" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
tok = {r["impl"]: r for r in rows if r["bench"] == "tokenizer"}
fwd = {r["impl"]: r for r in rows if r["bench"] == "forward"}
m = tok["monoscope"]
print("tokenizer (1 thread, MB/s):")
for impl, r in tok.items():
    same = "identical ids" if (r["checksum"], r["tokens"]) == (m["checksum"], m["tokens"]) else "IDS DIFFER"
    print(f"  {impl:14s} {r['mb_per_s']:8.2f}  ({r['tokens']} tokens, {same})")
print(f"  ratio vs tiktoken:      {m['mb_per_s'] / tok['tiktoken']['mb_per_s']:.2f}x (target >= 1.0x)")
print(f"  ratio vs hf-tokenizers: {m['mb_per_s'] / tok['hf-tokenizers']['mb_per_s']:.2f}x (target >= 2.0x)")
f = fwd["monoscope"]
print(f"forward, GPT-2 small shape, {f['threads']} threads (tokens/s):")
for impl, r in fwd.items():
    print(f"  {impl:14s} {r['tokens_per_s']:8.1f}")
print(f"  ratio vs transformers:  {f['tokens_per_s'] / fwd['transformers']['tokens_per_s']:.2f}x (target >= 1.0x)")
sae = {(r["bench"], r["impl"]): r["tokens_per_s"] for r in rows if r["bench"].startswith("sae_")}
print("SAE training, d_in 768, d_sae 24576, batch 2048 (tokens/s):")
for (b, impl), v in sorted(sae.items()):
    print(f"  {b:13s} {impl:10s} {v:9.0f}")
print(f"  standard vs torch loop: {sae[('sae_standard', 'monoscope')] / sae[('sae_standard', 'torch')]:.2f}x (target >= 1.2x)")
print(f"  topk vs torch loop:     {sae[('sae_topk', 'monoscope')] / sae[('sae_topk', 'torch')]:.2f}x")
print(f"  topk vs standard step:  {sae[('sae_topk', 'monoscope')] / sae[('sae_standard', 'monoscope')]:.2f}x (target >= 3x)")
prods = [r for r in rows if r["bench"] == "product"]
if prods:
    print("inference products b + x @ W (fp32, median of 20), packed oneDNN vs LibTorch's BLAS:")
    for shape in dict.fromkeys(tuple(r["shape"]) for r in prods):
        p = {r["impl"]: r for r in prods if tuple(r["shape"]) == shape}
        if "packed" in p:
            print(f"  [{shape[0]} x {shape[1]}] @ [{shape[1]} x {shape[2]}]: blas {p['blas']['median_ms']:.2f} ms, packed "
                  f"{p['packed']['median_ms']:.2f} ms: {p['blas']['median_ms'] / p['packed']['median_ms']:.2f}x, "
                  f"max |error| {p['packed']['max_abs_error']:.1e} vs {p['blas']['max_abs_error']:.1e}")
atts = [r for r in rows if r["bench"] == "attention"]
if atts:
    print("causal attention (fp32, median of 20), fused kernel vs LibTorch's masked softmax between two products:")
    for shape in dict.fromkeys(tuple(r["shape"]) for r in atts):
        a = {r["impl"]: r for r in atts if tuple(r["shape"]) == shape}
        if "fused" in a:
            print(f"  batch {shape[0]}, {shape[1]} heads, {shape[2]} tokens, head size {shape[3]}: libtorch "
                  f"{a['libtorch']['median_ms']:.2f} ms, fused {a['fused']['median_ms']:.2f} ms: "
                  f"{a['libtorch']['median_ms'] / a['fused']['median_ms']:.2f}x, max |diff| {a['fused']['max_abs_diff_vs_libtorch']:.1e}")
enc = {r["impl"]: r for r in rows if r["bench"] == "encoder"}
if "screened" in enc:
    e, d = enc["screened"], enc["packed+sparse"]
    print(f"SAE encoder, demo scan block ({e['rows']} tokens, 1 thread, median of 9): packed product + sparse pass "
          f"{d['median_ms']:.1f} ms, screened {e['median_ms']:.1f} ms: {d['median_ms'] / e['median_ms']:.2f}x; "
          f"active {e['active']} vs {d['active']}, max |diff| {e['max_abs_diff']:.1e}")
PYEOF
if [ "$WHAT" = "all" ]; then bash tests/bench/index.sh; bash tests/bench/ui.sh; fi
