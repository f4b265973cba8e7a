#!/usr/bin/env bash
# The main job: build hmoe-chat and chat with the small DeepSeek-V3-architecture model that ships in the repo
# (models/hmoe-tiny-dsv3-Q4_K_M.gguf, trained by tools/train). On a terminal it is interactive; without one
# (or with arguments) it answers and exits. Extra arguments go to hmoe-chat, e.g. --prompt "Tell me a fortune."
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHMOE_BUILD_TESTS=OFF >/dev/null
cmake --build build --target hmoe-chat
chat=(build/examples/chat/hmoe-chat --model models/hmoe-tiny-dsv3-Q4_K_M.gguf)
if (($#)); then
  exec "${chat[@]}" "$@"
elif [ -t 0 ] && [ -t 1 ]; then
  exec "${chat[@]}"
else
  for q in "Quote Genesis 1:3." "Tell me a fortune." "What does str.join do in Python?"; do
    echo "> $q"
    "${chat[@]}" --seed 1 --max-new-tokens 96 --prompt "$q"
  done
fi
