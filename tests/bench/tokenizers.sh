#!/usr/bin/env bash
# Tokenizer throughput per tokenizer.json kind against Hugging Face `tokenizers` running the same
# file, in the same run: the pipeline shapes of tests/fixtures/tokenizers (trained by tokenizers)
# and, where packaging/install-models.sh --gemma installed it, Gemma 3 270M's SentencePiece
# tokenizer as Monoscope imports it from the GGUF file. One thread each, the whole text at once;
# RUNS runs (default 3), each the best of 3 repeats; "same" says whether the ids are identical.
# Usage: bash tests/bench/run.sh tokenizers [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PY:-.venv/bin/python}
RUNS=${1:-3}
TEXT="$BUILD/bench-english.txt"
if [ ! -s "$TEXT" ]; then
  [ -d /usr/share/games/fortunes ] || apt-get install -y -q fortunes fortunes-min >/dev/null
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat > "$TEXT"
fi
DIRS=(tests/fixtures/tokenizers/*/)
if [ -s data/gemma3/gemma-3-270m-q4_k_m.gguf ]; then
  [ -s "$BUILD/gemma3-import/tokenizer.json" ] ||
    "$BUILD/app/monoscope-cli" import-gguf --gguf data/gemma3/gemma-3-270m-q4_k_m.gguf --out "$BUILD/gemma3-import" >/dev/null
  DIRS+=("$BUILD/gemma3-import/")
fi
echo "text: $TEXT ($(du -h "$TEXT" | cut -f1)), $RUNS runs"
printf "%-28s %22s %22s %16s %5s\n" kind "monoscope MB/s" "tokenizers MB/s" ratio same
for d in "${DIRS[@]}"; do
  ours=() theirs=() ratios=() same=yes
  for ((r = 0; r < RUNS; ++r)); do
    o=$("$BUILD/tests/bench/monoscope-bench" tokenizer "$d" "$TEXT" 3)
    t=$("$PY" tests/bench/peers.py tokenizer-json --vocab "$d" --text "$TEXT" --repeats 3)
    read -r om oc <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["mb_per_s"], d["checksum"])' "$o")"
    read -r tm tc <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["mb_per_s"], d["checksum"])' "$t")"
    [ "$oc" = "$tc" ] || same=no
    ours+=("$om") theirs+=("$tm") ratios+=("$(python3 -c "print($om / $tm)")")
  done
  range() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print(f"{min(v):.1f}-{max(v):.1f}")' "$@"; }
  ratio_range() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print(f"{min(v):.2f}-{max(v):.2f}x")' "$@"; }
  printf "%-28s %22s %22s %16s %5s\n" "$(basename "$d")" "$(range "${ours[@]}")" "$(range "${theirs[@]}")" "$(ratio_range "${ratios[@]}")" "$same"
done
