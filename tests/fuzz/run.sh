#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (build-fuzz/) and runs each for SECONDS (default 60)
# from its committed seed corpus (tests/fuzz/corpus/NAME), printing executions and findings.
# New inputs go to build-fuzz/corpus/NAME; a crash is saved as build-fuzz/crash-NAME-* and fails.
# Usage: bash tests/fuzz/run.sh [SECONDS | --runs N] [NAME...]
#   --runs N runs each harness for N executions instead of a set time (a long campaign, e.g.
#   --runs 10000000; run it under `nice -n 19` beside other work and stop it with SIGSTOP while
#   measuring: a unit counts as hung after 20 minutes here, 10 s otherwise).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-fuzz}
LIMIT="-max_total_time=${1:-60}"
UNIT_TIMEOUT=10
WHAT="${1:-60}s"
if [ "${1:-}" = "--runs" ]; then
  LIMIT="-runs=$2"
  UNIT_TIMEOUT=1200
  WHAT="a limit of $2 runs"
  shift
fi
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(fuzz_safetensors fuzz_tokenizer_json fuzz_vocab_merges fuzz_encode fuzz_config fuzz_feature_db fuzz_gguf fuzz_dictionary)
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONOSCOPE_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j2 --target "${NAMES[@]}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_odr_violation=0}
status=0
for name in "${NAMES[@]}"; do
  mkdir -p "$BUILD/corpus/$name"
  log="$BUILD/$name.log"
  if "$BUILD/tests/fuzz/$name" "$BUILD/corpus/$name" "tests/fuzz/corpus/$name" "$LIMIT" \
       -max_len=65536 -timeout="$UNIT_TIMEOUT" -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$BUILD/crash-$name-" \
       >"$log" 2>&1; then
    result="no crash"
  elif grep -q "libFuzzer: run interrupted" "$log"; then
    result="interrupted (Ctrl-C or SIGINT), no crash"
  else
    result="FINDING (see $log)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o '[0-9]* second' | grep -o '[0-9]*' || echo "?")
  echo "$name: $execs executions in ${secs}s (${rate}/s; $WHAT), $result"
done
exit $status
