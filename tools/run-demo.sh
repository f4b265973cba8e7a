#!/usr/bin/env bash
# The main job: build hmoe-eval and run it on the small DeepSeek-V3-architecture model that ships in the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_BUILD_TESTS=OFF >/dev/null
cmake --build build --target hmoe-eval
model=tests/data/models/dsv3-tiny/Q4_K_M.gguf
tokens=$(python3 -c 'import json;print(",".join(map(str,json.load(open("tests/data/models/dsv3-tiny/meta.json"))["tokens"])))' 2>/dev/null \
         || echo 0,17,42,99,123,7,300,5)
echo "+ build/examples/eval/hmoe-eval --model $model --tokens $tokens --logits-out build/logits.f32"
build/examples/eval/hmoe-eval --model "$model" --tokens "$tokens" --logits-out build/logits.f32
