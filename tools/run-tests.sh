#!/usr/bin/env bash
# Builds and runs every test (Release with assertions), then the GGUF reader's tests again under ASan+UBSan.
# Tests labelled gpu need an NVIDIA GPU and run on the GPU machine (benchmarks/cuda/run.sh), not here. The
# AVX-512/AMX kernel tests run natively where the CPU has those instructions and always in their _emulated form.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)
cmake -S . -B build-tests -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build-tests -j "$jobs"
(cd build-tests && ctest -j "$jobs" -LE gpu --output-on-failure)
if [ -f tests/unit/io/CMakeLists.txt ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHMOE_SANITIZE=ON -DHMOE_BUILD_EXAMPLES=OFF
  cmake --build build-asan -j "$jobs" --target test_gguf
  (cd build-asan && ctest -R '^test_gguf$' --output-on-failure)
fi
