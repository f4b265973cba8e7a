#!/usr/bin/env bash
# The main job: build hmoe-eval and run it on the small DeepSeek-V3-architecture model that ships in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_BUILD_TESTS=OFF >/dev/null
cmake --build build --target hmoe-eval
model=tests/data/models/dsv3-tiny/Q4_K_M.gguf
tokens=0,254,164,42,39,206,257,215,114,219,227,78,125,143,187,267   # the first tokens of its test sequence
set -x
build/examples/eval/hmoe-eval --model "$model" --tokens "$tokens" --logits-out build/logits.f32
build/examples/eval/hmoe-eval --model "$model" --tokens "$tokens" --decode
