#!/usr/bin/env bash
# Installs the Debian 12 packages hmoe needs to build its programs and tests (run as root).
set -euo pipefail
packages=(cmake ninja-build g++ libeigen3-dev libxsimd-dev xtl-dev libboost1.81-dev doctest-dev pkg-config libpcre2-dev libedit-dev libsimde-dev)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
