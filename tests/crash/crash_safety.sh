#!/usr/bin/env bash
# Crash safety: kills train-sae, train-lm and index with SIGKILL at random moments (TRIALS each,
# default 20), reruns each to completion and checks that the result equals an uninterrupted run
# with the same seed (weights byte for byte; the database's tables), that every database passes
# PRAGMA integrity_check, and that with a full disk (RLIMIT_FSIZE) the previous checkpoint or
# database is kept and the error says so. Usage: bash tests/crash/crash_safety.sh [TRIALS]
# (KINDS="index" or any of "sae lm index" runs only those).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TRIALS=${1:-${TRIALS:-20}}
cmake --build "$BUILD" -j2 --target monoscope-cli >/dev/null || exit 1
CLI="$PWD/$BUILD/app/monoscope-cli"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RANDOM=${SEED:-7}
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Inputs: activations for train-sae, a corpus folder for train-lm (the demo's token sample as both
# training and validation shard), the demo model + SAE + sample for index.
mkdir -p "$WORK/corpus"
cp data/demo/corpus/sample.tokens.safetensors "$WORK/corpus/train.tokens.safetensors"
cp data/demo/corpus/sample.tokens.safetensors "$WORK/corpus/valid.tokens.safetensors"
"$CLI" encode --model data/demo/model --sae data/demo/sae --text-file README.md --out "$WORK/enc.safetensors" >/dev/null 2>&1
python3 - "$WORK" <<'PY'
import json, struct, sys, random
# 8192 x 64 synthetic activations (safetensors written by hand: F32, row-major).
rows, cols = 8192, 64
random.seed(3)
data = b"".join(struct.pack("<f", random.gauss(0, 1) if random.random() < 0.3 else 0.0) for _ in range(rows * cols))
header = json.dumps({"activations": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, len(data)]}}).encode()
header += b" " * ((8 - len(header) % 8) % 8)
with open(sys.argv[1] + "/acts.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + data)
PY

SAE_ARGS=(train-sae --activations "$WORK/acts.safetensors" --arch standard --l1 2 --d-sae 256 --tokens 400000
          --batch-size 256 --seed 5)
LM_ARGS=(train-lm --corpus "$WORK/corpus" --tokenizer data/demo/model --d-model 64 --layers 2 --heads 2 --context 64
         --batch-size 8 --steps 300 --warmup 20 --eval-every 25 --seed 5)
INDEX_ARGS=(index --model data/demo/model --sae data/demo/sae --corpus data/demo/corpus/sample.tokens.safetensors
            --tokens 24576 --batch 4 --seed 5 --threads 2)

dump_db() {  # the content tables, in a fixed order
  sqlite3 "$1" "SELECT id, count, density, max_act, mean_act, hex(histogram), umap_x, umap_y, top_tokens, explanation FROM features ORDER BY id;
                SELECT feature, idx, lo, hi, count FROM intervals ORDER BY feature, idx;
                SELECT feature, kind, interval, rank, max_act, center, window, position, hex(tokens), hex(acts) FROM examples ORDER BY feature, kind, interval, rank;
                SELECT feature, hex(ids), hex(cosines) FROM neighbours ORDER BY feature;" | md5sum
}
artefact() {  # what a finished run leaves, as one checksum
  case "$1" in
    sae) md5sum < "$2/sae_weights.safetensors" ;;
    lm) md5sum < "$2/model/model.safetensors" ;;
    index) dump_db "$2" ;;
  esac
}
command_for() {  # sets CMD to the command line of KIND writing to OUT
  local kind=$1 out=$2
  case "$kind" in
    sae) CMD=("$CLI" "${SAE_ARGS[@]}" --out "$out") ;;
    lm) CMD=("$CLI" "${LM_ARGS[@]}" --out "$out") ;;
    index) CMD=("$CLI" "${INDEX_ARGS[@]}" --out "$out") ;;
  esac
}
run() { command_for "$1" "$2"; "${CMD[@]}"; }
target() { [ "$1" = index ] && echo "$WORK/$2.db" || echo "$WORK/$2"; }

