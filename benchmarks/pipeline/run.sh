#!/usr/bin/env bash
# On the GPU machine: the hybrid pipeline's GPU tests, then hmoe_pipeline_bench on a random-weight
# DeepSeek-V2-Lite-shaped model under every pipeline mode, with traces and their summaries in $OUT.
#   device call, repository root, carry [".carry", ".fixtures-carry"]:
#   export HMOE_SHARED_DATA=$PWD/.fixtures-carry; bash benchmarks/pipeline/run.sh
# Env: P (prompt tokens, 2048), N (decode steps, 64), R (reps, 2), MODES (hmoe_pipeline_bench --modes), TESTS=0 skips tests.
set -uo pipefail
root=$(pwd)
build=${HMOE_CUDA_BUILD:-/tmp/hmoe-build-cuda}
out=${OUT:-$build/out}
mkdir -p "$out/traces"
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
say() { echo "== $* ($((SECONDS))s)"; }

say configure
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_CUDA=ON -DHMOE_TOKENIZER=OFF \
  -DHMOE_BUILD_EXAMPLES=OFF -DHMOE_BUILD_BENCHMARKS=ON -DCMAKE_PREFIX_PATH="$root/.carry" \
  ${HMOE_SHARED_DATA:+-DHMOE_SHARED_DATA="$HMOE_SHARED_DATA"} -DHMOE_CUDA_ARCHS="${HMOE_CUDA_ARCHS:-90a}" >"$out/configure.log" 2>&1 ||
  { tail -30 "$out/configure.log"; exit 1; }
say build
targets="hmoe_pipeline_bench hmoe_make_random_model"
[ "${TESTS:-1}" = 1 ] && targets="$targets test_gpu_model test_turns"
cmake --build "$build" -j "${JOBS:-16}" --target $targets >"$out/build.log" 2>&1 ||
  { grep -E "error" "$out/build.log" | head -30; exit 1; }

if [ "${TESTS:-1}" = 1 ]; then
  say tests
  "$build/tests/unit/pipeline/test_turns" 2>&1 | tail -3
  timeout 300 "$build/tests/gpu/test_gpu_model" -s 2>&1 >"$out/test_gpu_model.log" | tail -5
  grep -E "Pipeline|trace:|test cases|assertions|FAILED|ERROR" "$out/test_gpu_model.log" | head -60
fi

model=/tmp/dsv2lite-random-q4km.gguf
say "model"
[ -f "$model" ] || "$build/benchmarks/e2e/hmoe_make_random_model" --shape v2-lite --out "$model" >/dev/null || exit 1
say "pipeline bench"
timeout "${LIMIT:-330}" "$build/benchmarks/pipeline/hmoe_pipeline_bench" -m "$model" -t "${THREADS:-16}" -p "${P:-2048}" \
  -n "${N:-64}" -r "${R:-2}" --trace-dir "$out/traces" ${MODES:+--modes "$MODES"} 2>&1 | tee "$out/pipeline.md"
for f in "$out"/traces/*.json; do
  echo; echo "### $(basename "$f")"; python3 "$root/tools/trace_summary.py" "$f" | head -12
done | tee "$out/trace_summary.md"
say done
