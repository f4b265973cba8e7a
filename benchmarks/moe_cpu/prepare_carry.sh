#!/usr/bin/env bash
# Makes .moe-carry/ggml: just the ggml sources the CPU backend needs (about 6 MB), so the
# device machine can build llama.cpp's CPU MoE path natively. Run here, from anywhere.
# (Not .carry/: another tool installs its own prefix there and may wipe it.)
# Usage: benchmarks/moe_cpu/prepare_carry.sh [GGML_SRC]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src=${1:-$root/.deps/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml}
dst=$root/.moe-carry/ggml
[ -f "$src/src/ggml-cpu/ggml-cpu.c" ] || { echo "no ggml sources at $src" >&2; exit 1; }
rm -rf "$dst"; mkdir -p "$dst/src"
cp -r "$src/CMakeLists.txt" "$src/cmake" "$src/include" "$dst/"
# Top-level files of src/ (ggml-base) plus the CPU backend; the other backends stay behind.
find "$src/src" -maxdepth 1 -type f -exec cp {} "$dst/src/" \;
cp -r "$src/src/ggml-cpu" "$dst/src/"
# Record where it came from, for the report.
echo "llama.cpp 0c1e57098 (llama-cpp-python 0.3.36 sdist), from $src" > "$dst/SOURCE"
du -sh "$dst"