for kind in ${KINDS:-sae lm index}; do
  ref=$(target "$kind" "ref-$kind")
  start=$(date +%s.%N)
  run "$kind" "$ref" >/dev/null 2>&1 || { fail "$kind: the uninterrupted run failed"; continue; }
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  want=$(artefact "$kind" "$ref")
  echo "== $kind: uninterrupted run ${took}s; $TRIALS killed runs"
  ok=0
  for trial in $(seq 1 "$TRIALS"); do
    out=$(target "$kind" "$kind-$trial")
    # A random moment in the first 95% of an uninterrupted run.
    delay=$(awk -v t="$took" -v r="$((RANDOM % 950))" 'BEGIN { printf "%.3f", t * r / 1000 }')
    command_for "$kind" "$out"
    "${CMD[@]}" >/dev/null 2>&1 & pid=$!  # the program itself, so SIGKILL reaches it
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    # The scan a rerun resumes from must be intact. (FILE.db.partial, the finished database being
    # assembled, is scratch: built without a journal, removed and rebuilt from the scan on rerun,
    # and renamed into place only when complete.)
    if [ "$kind" = index ] && [ -e "$out.scan" ]; then
      check=$(sqlite3 "$out.scan" "PRAGMA integrity_check;" 2>&1 | head -3)
      [ "$check" = ok ] || fail "$kind trial $trial: the interrupted scan fails integrity_check: $check"
    fi
    run "$kind" "$out" >/dev/null 2>"$WORK/err" || { fail "$kind trial $trial: the rerun failed: $(head -c 300 "$WORK/err")"; continue; }
    got=$(artefact "$kind" "$out")
    if [ "$got" != "$want" ]; then fail "$kind trial $trial (killed after ${delay}s): result differs from the uninterrupted run"; continue; fi
    if [ "$kind" = index ]; then
      check=$(sqlite3 "$out" "PRAGMA integrity_check;")
      [ "$check" = ok ] || { fail "$kind trial $trial: integrity_check: $check"; continue; }
    fi
    ok=$((ok + 1))
  done
  echo "   $ok/$TRIALS resumed to the same result"
done

# Full disk: a file-size limit below what the next write needs. The previous checkpoint or
# database stays, the error says so, and a rerun with room finishes with the same result.
echo "== full disk (RLIMIT_FSIZE)"
if [[ " ${KINDS:-sae lm index} " == *" sae "* ]]; then
  sae_out="$WORK/full-sae"
  "$CLI" "${SAE_ARGS[@]}" --out "$sae_out" >/dev/null 2>&1 & pid=$!
  sleep 0.8
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  before=$(cat "$sae_out"/* 2>/dev/null | md5sum)
  err=$( (ulimit -f 16; "$CLI" "${SAE_ARGS[@]}" --out "$sae_out" 2>&1 >/dev/null); echo "exit=$?")
  after=$(cat "$sae_out"/* 2>/dev/null | md5sum)
  case "$err" in *"exit=0"*) fail "train-sae with a full disk exited 0" ;; esac
  [ "$before" = "$after" ] || fail "train-sae with a full disk changed the previous checkpoint"
  grep -qi "untouched\|kept\|too large\|no space\|cannot write" <<<"$err" || fail "train-sae with a full disk did not say what happened: $err"
  echo "   train-sae: $(grep -v '^exit=' <<<"$err" | tail -1)"
  "$CLI" "${SAE_ARGS[@]}" --out "$sae_out" >/dev/null 2>&1 || fail "train-sae after the full disk did not finish"
  [ "$(artefact sae "$sae_out")" = "$(artefact sae "$(target sae ref-sae)")" ] || fail "train-sae after the full disk differs from the uninterrupted run"
fi
if [[ " ${KINDS:-sae lm index} " == *" index "* ]]; then
  db_out="$WORK/full.db"
  cp "$(target index ref-index)" "$db_out"
  before=$(dump_db "$db_out")
  err=$( (ulimit -f 256; "$CLI" "${INDEX_ARGS[@]/24576/32768}" --out "$db_out" 2>&1 >/dev/null); echo "exit=$?")
  case "$err" in *"exit=0"*) fail "index with a full disk exited 0" ;; esac
  [ "$(dump_db "$db_out")" = "$before" ] || fail "index with a full disk changed the previous database"
  [ "$(sqlite3 "$db_out" 'PRAGMA integrity_check;')" = ok ] || fail "index with a full disk: the previous database fails integrity_check"
  grep -qi "untouched\\|disk is full" <<<"$err" || fail "index with a full disk did not say what happened: $err"
  echo "   index: $(grep -v '^exit=' <<<"$err" | tail -1)"
fi

if [ "$failures" -gt 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "crash safety OK"
