#!/usr/bin/env bash
# End to end on the GPU machine: hmoe vs llama.cpp on one random-weight DeepSeek-V2-Lite-shaped model (real shapes,
# Q4_K_M-like types, a synthetic tokenizer; benchmarks/e2e/make_random_model.cpp). llama.cpp is built here from
# the carried sources (.llama-carry, made by benchmarks/e2e/prepare_llama_carry.sh): llama-bench only, CUDA for
# sm_90a, -march=native with AMX compiled out (its AMX path crashes on deepseek2).
#
# A device call is cut at 600 s and the llama.cpp CUDA build alone takes ~5-6 min, so the work is in stages
# (STAGES, a comma list; default llama,hmoe), one device call each, from the repository root, carrying
# [".carry", ".llama-carry"]:
#   STAGES=llama bash benchmarks/e2e/run.sh   # ~9 min: llama.cpp build ~5.5 min (~10 s when build-llama-e2e/ is
#                                             #   still there from a call before), model ~25 s, bandwidth ~10 s,
#                                             #   llama-bench hybrid ~60 s, CPU-only ~45 s, all-GPU ~25 s,
#                                             #   hybrid -nopo 1 ~35 s (estimates from issue 5's rates + loading)
#   STAGES=hmoe  bash benchmarks/e2e/run.sh   # ~6-7 min: hmoe CUDA build ~2-3 min, model ~25 s (if not there),
#                                             #   bandwidth ~10 s, hmoe-bench hybrid ~55 s, CPU ~60 s, CUDA graph
#                                             #   ~45 s, all-GPU ~50 s (each run loads the 9.6 GB model again)
# (STAGES=llama-build builds llama.cpp and stops.) Each stage stops starting runs when BUDGET (570 s) would be
# exceeded and lists what it skipped. Outputs under $OUT: llama.tsv / hmoe.tsv (rows, machine-readable),
# e2e_llama.md / e2e_hmoe.md (raw program output), table.md (the table, from every TSV this machine has in
# $RESULTS; printed last) and e2e.md (the table, then the raw output). With the TSVs of two separate calls:
#   python3 benchmarks/e2e/make_table.py table --out e2e.md llama.tsv hmoe.tsv
#
# Env: STAGES, VARIANTS (see want_variant), BUDGET (570), LIMIT (seconds per program run, 240), THREADS (nproc), JOBS (16), MODEL_DIR (/tmp),
# HMOE_CUDA_BUILD (/tmp/hmoe-build-cuda), LLAMA_BUILD (build-llama-e2e: inside the repository so that a later
# call on the same machine finds it), RESULTS (build-e2e-results), REPS (3), CPU_REPS (llama.cpp CPU-only, 3),
# LLAMA_ARGS (extra llama-bench arguments for every run, e.g. "-lm none"), ROWS (layouts to run, default
# hybrid,cpu,gpu; a stage run again with ROWS=gpu keeps the other layouts' rows from the run before, e.g. after
# the budget skipped them). For a try-out without a GPU: LLAMA_KIND=cpu (a CPU-only llama.cpp build) and
# MODEL_LAYERS=N (the first N layers of the model only), HMOE_CUDA=OFF (hmoe without its CUDA unit).
set -uo pipefail
root=$(pwd)
here=$root/benchmarks/e2e
[ -f "$here/run.sh" ] || { echo "run from the repository root" >&2; exit 2; }
t_start=$(date +%s)
stages=",${STAGES:-llama,hmoe},"
budget=${BUDGET:-570}
limit=${LIMIT:-240}
build=${HMOE_CUDA_BUILD:-/tmp/hmoe-build-cuda}
llama_build=${LLAMA_BUILD:-$root/build-llama-e2e}
results=${RESULTS:-$root/build-e2e-results}
out=${OUT:-$results/out}
models=${MODEL_DIR:-/tmp}
threads=${THREADS:-$(nproc)}
jobs=${JOBS:-16}
reps=${REPS:-3}
cpu_reps=${CPU_REPS:-3}
layers=${MODEL_LAYERS:-}
shape=${SHAPE:-v2-lite}  # v2-lite | v3 (with MODEL_LAYERS: V3's full width, its first N layers)
shape_name=$([ "$shape" = v3 ] && echo DeepSeek-V3 || echo DeepSeek-V2-Lite)
model=$models/ds${shape/-/}-random-q4km${layers:+-${layers}l}.gguf
gen_args=(--shape "$shape" ${layers:+--layers "$layers"})
# QUICK=1: only the hybrid layout's main row of each tool, -p 512 -n 64 -r 2 (a V3-width model loads for minutes).
quick=${QUICK:-0}
llama_kind=${LLAMA_KIND:-cuda}
mkdir -p "$out" "$results"
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

