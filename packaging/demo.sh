#!/usr/bin/env bash
# Builds monoscope-cli and shows it at work on the bundled demo (data/demo): tokenisation with
# byte offsets, the strongest features on a prompt's last token, and default vs steered
# completions with one feature clamped (the SAE error term kept).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-cli
CLI="$BUILD/app/monoscope-cli"
MODEL=data/demo/model
SAE=data/demo/sae
PROMPT=${PROMPT:-"And God said unto Moses,"}

echo "== tokenize: $PROMPT"
"$CLI" tokenize --tokenizer "$MODEL" --text "$PROMPT"

echo "== strongest SAE features on the last token ($(grep -o '"hook_name": *"[^"]*"' $SAE/cfg.json))"
"$CLI" encode --model "$MODEL" --sae "$SAE" --text "$PROMPT" --out "$BUILD/demo-features.safetensors"
"$CLI" top-features --acts "$BUILD/demo-features.safetensors" --position -1 --count 5

FEATURE=${FEATURE:-$("$CLI" top-features --acts "$BUILD/demo-features.safetensors" --position -1 --count 1 --ids-only true)}
echo "== generate: default vs feature $FEATURE clamped to ${VALUE:=60}"
"$CLI" generate --model "$MODEL" --prompt "$PROMPT" --max-tokens 24 --seed 7 --temperature 0.7 --top-p 0.95 \
  --sae "$SAE" --clamp "$FEATURE=$VALUE" --mode clamp --positions all
