#!/usr/bin/env bash
# The GPU check: one prepared command for a machine with an NVIDIA GPU, LibTorch with CUDA
# (PyPI's torch), CMake and ninja, and nothing of Debian's: the Debian packages the core needs
# travel in .gpu-deps/ (bash packaging/gpu-deps.sh, here) and are unpacked into a prefix there,
# never into /. It builds the core, the command-line tool and the core tests against that
# LibTorch, runs the core tests, compares CUDA with the CPU on the fixtures and the demo (logits
# and hooks of every family, SAE encodings of every format and architecture, greedy default and
# steered generation token for token, the statistics of a short index, the UMAP map's
# trustworthiness), then the GPU benchmarks (tests/gpu/bench.py). One summary goes to
# $OUT/gpu-summary.txt and to stdout.
#
#   bash tests/gpu/run.sh             on the GPU machine (under 8 minutes from a bare machine)
#   bash tests/gpu/run.sh --dry-run   here: the same steps on the CPU against the existing build
#                                     (CI runs this so the script stays alive)
#
# The device call: run `bash packaging/gpu-deps.sh` here first (18 MB), carry `.gpu-deps`, and
# keep the working tree under the call's 64 MiB by moving `data/smollm2` and
# `tests/fixtures/gguf/smollm2_expected.safetensors` out of the checkout for the call (nothing
# there reads them; 47.5 + 18 MB then travel; put them back afterwards):
#   run(command="bash tests/gpu/run.sh", carry=[".gpu-deps"], timeout_s=590)
# Rehearsal here, against PyPI's torch of the machine's version in a virtual environment:
#   DEV=cpu BUDGET_S=1 PY=/path/to/venv/bin/python bash tests/gpu/run.sh
# Only the summary, the log and small step files are written under $OUT (what comes back);
# checkpoints, databases and the build stay in $BUILD.
set -uo pipefail
cd "$(dirname "$0")/../.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-build/gpu-out}
mkdir -p "$OUT"
SUMMARY="$OUT/gpu-summary.txt"
LOG="$OUT/gpu-log.txt"
: >"$SUMMARY"
: >"$LOG"
FAILED=0
say() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME COMMAND...: runs a command, its output to the log and its PASS/FAIL lines to the summary.
step() {
  local name=$1
  shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" >"$OUT/step.txt" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  cat "$OUT/step.txt" >>"$LOG"
  grep -E '^(PASS|FAIL|SKIP|BENCH|INFO)|tests passed' "$OUT/step.txt" | tee -a "$SUMMARY"
  if [ $rc -ne 0 ]; then
    FAILED=$((FAILED + 1))
    say "FAIL  $name (exit $rc; last lines:)"
    tail -n 5 "$OUT/step.txt" | sed 's/^/      /' | tee -a "$SUMMARY"
  fi
  awk -v n="$name" -v a="$t0" -v b="$t1" 'BEGIN { printf "      %s: %.1f s\n", n, b - a }' | tee -a "$SUMMARY"
  return 0
}

