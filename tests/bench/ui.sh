#!/usr/bin/env bash
# Desktop-app benchmarks: click-to-page on the demo database and on a synthetic million-feature
# database (target < 50 ms), map frame time with 100,000 points (target < 16 ms), and time to the
# first streamed token after Generate on the demo (target < 200 ms). Worst run counts.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONOSCOPE_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j2 --target monoscope-bench monoscope-ui-bench monoscope-cli >/dev/null
BENCH="$BUILD/tests/bench/monoscope-bench"
UI="$BUILD/tests/bench/monoscope-ui-bench"
DB=${DB:-data/demo/features.db}
if [ ! -s "$DB" ]; then
  "$BUILD/app/monoscope-cli" index --model data/demo/model --sae data/demo/sae \
    --corpus data/demo/corpus/sample.tokens.safetensors --tokens 1048576 --out "$DB"
fi
[ -s "$BUILD/bench-1m.db" ] || "$BENCH" synthetic-db "$BUILD/bench-1m.db" 1000000 >/dev/null
export QT_QPA_PLATFORM=offscreen
"$UI" page "$DB" 300 2>/dev/null
"$UI" page "$BUILD/bench-1m.db" 300 2>/dev/null
"$UI" list "$BUILD/bench-1m.db" 2>/dev/null
"$UI" map 100000 180 2>/dev/null
"$UI" first-token data/demo/model data/demo/sae "$DB" 8 2>/dev/null
