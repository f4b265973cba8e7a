#!/usr/bin/env bash
# Builds llama-bench from the carried llama.cpp tarball (.llama-carry, made by prepare_llama_carry.sh).
#   benchmarks/e2e/build_llama.sh BUILD_DIR [cuda|cpu] [JOBS]
# Unpacks .llama-carry/llama.cpp.tar.xz into BUILD_DIR/src (once), configures BUILD_DIR/build and builds the
# llama-bench target alone; prints the binary's path on the last line of stdout. CUDA builds are for sm_90a
# (H100/H200; LLAMA_CUDA_ARCH overrides). Both: -march=native (GGML_NATIVE) with AMX compiled out, because
# llama.cpp's AMX buffer type crashes on deepseek2 models (DeepSeek users run its AVX-512 path).
# Time: CPU-only ~2 min on 16 cores (~12 min on 2); CUDA for one architecture ~5-6 min on 16 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:?usage: build_llama.sh BUILD_DIR [cuda|cpu] [JOBS]}
kind=${2:-cuda}
jobs=${3:-$(nproc)}
carry=${LLAMA_CARRY:-$root/.llama-carry}
tarball=$carry/llama.cpp.tar.xz
[ -f "$tarball" ] || { echo "no $tarball: run benchmarks/e2e/prepare_llama_carry.sh and carry .llama-carry" >&2; exit 1; }
commit=$(sed -n 's/^llama_cpp_commit=//p' "$carry/VERSION" 2>/dev/null || true)

mkdir -p "$dir"
# Unpack again only when the tarball changed.
sha=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$(cat "$dir/src.sha256" 2>/dev/null)" != "$sha" ]; then
  rm -rf "$dir/src" "$dir/build"
  mkdir -p "$dir/src"
  tar -xJf "$tarball" -C "$dir/src"
  echo "$sha" > "$dir/src.sha256"
fi
src=$dir/src/llama.cpp

# -mno-amx-* wins over -march=native wherever it stands on the command line (GCC and Clang).
no_amx=""
if echo 'int main(){}' | ${CC:-cc} -x c -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -o /dev/null - 2>/dev/null; then
  no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
args=(
  -G Ninja -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DGGML_CCACHE=OFF
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  "-DCMAKE_C_FLAGS=$no_amx" "-DCMAKE_CXX_FLAGS=$no_amx"
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  "-DLLAMA_BUILD_COMMIT=${commit:0:9}" -DLLAMA_BUILD_NUMBER=0
)
if [ "$kind" = cuda ]; then
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
  # One GPU: no NCCL. Flash-attention vector kernels for the f16 KV cache only (the default cache type; the
  # default list adds q4_0, q8_0 and bf16 caches, which no run here uses): three fewer heavy CUDA files.
  args+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${LLAMA_CUDA_ARCH:-90a}" -DGGML_CUDA_NCCL=OFF
         -DGGML_CUDA_FA_QUANTS=f16-f16)
else
  args+=(-DGGML_CUDA=OFF)
fi
# Compilers and flags are fixed at the first configure; a changed kind needs a fresh build folder.
if [ -f "$dir/build/CMakeCache.txt" ] && ! grep -q "^GGML_CUDA:BOOL=$([ "$kind" = cuda ] && echo ON || echo OFF)$" "$dir/build/CMakeCache.txt"; then
  rm -rf "$dir/build"
fi
cmake -S "$src" -B "$dir/build" "${args[@]}" > "$dir/configure.log" 2>&1 \
  || { echo "llama.cpp configure failed:" >&2; tail -30 "$dir/configure.log" >&2; exit 1; }
cmake --build "$dir/build" --target llama-bench -j "$jobs" > "$dir/build.log" 2>&1 \
  || { echo "llama-bench build failed:" >&2; grep -m20 -B2 -A8 -E "error|FAILED" "$dir/build.log" >&2 || tail -30 "$dir/build.log" >&2; exit 1; }
# Proof that AMX is out of the CPU backend (the flags it was compiled with).
grep -o -E -- '-march=native|-mno-amx-int8' "$dir/build/compile_commands.json" 2>/dev/null | sort | uniq -c | sed 's/^/  ggml flags: /' >&2 || true
echo "$dir/build/bin/llama-bench"