START=$(date +%s)
# The device call's limit is 10 minutes: the benchmarks get what is left of BUDGET_S, so the
# summary always comes back (a stopped benchmark keeps the lines it printed).
BUDGET_S=${BUDGET_S:-500}
left() { echo $((BUDGET_S - $(date +%s) + START)); }
if [ $DRY -eq 1 ]; then
  BUILD=${BUILD:-build}
  DEV=cpu
  PY=${PY:-.venv/bin/python}
  say "dry run on the CPU ($(nproc) cores): device 'cpu' stands in for the GPU"
  if ! "$PY" -c "import numpy, safetensors" 2>/dev/null; then
    "$PY" -m pip install -q numpy safetensors >>"$LOG" 2>&1 || { say "FAIL  numpy/safetensors for the comparisons"; exit 1; }
  fi
  [ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >>"$LOG" 2>&1
  step build cmake --build "$BUILD" -j"$(nproc)" --target monoscope-cli
else
  BUILD=${BUILD:-build-gpu}
  DEV=${DEV:-cuda}  # DEV=cpu rehearses the GPU path on a machine without one
  PY=${PY:-python3}
  say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
  say "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
  # Debian's packages (packaging/gpu-deps.sh, carried as .gpu-deps), unpacked into a prefix
  # with Python's tarfile (the image has neither dpkg's packages nor a promise of xz).
  PREFIX=/tmp/monoscope-deps
  rm -rf "$PREFIX" && mkdir -p "$PREFIX"
  "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .gpu-deps/prefix.tar.xz "$PREFIX" ||
    { say "FAIL  .gpu-deps/prefix.tar.xz is missing or broken: run bash packaging/gpu-deps.sh here and carry .gpu-deps"; exit 1; }
  ARCHLIB="$PREFIX/usr/lib/x86_64-linux-gnu"
  # Fallback libraries (packaging/gpu-deps.sh) only where the machine lacks them.
  FALLBACK="$PREFIX/fallback"
  LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)
  if [ -x "$LDCONFIG" ]; then
    # The machine's own 64-bit libraries, by soname: a fallback of the same name goes, with the
    # file it links to; links left dangling go last.
    "$LDCONFIG" -p 2>/dev/null | awk '/x86-64/ { print $1 }' >"$OUT/sonames.txt"
    for f in "$FALLBACK"/*.so.*; do
      n=$(basename "$f")
      grep -qxF "$n" "$OUT/sonames.txt" || continue
      [ -L "$f" ] && rm -f "$FALLBACK/$(readlink "$f")"
      rm -f "$f"
    done
    rm -f "$OUT/sonames.txt"
    find "$FALLBACK" -xtype l -delete
  else
    say "no ldconfig: every fallback library is used"
  fi
  say "fallback libraries used: $(cd "$FALLBACK" && find . -type l -printf '%f ')"
  TORCH_PREFIX=$("$PY" -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
  TORCH_LIB=$("$PY" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
  NV_LIBS=$("$PY" -c "import glob, os, torch; sp = os.path.dirname(os.path.dirname(torch.__file__)); print(':'.join(sorted(glob.glob(os.path.join(sp, 'nvidia', '*', 'lib')) + glob.glob(os.path.join(sp, 'nvidia', 'cu*', 'lib')))))")
  export PATH="$PREFIX/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$ARCHLIB:$TORCH_LIB:$NV_LIBS:${LD_LIBRARY_PATH:-}:$FALLBACK"
  # The .pc files say prefix=/usr: pkg-config rewrites their paths into the prefix.
  export PKG_CONFIG_SYSROOT_DIR="$PREFIX" PKG_CONFIG_LIBDIR="$ARCHLIB/pkgconfig:$PREFIX/usr/share/pkgconfig"
  CONFIGURE=(cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMONOSCOPE_BUILD_GUI=OFF -DMONOSCOPE_BUILD_TESTS=ON
    -DMONOSCOPE_WERROR=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$PREFIX/usr" -DCMAKE_LIBRARY_PATH="$ARCHLIB"
    -DCMAKE_INCLUDE_PATH="$PREFIX/usr/include;$PREFIX/usr/include/x86_64-linux-gnu" -DICU_ROOT="$PREFIX/usr"
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$NV_LIBS:$ARCHLIB:$FALLBACK"
    # TorchConfig searches the system's folders before its own: name torch's libraries outright
    # so that a system LibTorch (Debian's, on a rehearsal with DEV=cpu) is never picked.
    -DTORCH_LIBRARY="$TORCH_LIB/libtorch.so" -Dc10_LIBRARY="$TORCH_LIB/libc10.so")
  TESTS=1
  if ! "${CONFIGURE[@]}" >"$OUT/configure.txt" 2>&1; then
    # Without Qt's test library the core and the tool still build; the checks below still run.
    TESTS=0
    cat "$OUT/configure.txt" >>"$LOG"
    say "SKIP  core tests: configuring with them failed (see $LOG); configuring the core and the tool alone"
    step configure "${CONFIGURE[@]}" -DMONOSCOPE_BUILD_TESTS=OFF
  fi
  # The tool first: a test that fails to compile leaves the parity checks below to run.
  step build cmake --build "$BUILD" -j"$(nproc)" --target monoscope-cli
  step build-tests cmake --build "$BUILD" -j"$(nproc)" -- -k 0
  if [ $TESTS -eq 1 ]; then
    step core-tests ctest --test-dir "$BUILD" -L core -LE parity -j8 --timeout 180 --output-on-failure --no-tests=error
    # The golden comparisons (every family against transformers, every SAE against SAELens)
    # again with the model and the dictionary on the device, and the SAE trainer's sparse-code
    # and auxiliary-loss gradients against autograd there.
    step core-tests-device env MONOSCOPE_TEST_DEVICE="$DEV" ctest --test-dir "$BUILD" -R '^test_(transformer|sae|sae_trainer)$' --output-on-failure --no-tests=error
  fi
fi
CLI="$BUILD/app/monoscope-cli"
if [ ! -x "$CLI" ]; then
  say "FAIL  no $CLI: the build failed (see $LOG)"
  exit 1
fi
W="$BUILD/gpu-work"
rm -rf "$W"
mkdir -p "$W"
export PYTHONUNBUFFERED=1  # lines reach the log even when a step is stopped
CMP="$PY tests/gpu/compare.py"

# 1. Logits and every hook, each family, CPU vs the device.
HOOKS="--hook hook_embed --hook blocks.0.hook_resid_pre --hook blocks.0.hook_attn_out --hook blocks.0.attn.hook_z
       --hook blocks.0.hook_resid_mid --hook blocks.0.hook_mlp_in --hook blocks.0.ln2.hook_normalized
       --hook blocks.0.mlp.hook_post --hook blocks.0.hook_mlp_out --hook blocks.1.hook_resid_post"
families() {
  for m in tests/fixtures/models/*/; do
    local name
    name=$(basename "$m")
    "$CLI" logits --model "$m" --ids 1,5,9,2,7,3,8,4,6,10,11,12 $HOOKS --out "$W/$name-cpu.safetensors" --device cpu || return 1
    "$CLI" logits --model "$m" --ids 1,5,9,2,7,3,8,4,6,10,11,12 $HOOKS --out "$W/$name-dev.safetensors" --device "$DEV" || return 1
    $CMP tensors "logits+hooks $name" "$W/$name-cpu.safetensors" "$W/$name-dev.safetensors" --atol 1e-4 || return 1
  done
}
step families families