elapsed() { echo $(( $(date +%s) - t_start )); }
left() { echo $(( budget - $(elapsed) )); }
log() { echo "== [$(elapsed) s] $*" >&2; }
has_stage() { [[ "$stages" == *",$1,"* ]]; }
rows=",${ROWS:-hybrid,cpu,gpu},"
want_row() { [[ "$rows" == *",$1,"* ]]; }
# VARIANTS (optional): only these row variants, a comma list where an empty entry is a layout's main row, e.g.
# VARIANTS=",context,long prompt" runs the main rows and those two.
want_variant() { [ -z "${VARIANTS+x}" ] || [[ ",$VARIANTS," == *",$1,"* ]]; }
# Rows of layouts this call does not run, kept from the stage's previous TSV when ROWS is given.
kept_rows() {  # tsv
  [ -n "${ROWS:-}" ] && [ -f "$1" ] || return 0
  awk -F'\t' -v rows="$rows" '!/^#/ && $2 != "*" && index(rows, "," $2 ",") == 0' "$1"
}

gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
cpu_name=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
hmoe_commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "working tree")
[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && hmoe_commit+="+changes"

# The model, written once per machine (~9 s for 9.6 GB); the generator is one translation unit of hmoe headers.
ensure_model() {
  # A file from before the generator wrote a tokenizer cannot be loaded by llama.cpp: write it again.
  [ -f "$model" ] && [ "$(head -c 4000000 "$model" | grep -a -c tokenizer.ggml.merges)" != 0 ] && return 0
  local gen=$results/hmoe_make_random_model
  if [ ! -x "$gen" ] || [ "$here/make_random_model.cpp" -nt "$gen" ]; then
    log "compiling hmoe_make_random_model"
    g++ -std=c++20 -O2 -pthread -I"$root/include" "$here/make_random_model.cpp" -o "$gen" || return 1
  fi
  log "writing $model"
  "$gen" "${gen_args[@]}" --out "$model" 2>&1 | tail -1 >&2
  [ -f "$model" ]
}

# Routed-expert bytes one decoded token reads, from the generator's summary of the same layout.
routed_bytes() {
  local gen=$results/hmoe_make_random_model
  [ -x "$gen" ] || g++ -std=c++20 -O2 -pthread -I"$root/include" "$here/make_random_model.cpp" -o "$gen" || return 0
  "$gen" "${gen_args[@]}" --dry-run 2>&1 | sed -n 's/^routed_expert_bytes_per_token=//p'
}

# Host memory read bandwidth with all threads: benchmarks/moe_cpu/limits.cpp (4 GiB buffer, first touched by the
# threads that read it, best of 5 passes); ~10 s with its other probes.
read_bw() {
  local bin=$results/limits
  if [ ! -x "$bin" ]; then
    g++ -std=c++20 -O2 -pthread "$root/benchmarks/moe_cpu/limits.cpp" -o "$bin" 2>"$results/limits.log" || return 0
  fi
  "$bin" --threads "$threads" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("limit") == "read_bw_GBs" and d.get("threads") == int(sys.argv[1]) and d.get("value"):
        print("%.1f" % d["value"])' "$threads"
}

meta() {  # common "#key=value" lines of a TSV
  local bw rb
  bw=$(read_bw); rb=$(routed_bytes)
  echo "#model=a random-weight $shape_name-shaped model ($(du -h "$model" 2>/dev/null | cut -f1); hmoe_make_random_model ${gen_args[*]})"
  echo "#gpu=${gpu_name:-no GPU}"
  echo "#cpu=$cpu_name"
  echo "#threads=$threads"
  echo "#hmoe_commit=$hmoe_commit"
  [ -n "$bw" ] && echo "#bw_GBs=$bw"
  echo "#bw_how=benchmarks/moe_cpu/limits, $threads threads"
  [ -n "$rb" ] && echo "#routed_bytes_per_token=$rb"
  log "read bandwidth ${bw:-?} GB/s; routed experts per token ${rb:-?} bytes"
}

# One program run under measure.py (peak RSS, peak GPU memory), with the time that is left.
measured() {  # tag timeout cmd...
  local tag=$1 t=$2; shift 2
  python3 "$here/measure.py" "$results/$tag.measure" --timeout "$t" -- "$@"
}
skip_row() {  # impl layout variant args
  printf '%s\t%s\t%s\t*\t\t\t\t\t\tskipped\t%s\n' "$1" "$2" "$3" "$4"
}

# ---- llama.cpp ----------------------------------------------------------------------------------------------
stage_llama() {
  local tsv=$results/llama.tsv md=$out/e2e_llama.md bin
  log "llama.cpp: unpack, configure, build llama-bench ($llama_kind) in $llama_build"
  bin=$(bash "$here/build_llama.sh" "$llama_build" "$llama_kind" "$jobs" 2> "$results/llama-build.txt" | tail -1)
  cat "$results/llama-build.txt" >&2
  if [ ! -x "$bin" ]; then
    log "llama.cpp build failed"; skip_row llama "*" "" "build failed" > "$tsv"; cp "$tsv" "$out/"; return 1
  fi
  log "llama-bench built"
  has_stage llama || return 0
  ensure_model || { log "no model"; return 1; }
  local commit src
  commit=$(sed -n 's/^llama_cpp_commit=//p' "$root/.llama-carry/VERSION")
  src="llama-cpp-python $(sed -n 's/^llama_cpp_python=//p' "$root/.llama-carry/VERSION") sdist"
  local kept; kept=$(kept_rows "$tsv")
  {
    meta
    echo "#llama_commit=${commit:0:9}"
    echo "#llama_source=$src"
    if [ "$llama_kind" = cuda ]; then
      echo "#llama_build=llama-bench, CUDA ${LLAMA_CUDA_ARCH:-90a}, GGML_NATIVE (-march=native) with AMX compiled out"
    else
      echo "#llama_build=llama-bench, CPU only, GGML_NATIVE (-march=native) with AMX compiled out"
    fi
    [ -n "$kept" ] && echo "$kept"
  } > "$tsv"
  {
    echo "# llama-bench, $(sed -n 's/^#model=//p' "$tsv"), ${gpu_name:-no GPU}, $threads threads"
    echo
    echo "llama.cpp $commit ($src), $bin; compile flags of ggml's sources (count):"
    echo '```'
    grep 'ggml flags' "$results/llama-build.txt"
    echo '```'
  } > "$md"

  local help; help=$("$bin" --help 2>&1 || true)
  # layout variant need_s args (need_s: rough run time, to skip what cannot finish in the budget)
  llama_run() {
    local layout=$1 variant=$2 need=$3; shift 3
    local args="-m MODEL -t $threads $*${LLAMA_ARGS:+ $LLAMA_ARGS}"
    want_row "$layout" || return 0
    want_variant "$variant" || return 0
    local t; t=$(( $(left) - 5 )); [ "$t" -gt "$limit" ] && t=$limit
    if [ "$t" -lt "$need" ]; then
      log "skip llama-bench $layout ($t s left, needs ~$need s)"; skip_row llama "$layout" "$variant" "$args" >> "$tsv"; return
    fi
    log "llama-bench $args"
    { echo; echo "\$ llama-bench $args"; } >> "$md"
    # shellcheck disable=SC2086
    measured "llama-$layout$variant" "$t" "$bin" -m "$model" -t "$threads" "$@" ${LLAMA_ARGS:-} -o md -oe jsonl \
      2> "$results/llama-$layout$variant.err" | tee -a "$md"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "(exit $rc)"; grep -v '^{' "$results/llama-$layout$variant.err" | tail -5; } | tee -a "$md"
    python3 "$here/make_table.py" llama-rows --layout "$layout" --variant "$variant" \
      --measure "$results/llama-$layout$variant.measure" --args "$args" < "$results/llama-$layout$variant.err" >> "$tsv"
    sed -n 's/^\(rc\|wall_s\|peak_rss_kib\|gpu_peak_mib\)=/  \1 /p' "$results/llama-$layout$variant.measure" \
      | paste -sd' ' | sed 's/^/measured:/' >> "$md"
  }
  # Most important first: the hybrid layout is what hmoe is built for. -nopo 1 (no op offload) changes only
  # batches of 32 tokens and more, so its run is prompt-only, and last (pp2048 on the CPU would take ~70 s).
  if [ "$quick" = 1 ]; then
    llama_run hybrid "" 60 -ngl 99 -ot exps=CPU -fa 1 -p 512 -n 64 -r 2
    cp "$tsv" "$out/"
    return
  fi
  llama_run hybrid "" 60 -ngl 99 -ot exps=CPU -fa 1 -p 512,2048 -n 128 -r "$reps"
  llama_run cpu "" 45 -ngl 0 -dev none -fa 1 -p 512 -n 32,128 -r "$cpu_reps"
  llama_run gpu "" 25 -ngl 99 -fa 1 -p 512,2048 -n 128 -r "$reps"
  [[ "$help" == *"-nopo"* ]] && llama_run hybrid nopo 35 -ngl 99 -ot exps=CPU -fa 1 -p 512 -n 0 -nopo 1 -r "$reps"
  # Decode at 4k / 16k tokens of context (each repetition fills the context first) and an 8k-token prompt.
  [[ "$help" == *"--n-depth"* ]] && llama_run hybrid context 120 -ngl 99 -ot exps=CPU -fa 1 -p 0 -n 64 -d 4096,16384 -r 2
  llama_run hybrid "long prompt" 45 -ngl 99 -ot exps=CPU -fa 1 -p 8192 -n 0 -r 1
  # Prompts in 2048-token batches (each batch moves the CPU-resident experts to the GPU once).
  llama_run hybrid "ubatch 2048" 60 -ngl 99 -ot exps=CPU -fa 1 -p 2048,8192 -n 0 -b 2048 -ub 2048 -r 2
  cp "$tsv" "$out/"
}

