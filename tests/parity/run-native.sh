#!/usr/bin/env bash
# The kernel parity tests on the real instructions, for a machine whose CPU has AVX-512 and AMX (the GPU
# machine's Xeon). Header-only dependencies come from .carry/ (benchmarks/cuda/prepare_carry.sh makes it), so
# the machine needs only cmake, ninja and g++. Run from the repository root; prints the CPU first.
set -uo pipefail
root=$(pwd)
build=${HMOE_NATIVE_BUILD:-/tmp/hmoe-build-native}
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed -E 's/(Flags:).*/\1 '"$(grep -o -E 'avx512[a-z_0-9]*|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"'/'
g++ --version | head -1
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_TOKENIZER=OFF -DHMOE_CUDA=OFF \
  -DHMOE_BUILD_EXAMPLES=OFF -DCMAKE_PREFIX_PATH="$root/.carry" >"$build.configure.log" 2>&1 ||
  { tail -30 "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target test_avx512_kernels test_amx_kernels test_cpu_experts 2>&1 | grep -E "error|warning" | head -30
rc=0
for t in test_avx512_kernels test_amx_kernels test_cpu_experts; do
  echo "== $t"
  "$build/tests/parity/$t" >"$build/$t.log" 2>&1 || rc=1
  grep -vE "^$|^=+$" "$build/$t.log" | tail -"${HMOE_NATIVE_TAIL:-40}"
done
exit $rc
