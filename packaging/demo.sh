#!/usr/bin/env bash
# Builds monoscope-cli and shows it at work: GPT-2's tokenizer with byte offsets, and default vs
# steered generation on the bundled test model (random weights) with an SAE at its hook.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-cli
CLI="$BUILD/app/monoscope-cli"
FX=tests/fixtures
VOCAB=${VOCAB:-../shared/vocab/gpt2}
[ -f "$VOCAB/vocab.json" ] || VOCAB=$FX/tokenizer_small
MODEL="$BUILD/demo-model"
mkdir -p "$MODEL"
cp $FX/models/gpt2-tiny/config.json $FX/models/gpt2-tiny/model.safetensors $FX/tokenizer_small/tokenizer.json "$MODEL/"

echo "== tokenize (ids and byte offsets) =="
"$CLI" tokenize --tokenizer "$VOCAB" --text "Monoscope reads GPT-2's tokenizer: naïve café 🙂"
echo "== generate: default vs feature 3 clamped to 80 at $(grep -o '"hook_name": "[^"]*"' $FX/sae/standard/cfg.json) =="
"$CLI" generate --model "$MODEL" --prompt "In the beginning" --max-tokens 12 --seed 7 --temperature 0.8 \
  --sae $FX/sae/standard --clamp 3=80 --mode clamp --positions all