# ---- hmoe ---------------------------------------------------------------------------------------------------
stage_hmoe() {
  local tsv=$results/hmoe.tsv md=$out/e2e_hmoe.md
  log "hmoe: configure and build hmoe-bench (CUDA) in $build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_CUDA="${HMOE_CUDA:-ON}" -DHMOE_TOKENIZER=OFF \
    -DHMOE_BUILD_EXAMPLES=ON -DHMOE_BUILD_BENCHMARKS=ON -DHMOE_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$root/.carry" \
    >/dev/null || { skip_row hmoe "*" "" "configure failed" > "$tsv"; cp "$tsv" "$out/"; return 1; }
  if cmake --build "$build" -j "$jobs" --target hmoe-bench hmoe_make_random_model 2>&1 | grep -E "error|FAILED"; then
    skip_row hmoe "*" "" "build failed" > "$tsv"; cp "$tsv" "$out/"; return 1
  fi
  local bench=$build/examples/bench/hmoe-bench
  mkdir -p "$results"
  cp "$build/benchmarks/e2e/hmoe_make_random_model" "$results/" 2>/dev/null || true
  ensure_model || { log "no model"; return 1; }
  local kept; kept=$(kept_rows "$tsv")
  { meta; [ -n "$kept" ] && echo "$kept"; } > "$tsv"
  {
    echo "# hmoe-bench, $(sed -n 's/^#model=//p' "$tsv"), ${gpu_name:-no GPU}, $threads threads"
    echo
    echo "hmoe $hmoe_commit, $bench"
  } > "$md"
  # layout variant need_s reps args
  hmoe_run() {
    local layout=$1 variant=$2 need=$3 r=$4; shift 4
    local args="-m MODEL -t $threads $*"
    want_row "$layout" || return 0
    want_variant "$variant" || return 0
    local t; t=$(( $(left) - 5 )); [ "$t" -gt "$limit" ] && t=$limit
    if [ "$t" -lt "$need" ]; then
      log "skip hmoe-bench $layout $variant ($t s left, needs ~$need s)"; skip_row hmoe "$layout" "$variant" "$args" >> "$tsv"; return
    fi
    log "hmoe-bench $args"
    { echo; echo "\$ hmoe-bench $args"; } >> "$md"
    measured "hmoe-$layout$variant" "$t" "$bench" -m "$model" -t "$threads" "$@" 2> "$results/hmoe-$layout$variant.err" \
      > "$results/hmoe-$layout$variant.out"
    local rc=$?
    tee -a "$md" < "$results/hmoe-$layout$variant.out"
    [ "$rc" = 0 ] || { echo "(exit $rc)"; grep -v '^\s*$' "$results/hmoe-$layout$variant.err" | tail -5; } | tee -a "$md"
    python3 "$here/make_table.py" hmoe-rows --layout "$layout" --variant "$variant" --reps "$r" \
      --measure "$results/hmoe-$layout$variant.measure" --args "$args" < "$results/hmoe-$layout$variant.out" >> "$tsv"
    sed -n 's/^\(rc\|wall_s\|peak_rss_kib\|gpu_peak_mib\)=/  \1 /p' "$results/hmoe-$layout$variant.measure" \
      | paste -sd' ' | sed 's/^/measured:/' >> "$md"
  }
  # The default hybrid path (coroutine pipeline, shared experts overlapping the CPU experts, spinning expert
  # threads) with a trace, then what each pipeline choice changes, selective experts, decode at 4k / 16k context.
  if [ "$quick" = 1 ]; then
    hmoe_run hybrid "" 60 2 -p 512 -n 64 -r 2 --layout hybrid
    cp "$tsv" "$out/"
    return
  fi
  hmoe_run hybrid "" 40 "$reps" -p 512,2048 -n 128 -r "$reps" --layout hybrid --trace "$out/trace-hybrid.json"
  hmoe_run hybrid "prompt experts on the CPU" 40 2 -p 512,2048 -n 0 -r 2 --layout hybrid --expert-offload 0
  hmoe_run hybrid "pipeline sequential, threads sleep, prompt experts on the CPU" 40 2 -p 2048 -n 128 -r 2 --layout hybrid --pipeline sequential --no-spin --expert-offload 0
  hmoe_run hybrid "2 micro-batches, prompt experts on the CPU" 30 2 -p 2048 -n 0 -r 2 --layout hybrid --micro-batches 2 --expert-offload 0
  hmoe_run hybrid "4 of 6 experts per token" 30 2 -p 2048 -n 128 -r 2 --layout hybrid --experts-per-token 4
  hmoe_run hybrid "context" 40 2 -p 0 -n 64 -d 4096,16384 -r 2 --layout hybrid
  hmoe_run hybrid "long prompt" 30 1 -p 8192 -n 0 -r 1 --layout hybrid
  hmoe_run hybrid "batch 2048" 40 2 -p 2048,8192 -n 0 -r 2 --layout hybrid --batch-tokens 2048
  hmoe_run gpu "" 40 2 -p 512,2048 -n 128 -r 2 --layout gpu
  hmoe_run cpu "" 60 1 -p 512 -n 32 -r 1 --layout cpu
  hmoe_run hybrid cuda-graph 30 2 -p 0 -n 128 -r 2 --layout hybrid --cuda-graph
  hmoe_run hybrid "no layer graphs" 30 2 -p 0 -n 128 -r 2 --layout hybrid --no-layer-graphs
  cp "$tsv" "$out/"
}

has_stage llama-build && ! has_stage llama && { stage_llama; exit $?; }
has_stage llama && stage_llama
has_stage hmoe && stage_hmoe

# The table from every stage's results on this machine, then the raw output of this call's stages.
tsvs=()
for f in "$results/llama.tsv" "$results/hmoe.tsv"; do [ -s "$f" ] && tsvs+=("$f"); done
if [ ${#tsvs[@]} -gt 0 ]; then
  python3 "$here/make_table.py" table "${tsvs[@]}" > "$out/table.md"
  cp "$out/table.md" "$out/e2e.md"
  for part in "$out/e2e_llama.md" "$out/e2e_hmoe.md"; do
    [ -f "$part" ] && { echo; echo "---"; echo; cat "$part"; } >> "$out/e2e.md"
  done
  echo; cat "$out/table.md"  # last, so that the end of the console output holds it
fi
log "done"
