#!/usr/bin/env bash
# The CUDA unit on a GPU machine: configure + build (the top-level project without the tokenizer, headers from
# .carry/), the GPU
# tests (`ctest -L gpu`), then the benchmarks; the markdown table is printed last and written to $OUT/cuda.md.
#
# Here, once:   benchmarks/cuda/prepare_carry.sh          (fills .carry/, git-ignored)
# On the device, from the repository root, with `.carry` in the carry list:
#               bash benchmarks/cuda/run.sh
# Env: HMOE_CUDA_BUILD (build dir, default /tmp/hmoe-build-cuda), HMOE_CUDA_ARCHS (default 90a), JOBS (16),
# HMOE_SHARED_DATA (the reference fixtures: ../shared/data does not travel to the device; carry a copy).
set -uo pipefail
root=$(pwd)
build=${HMOE_CUDA_BUILD:-/tmp/hmoe-build-cuda}
out=${OUT:-$build/out}
mkdir -p "$out"
log=$out/run.log
: >"$log"
say() { echo "== $* ($((SECONDS))s)" | tee -a "$log"; }

[ -d "$root/.carry/include" ] || { echo "run.sh: $root/.carry is missing: run benchmarks/cuda/prepare_carry.sh here first and carry .carry"; exit 2; }
# nvcc where CMake will look for it.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$log"

say configure
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_CUDA=ON -DHMOE_TOKENIZER=OFF \
  -DHMOE_BUILD_EXAMPLES=ON -DHMOE_BUILD_BENCHMARKS=ON \
  -DCMAKE_PREFIX_PATH="$root/.carry" ${HMOE_SHARED_DATA:+-DHMOE_SHARED_DATA="$HMOE_SHARED_DATA"} -DHMOE_CUDA_ARCHS="${HMOE_CUDA_ARCHS:-90a}" 2>&1 | tee -a "$log" | tail -5
[ "${PIPESTATUS[0]}" -eq 0 ] || { tail -40 "$log"; say "configure FAILED"; exit 1; }

say build
gpu_targets=$(cd "$root" && ls tests/gpu/test_mla*.cpp 2>/dev/null | xargs -rn1 basename | sed 's/\.cpp$//')
mla_bench=$([ -f "$root/benchmarks/cuda/mla_bench.cu" ] && echo hmoe_mla_bench)
cmake --build "$build" -j "${JOBS:-16}" --target test_gpu_ops test_gpu_gemv test_gpu_gemm test_gpu_matrix \
  test_gpu_layers_ops test_gpu_model $gpu_targets hmoe_cuda_bench $mla_bench hmoe-bench 2>&1 | tee -a "$log" | grep -E "error|warning|FAILED" | head -50
[ "${PIPESTATUS[0]}" -eq 0 ] || { tail -40 "$log"; say "build FAILED (see $log)"; exit 1; }

say "tests (ctest -L gpu)"
(cd "$build" && ctest -L gpu --output-on-failure --timeout 300) 2>&1 | tee -a "$log"
test_rc=${PIPESTATUS[0]}

say "benchmark: hmoe_cuda_bench"
"$build/benchmarks/cuda/hmoe_cuda_bench" --md "$out/cuda.md" 2>&1 | tee -a "$log"
bench_rc=${PIPESTATUS[0]}

# The MLA kernels' benchmark, when benchmarks/cuda/mla_bench.cu exists (target hmoe_mla_bench).
if [ -x "$build/benchmarks/cuda/hmoe_mla_bench" ]; then
  say "benchmark: hmoe_mla_bench"
  "$build/benchmarks/cuda/hmoe_mla_bench" 2>&1 | tee "$out/mla_bench.txt" | tee -a "$log"
fi

say "done: tests rc=$test_rc, bench rc=$bench_rc"
echo
[ -f "$out/cuda.md" ] && cat "$out/cuda.md"
[ "$test_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
