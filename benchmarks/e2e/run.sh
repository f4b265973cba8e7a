#!/usr/bin/env bash
# End-to-end hmoe-bench on a GPU machine: a random-weight DeepSeek-V2-Lite-shaped model (real shapes, Q4_K_M-like
# types; benchmarks/e2e/make_random_model.cpp) in the hybrid layout (CUDA graph on and off), all on the GPU, and
# all on the CPU. Writes $OUT/e2e.md. llama.cpp is not built here (see benchmarks/results/e2e.md).
#
# On the device, from the repository root, with `.carry` in the carry list:  bash benchmarks/e2e/run.sh
# Env: HMOE_CUDA_BUILD (build dir, default /tmp/hmoe-build-cuda), MODEL_DIR (/tmp), THREADS (nproc), JOBS (16).
set -uo pipefail
root=$(pwd)
build=${HMOE_CUDA_BUILD:-/tmp/hmoe-build-cuda}
out=${OUT:-$build/out}
models=${MODEL_DIR:-/tmp}
threads=${THREADS:-$(nproc)}
mkdir -p "$out"
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_CUDA=ON -DHMOE_TOKENIZER=OFF \
  -DHMOE_BUILD_EXAMPLES=ON -DHMOE_BUILD_BENCHMARKS=ON -DHMOE_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$root/.carry" \
  >/dev/null || exit 1
cmake --build "$build" -j "${JOBS:-16}" --target hmoe-bench hmoe_make_random_model 2>&1 | grep -E "error|FAILED" && exit 1
bench=$build/examples/bench/hmoe-bench
model=$models/dsv2lite-random-q4km.gguf
[ -f "$model" ] || "$build/benchmarks/e2e/hmoe_make_random_model" --shape v2-lite --out "$model" || exit 1

{
  echo "# hmoe-bench, random-weight DeepSeek-V2-Lite shape ($(du -h "$model" | cut -f1)), $(nvidia-smi --query-gpu=name --format=csv,noheader), $threads threads"
  echo
  echo '```'
  echo "bench=$bench; model=$model"
  echo '```'
} >"$out/e2e.md"
run() { echo; echo "\$ hmoe-bench -m MODEL -t $threads $*"; timeout "${LIMIT:-240}" "$bench" -m "$model" -t "$threads" "$@" 2>/dev/null || echo "(exit $?)"; }
{
  run -p 512,2048 -n 128 -r 3 --layout hybrid
  run -p 0 -n 128 -r 3 --layout hybrid --cuda-graph
  run -p 512,2048 -n 128 -r 3 --layout gpu
  run -p 512 -n 32 -r 1 --layout cpu
} | tee -a "$out/e2e.md"