# 2. SAE encodings: every architecture and format the fixtures hold, on the GPT-2 fixture.
encodings() {
  # The engine reads a tokenizer beside the model: the fixture's weights with the small tokenizer.
  local m="$W/gpt2-tiny" rc=0
  mkdir -p "$m"
  cp tests/fixtures/models/gpt2-tiny/config.json tests/fixtures/models/gpt2-tiny/model.safetensors \
     tests/fixtures/tokenizer_small/tokenizer.json "$m/"
  for s in tests/fixtures/sae/standard tests/fixtures/sae/standard_pre6 tests/fixtures/sae/topk tests/fixtures/sae/jumprelu \
           tests/fixtures/sae/monoscope_saved tests/fixtures/dictionaries/sparsify/layers.1 \
           tests/fixtures/dictionaries/gemma-scope-tiny-pt-res/layer_1/width_96/average_l0_9 \
           tests/fixtures/dictionaries/gemma-scope-2-270m-pt/resid_post/layer_1_width_96_l0_small \
           tests/fixtures/dictionaries/llama-scope/Llama3_1-8B-Base-L1R-8x \
           tests/fixtures/dictionaries/dictionary-learning/AutoEncoderTopK-converted \
           tests/fixtures/dictionaries/dictionary-learning/BatchTopKSAE-converted \
           tests/fixtures/dictionaries/saelens-transcoders/jumprelu_skip_transcoder \
           tests/fixtures/dictionaries/gemma-scope-2-270m-pt/transcoder_all/layer_1_width_96_l0_small_affine; do
    local name
    name=$(echo "$s" | tr '/' '_')
    "$CLI" encode --model "$m" --sae "$s" --ids 1,5,9,2,7,3,8,4,6,10 --out "$W/$name-cpu.safetensors" --device cpu || return 1
    "$CLI" encode --model "$m" --sae "$s" --ids 1,5,9,2,7,3,8,4,6,10 --out "$W/$name-dev.safetensors" --device "$DEV" || return 1
    $CMP tensors "encode ${s#tests/fixtures/}" "$W/$name-cpu.safetensors" "$W/$name-dev.safetensors" --atol 1e-4 || rc=1
  done
  return $rc
}
step encodings encodings

