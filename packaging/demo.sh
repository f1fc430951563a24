#!/usr/bin/env bash
# Builds Monoscope and shows it at work on the bundled demo (data/demo): builds the demo's feature
# database on first use (progress on the terminal, a few minutes on two cores), then finds the
# features on a prompt's last token, prints the strongest one's page, and compares default and
# steered completions with that feature clamped to 10x its maximum activation.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-cli
CLI="$BUILD/app/monoscope-cli"
MODEL=data/demo/model
SAE=data/demo/sae
DB=${DB:-data/demo/features.db}
PROMPT=${PROMPT:-"And God said unto Moses,"}
THREADS=${THREADS:-$(nproc)}

if [ ! -s "$DB" ]; then
  echo "== building the demo feature database ($DB) from data/demo/corpus (first run only)"
  "$CLI" index --model "$MODEL" --sae "$SAE" --corpus data/demo/corpus/sample.tokens.safetensors \
    --tokens "${DEMO_TOKENS:-1048576}" --out "$DB" --threads "$THREADS"
fi

echo "== features on the last token of: $PROMPT"
"$CLI" search "$DB" --prompt "$PROMPT" --top 5 --json | python3 -m json.tool
FEATURE=${FEATURE:-$("$CLI" search "$DB" --prompt "$PROMPT" --top 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')}

echo "== feature $FEATURE"
"$CLI" feature "$DB" "$FEATURE" --json > "$BUILD/demo-feature.json"
python3 - "$BUILD/demo-feature.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(p["explanation"])
print(f"density {p['density']:.5f}  max {p['max_act']:.2f}  mean {p['mean_act']:.2f}")
for e in p["top_examples"][:5]:
    text = "".join(f"[{t}]" if i == e["center"] else t for i, t in enumerate(e["tokens"]))
    print("  " + text.replace("\n", " "))
print("logits up:  ", " ".join(t for t, v in p["logits"]["top"][:8]))
print("neighbours: ", " ".join(f"{i}({c:.2f})" for i, c in p["neighbours"][:5]))
PY

echo "== generate: default vs feature $FEATURE clamped to ${TIMES:=10}x its max activation"
"$CLI" generate --model "$MODEL" --prompt "$PROMPT" --max-tokens 24 --seed 7 --temperature 0.7 --top-p 0.95 \
  --sae "$SAE" --features "$DB" --clamp "$FEATURE=${TIMES}x" --mode clamp --positions all | python3 -m json.tool
