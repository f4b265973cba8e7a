#!/usr/bin/env bash
# One MoE layer on the CPU: hmoe vs llama.cpp's ggml and KTransformers' kt-kernel, against
# the machine's limits. Builds everything, runs it one program at a time (they would share
# cores otherwise), prints the markdown table last and writes it to $OUT/moe_cpu.md when
# OUT is set (with the raw JSON lines beside it). Run from the repo root:
#   benchmarks/moe_cpu/run.sh [--quick]
# Needs: .moe-carry/ggml (prepare_carry.sh) or GGML_SOURCE_DIR; .whl/kt_kernel-0.6.1-*.whl
# for the kt rows. Knobs: MOE_SHAPES (V2-Lite,V3), MOE_TOKENS (1,128,512,2048),
# MOE_THREADS (all cores), MOE_BUDGET (seconds for the whole script, 510).
set -uo pipefail  # not -e: a failing part prints skipped rows and the rest goes on
root=$(pwd)
here=$root/benchmarks/moe_cpu
[ -f "$here/run.sh" ] || { echo "run from the repo root" >&2; exit 2; }
quick=""
[ "${1:-}" = "--quick" ] && quick=--quick
threads=${MOE_THREADS:-$(nproc)}
export MOE_THREADS=$threads
shapes=${MOE_SHAPES:-V2-Lite,V3}
tokens=${MOE_TOKENS:-1,128,512,2048}
[ -n "$quick" ] && shapes=${MOE_SHAPES:-V2-Lite} && tokens=${MOE_TOKENS:-1,128}
budget=${MOE_BUDGET:-510}
build=${MOE_BUILD_DIR:-$root/build-moe-cpu}
work=${OUT:-$build}
res=$work/moe_cpu.jsonl
mkdir -p "$build" "$work"
: > "$res"
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start )); }
log() { echo "== [$(elapsed) s] $*" >&2; }
# Rows for a program that could not run, so the table says why instead of going quiet.
skip_rows() {  # impl reason
  for s in ${shapes//,/ }; do for t in ${tokens//,/ }; do
    printf '{"impl": "%s", "shape": "%s", "tokens": %s, "skipped": "%s"}\n' "$1" "$s" "$t" "$2"
  done; done >> "$res"
}
# Runs a bench program, keeping its JSON lines; stderr goes to the console.
bench() {  # impl-for-skips cmd...
  local impl=$1; shift
  "$@" | tee -a "$res" || { log "$impl failed (exit ${PIPESTATUS[0]})"; return 1; }
}

# The kt wheel is cp312 and needs torch: take the first Python that has both.
py=python3
for cand in ${PYTHON:-} /opt/torch/.venv/bin/python3 python3.12 python3; do
  if "$cand" -c 'import sys, torch; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then py=$cand; break; fi
done
log "threads $threads, shapes $shapes, tokens $tokens ${quick:+(quick)}; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
grep -m1 -o -w 'amx_int8\|avx512_vnni\|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ' >&2; echo >&2

# ---- builds (ggml and hmoe in parallel; each uses all cores, they're mostly waiting on
# different big translation units) ---------------------------------------------------------
ggml_src=${GGML_SOURCE_DIR:-$root/.moe-carry/ggml}
[ -f "$ggml_src/src/ggml-cpu/ggml-cpu.c" ] || ggml_src=$root/.deps/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml
log "building limits, ggml ($ggml_src) and hmoe_moe_bench"
g++ -std=c++20 -O2 -pthread "$here/limits.cpp" -o "$build/limits" 2> "$build/limits.log" \
  || { log "limits build failed:"; tail -5 "$build/limits.log" >&2; }
# AMX stays compiled out of ggml (ggml/CMakeLists.txt says why); -march=native otherwise.
( cmake -S "$here/ggml" -B "$build/ggml" -G Ninja -DGGML_SOURCE_DIR="$ggml_src" > "$build/ggml.log" 2>&1 \
  && ninja -C "$build/ggml" ggml_moe_bench >> "$build/ggml.log" 2>&1 ) &
pid_ggml=$!
( cmake -S "$root" -B "$build/hmoe" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_BUILD_BENCHMARKS=ON \
    -DHMOE_BUILD_TESTS=OFF -DHMOE_BUILD_EXAMPLES=OFF -DHMOE_CUDA=OFF -DHMOE_TOKENIZER=OFF \
    -DCMAKE_PREFIX_PATH="$root/.carry" > "$build/hmoe.log" 2>&1 \
  && ninja -C "$build/hmoe" hmoe_moe_bench >> "$build/hmoe.log" 2>&1 ) &
pid_hmoe=$!
wait $pid_ggml || { log "ggml build failed:"; tail -15 "$build/ggml.log" >&2; }
wait $pid_hmoe || { log "hmoe build failed:"; tail -15 "$build/hmoe.log" >&2; }
log "builds done"

# ---- runs, one at a time -------------------------------------------------------------
# hmoe_moe_bench takes one shape name or "all"; ggml_moe_bench takes those or a list.
shape_arg=$shapes
case "$shapes" in V2-Lite,V3|V3,V2-Lite) shape_arg=all ;; esac
args=(--shape "$shape_arg" --tokens "$tokens" --threads "$threads" $quick)

log "limits"
if [ -x "$build/limits" ]; then bench limits "$build/limits" --threads "$threads" $quick; else echo '{"limit": "read_bw_GBs", "threads": 1, "value": null, "note": "limits did not build"}' >> "$res"; fi

log "hmoe"
hb=$(find "$build/hmoe" -name hmoe_moe_bench -type f -perm -u+x 2>/dev/null | head -1)
if [ -n "$hb" ]; then bench hmoe "$hb" "${args[@]}" || skip_rows hmoe "hmoe_moe_bench failed"
else skip_rows hmoe "hmoe_moe_bench did not build"; fi
# Extra hmoe rows with thread-pool options, e.g. HMOE_VARIANTS="--spin;--pin --spin" (each named by its flags).
IFS=';' read -ra variants <<< "${HMOE_VARIANTS:-}"
for v in "${variants[@]}"; do
  [ -n "$hb" ] && [ -n "$v" ] && { bench hmoe "$hb" "${args[@]}" $v || skip_rows hmoe "hmoe_moe_bench $v failed"; }
done

log "ggml"
if [ -x "$build/ggml/ggml_moe_bench" ]; then bench ggml "$build/ggml/ggml_moe_bench" "${args[@]}" || skip_rows ggml "ggml_moe_bench failed"
else skip_rows ggml "ggml_moe_bench did not build"; fi

log "kt-kernel"
whl=$(ls "$root"/.whl/kt_kernel-0.6.1-*.whl 2>/dev/null | head -1)
if [ -z "$whl" ]; then
  skip_rows kt "no kt-kernel wheel in .whl/"
elif ! "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/kt-site "$whl" > "$build/kt-pip.log" 2>&1; then
  skip_rows kt "pip install of the wheel failed"; tail -3 "$build/kt-pip.log" >&2
else
  # kt-kernel's package imports need torch (in the image), not its optional gguf import.
  left=$(( budget - $(elapsed) - 20 ))
  PYTHONPATH=/tmp/kt-site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 \
    "$py" "$here/kt_moe_bench.py" --shapes "$shapes" --tokens "$tokens" --threads "$threads" \
    --budget $(( left > 30 ? left : 30 )) $quick | tee -a "$res"
fi

log "done; report"
"$py" "$here/report.py" "$res" ${OUT:+--out "$OUT/moe_cpu.md"} \
  --title "MoE layer on the CPU ($threads threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