# 3. Generation on the demo: greedy default and steered, token for token.
DEMO_MODEL=data/demo/model DEMO_SAE=data/demo/sae
generation() {
  local args=(generate --model "$DEMO_MODEL" --prompt "The weather today is" --max-tokens 40 --temperature 0
              --sae "$DEMO_SAE" --clamp 7=4 --mode clamp --positions all)
  "$CLI" "${args[@]}" --device cpu >"$W/gen-cpu.json" || return 1
  "$CLI" "${args[@]}" --device "$DEV" >"$W/gen-dev.json" || return 1
  $CMP generate "demo generation (default, clamped)" "$W/gen-cpu.json" "$W/gen-dev.json"
}
step generation generation

# 3b. BF16 products: the demo's weights in BF16, kept as stored (--weights stored), multiply in
# BF16 on the device (on the CPU only with BF16 instructions). Logits against the float32
# products of the same weights on the CPU (limit 3e-2 of the largest logit; the CPU's own BF16
# products are 2.4e-3 from them); greedy generation is reported, not required to agree.
bf16() {
  local m="$W/demo-bf16" ids=1,5,9,2,7,3,8,4,6,10,11,12
  $CMP bf16-copy "demo in BF16" "$DEMO_MODEL" "$m" >/dev/null || return 1
  "$CLI" logits --model "$m" --ids $ids --weights float32 --device cpu --out "$W/bf16-cpu.safetensors" || return 1
  "$CLI" logits --model "$m" --ids $ids --weights stored --device "$DEV" --out "$W/bf16-dev.safetensors" || return 1
  # On the GPU the two must differ (else the BF16 path did not run); a CPU may lack BF16 products.
  local differ=()
  [ "$DEV" != cpu ] && differ=(--differ)
  $CMP tensors "demo logits, BF16 products on $DEV vs float32 on the CPU" "$W/bf16-cpu.safetensors" "$W/bf16-dev.safetensors" \
    --atol 3e-2 "${differ[@]}" || return 1
  local args=(generate --model "$m" --prompt "The weather today is" --max-tokens 40 --temperature 0)
  "$CLI" "${args[@]}" --weights float32 --device cpu >"$W/gen-bf16-cpu.json" || return 1
  "$CLI" "${args[@]}" --weights stored --device "$DEV" >"$W/gen-bf16-dev.json" || return 1
  $CMP generate "demo generation, BF16 products on $DEV vs float32" "$W/gen-bf16-cpu.json" "$W/gen-bf16-dev.json" --report
}
step bf16 bf16

# 4. A short index of the demo on both devices: statistics, then the map.
index() {
  local args=(index --model "$DEMO_MODEL" --sae "$DEMO_SAE" --corpus data/demo/corpus/sample.tokens.safetensors
              --tokens 65536 --seed 1 --umap true)
  "$CLI" "${args[@]}" --out "$W/index-cpu.db" --device cpu >/dev/null || return 1
  "$CLI" "${args[@]}" --out "$W/index-dev.db" --device "$DEV" >/dev/null || return 1
  $CMP db "demo index statistics" "$W/index-cpu.db" "$W/index-dev.db" || return 1
  $CMP umap "demo UMAP map" "$W/index-cpu.db" "$W/index-dev.db" --sae "$DEMO_SAE" --limit 0.01
}
step index index

# 5. Benchmarks (random checkpoints of the real demo's shape and a larger one, written there).
if "$PY" -c "import torch, transformers, tokenizers" 2>/dev/null; then
  if [ $DRY -eq 1 ]; then
    step bench "$PY" tests/gpu/bench.py --cli "$CLI" --device cpu --work "$W/bench" --tiny
  else
    if [ "$(left)" -gt 30 ]; then
      # Stopped by the budget, the benchmarks keep what they printed and the rest are skipped.
      bench() {
        timeout "$(left)" "$PY" tests/gpu/bench.py --cli "$CLI" --device "$DEV" --work "$W/bench"
        local rc=$?
        [ $rc -eq 124 ] && { echo "SKIP  the benchmarks not printed above: BUDGET_S ($BUDGET_S s) ran out"; return 0; }
        return $rc
      }
      step bench bench
    else
      say "SKIP  benchmarks: less than 30 s of BUDGET_S ($BUDGET_S s) left"
    fi
  fi
else
  say "SKIP  benchmarks: this Python has no torch/transformers/tokenizers (the peers and checkpoint writer)"
fi

say "$(date -u +%FT%TZ): $FAILED step(s) failed, $(( $(date +%s) - START )) s in all"
[ $FAILED -eq 0 ]
