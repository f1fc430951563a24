#!/usr/bin/env bash
# Rebuilds the real demo's SAE and corpus sample (data/smollm2/) from scratch: the corpus from
# Debian packages, activations of SmolLM2-135M-Instruct at the middle of its residual stream
# harvested to disk, a TopK SAE of 16,384 features trained over them for four epochs (25.2M rows over 6.5M), then
# per-feature thresholds at 0.5 of each feature's maximum on a second, held-apart harvest with
# the decoder refitted to the codes that remain, exported in F16. The SAE keeps the end-of-text rows in training
# (--skip-end-of-text false) and the secondary sinks (--skip-sinks false): SAEs trained without
# them reconstruct better but were rated less consistent, twice (data/README.md).
# Every stage resumes when interrupted (the harvest skips the chunks on disk, training continues
# from its checkpoint). About 2.5 hours on two cores (harvest 50-60 minutes, training 70).
# Usage: bash packaging/build-smollm2-demo.sh [WORK]   (WORK defaults to build/smollm2-work)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-build/smollm2-work}
BUILD=${BUILD:-build}
HOOK=blocks.15.hook_resid_post   # the 16th of 30 blocks: the middle of the model
HARVEST_TOKENS=${HARVEST_TOKENS:-6291456}
TRAIN_TOKENS=${TRAIN_TOKENS:-25165824}
D_SAE=${D_SAE:-16384}   # the dictionary's width (features)
SAMPLE_TOKENS=${SAMPLE_TOKENS:-600000}
SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get install -y -q --no-install-recommends bible-kjv fortunes fortunes-min dict-gcide dict-wn dict-devil \
  dict-elements dict-foldoc dict-jargon fortunes-de fortunes-es fortunes-it debian-reference-en python3.11-doc \
  dict-freedict-deu-eng dict-freedict-fra-eng dict-freedict-spa-eng dict-freedict-ita-eng >/dev/null
bash packaging/install-models.sh
MODEL=data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-cli
CLI="$BUILD/app/monoscope-cli"
mkdir -p "$WORK"
[ -f "$WORK/corpus/train.tokens.safetensors" ] ||
  "$CLI" build-corpus --manifest data/corpus/smollm2_sources.json --out "$WORK/corpus" --tokenizer "$MODEL"
"$CLI" harvest --model "$MODEL" --hook "$HOOK" --corpus "$WORK/corpus" --tokens "$HARVEST_TOKENS" --context 128 \
  --seed 1 --out "$WORK/acts" --threads 2 --skip-end-of-text false
"$CLI" train-sae --activations "$WORK/acts" --model "$MODEL" --hook "$HOOK" --corpus "$WORK/corpus" --context 128 \
  --arch topk --k 32 --d-sae "$D_SAE" --tokens "$TRAIN_TOKENS" --batch-size 4096 --lr 4e-4 --seed 1 \
  --out "$WORK/sae" --threads 2 --skip-end-of-text false --skip-sinks false | tee "$WORK/sae-training.log"
mkdir -p data/smollm2/sae data/smollm2/corpus
"$CLI" sae-convert --sae "$WORK/sae" --out "$WORK/sae-f16" --dtype f16
# The calibration rows: another harvest (seed 2, end-of-text rows left out as the index leaves them).
"$CLI" harvest --model "$MODEL" --hook "$HOOK" --corpus "$WORK/corpus" --tokens 262144 --context 128 \
  --seed 2 --out "$WORK/calib" --threads 2
"$CLI" sae-threshold --sae "$WORK/sae-f16" --activations "$WORK/calib" --fraction 0.5 --refit-lambda 10 \
  --dtype f16 --out data/smollm2/sae --threads 2
cp "$WORK/sae/training.json" data/smollm2/sae/training.json
"$CLI" evaluate-sae --model "$MODEL" --sae data/smollm2/sae --corpus "$WORK/corpus" --threads 2 \
  > data/smollm2/sae/evaluation.json
"$CLI" sample-corpus --corpus "$WORK/corpus" --tokens "$SAMPLE_TOKENS" --out data/smollm2/corpus/sample.tokens.safetensors
cp "$WORK/corpus/stats.json" data/smollm2/corpus_stats.json
echo "SmolLM2 demo written to data/smollm2 (the app builds its feature database on first launch)"
