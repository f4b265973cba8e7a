#!/usr/bin/env bash
# Makes .llama-carry/: llama.cpp's sources, cut down to what a CUDA llama-bench build needs, as one compressed
# tarball (a few MB), so benchmarks/e2e/run.sh can build llama.cpp on the GPU machine, which has no internet.
# Run here (a machine with PyPI access), from anywhere:
#   benchmarks/e2e/prepare_llama_carry.sh                 # llama-cpp-python 0.3.36's vendored llama.cpp
#   LLAMA_CPP_PYTHON_VERSION=0.3.37 benchmarks/e2e/prepare_llama_carry.sh
#   SDIST=/path/llama_cpp_python-X.tar.gz benchmarks/e2e/prepare_llama_carry.sh
# Writes .llama-carry/llama.cpp.tar.xz and .llama-carry/VERSION (versions, commit, sha256, what was left out);
# LLAMA_CARRY_DIR writes them elsewhere.
# The device's carry limit is 64 MiB for everything carried, so the tarball must stay under 9 MiB (checked).
#
# The source is the llama-cpp-python sdist from PyPI (it vendors llama.cpp at a pinned commit, the same tree
# benchmarks/moe_cpu uses). Left out: models, docs, tests, examples, gguf-py, the Python converters, CI files,
# every ggml backend but CPU and CUDA, every tool but llama-bench (tools/CMakeLists.txt is replaced by one that
# adds llama-bench alone), the app and the header-only media libraries only tools/mtmd includes (their
# CMakeLists.txt stay, since vendor/CMakeLists.txt adds them unconditionally).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
dst=${LLAMA_CARRY_DIR:-$root/.llama-carry}
limit_mib=9

work=$(mktemp -d /tmp/llama-carry.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---- the sdist ---------------------------------------------------------------------------------------------
sdist=${SDIST:-}
if [ -z "$sdist" ]; then
  for cand in "$root/.deps/llama_cpp_python-$version.tar.gz" "/tmp/hmoe-sdist/llama_cpp_python-$version.tar.gz"; do
    [ -f "$cand" ] && { sdist=$cand; break; }
  done
fi
if [ -z "$sdist" ]; then
  echo "downloading llama-cpp-python==$version (sdist) from PyPI" >&2
  mkdir -p /tmp/hmoe-sdist
  # Outside the repository on purpose: the sdist is ~75 MB and .llama-carry travels to the device.
  python3 -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d /tmp/hmoe-sdist >&2
  sdist=$(ls /tmp/hmoe-sdist/llama_cpp_python-"$version".tar.gz)
fi
echo "sdist: $sdist" >&2

# Only vendor/llama.cpp and the submodule's HEAD (the sdist carries the submodule's git metadata).
tar -xzf "$sdist" -C "$work" --wildcards '*/vendor/llama.cpp/*' '*/.git/modules/vendor/llama.cpp/HEAD' \
  '*/PKG-INFO' 2>/dev/null || tar -xzf "$sdist" -C "$work" --wildcards '*/vendor/llama.cpp/*' '*/PKG-INFO'
top=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
src=$top/vendor/llama.cpp
[ -f "$src/tools/llama-bench/llama-bench.cpp" ] || { echo "no llama.cpp with tools/llama-bench in $sdist" >&2; exit 1; }
pkg_version=$(sed -n 's/^Version: //p' "$top/PKG-INFO" | head -1)
commit=""
[ -f "$top/.git/modules/vendor/llama.cpp/HEAD" ] && commit=$(tr -d '[:space:]' < "$top/.git/modules/vendor/llama.cpp/HEAD")
if ! [[ "$commit" =~ ^[0-9a-f]{40}$ ]]; then  # fall back on the changelog line "update llama.cpp to ...@<sha>"
  commit=$(tar -xzOf "$sdist" --wildcards '*/CHANGELOG.md' 2>/dev/null | grep -o -m1 'llama.cpp@[0-9a-f]\{7,40\}' | cut -d@ -f2 || true)
fi
[ -n "$commit" ] || commit=unknown
llama_version=$(sed -n 's/^set(LLAMA_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$src/CMakeLists.txt" | paste -sd.)

# ---- strip -------------------------------------------------------------------------------------------------
stage=$work/stage
mkdir -p "$stage"
mv "$src" "$stage/llama.cpp"
L=$stage/llama.cpp
removed=()
rm_path() { for p in "$@"; do [ -e "$L/$p" ] || [ -L "$L/$p" ] || continue; rm -rf "${L:?}/$p"; removed+=("$p"); done; }

# Top level: keep the build (CMakeLists.txt, cmake/, include/, src/, ggml/, common/, vendor/, tools/) and licences.
for p in "$L"/* "$L"/.[!.]*; do
  n=$(basename "$p")
  case "$n" in
    CMakeLists.txt | cmake | include | src | ggml | common | vendor | tools | LICENSE | licenses) ;;
    *) rm_path "$n" ;;
  esac
done
# ggml: only the CPU and CUDA backends (ggml/src/CMakeLists.txt adds a backend's folder only when it is enabled).
for p in "$L"/ggml/src/ggml-*/; do
  n=$(basename "$p")
  case "$n" in ggml-cpu | ggml-cuda) ;; *) rm_path "ggml/src/$n" ;; esac
done
# tools: llama-bench only, with a tools/CMakeLists.txt that adds nothing else.
for p in "$L"/tools/*; do
  n=$(basename "$p")
  case "$n" in llama-bench) ;; *) rm_path "tools/$n" ;; esac
done
cat > "$L/tools/CMakeLists.txt" <<'EOF'
# Written by hmoe's benchmarks/e2e/prepare_llama_carry.sh: the other tools were left out of this tree.
find_package(Threads REQUIRED)
llama_add_compile_flags()
add_subdirectory(llama-bench)
EOF
# vendor: miniaudio and stb are header-only and used by tools/mtmd alone; keep their CMakeLists.txt.
for v in miniaudio stb; do
  [ -d "$L/vendor/$v" ] || continue
  find "$L/vendor/$v" -mindepth 1 ! -name CMakeLists.txt -exec rm -rf {} + 2>/dev/null || true
  removed+=("vendor/$v/* (CMakeLists.txt kept)")
done
# Docs and test data inside the kept folders.
while IFS= read -r f; do rm -f "$f"; removed+=("${f#"$L"/}"); done < <(find "$L" -type f \( -name '*.md' -o -name '*.gguf' \) ! -path '*/licenses/*')

cat > "$L/HMOE_CARRY" <<EOF
llama.cpp $commit (version $llama_version), vendored in llama-cpp-python $pkg_version (PyPI sdist), stripped for
llama-bench with the CPU and CUDA backends by hmoe's benchmarks/e2e/prepare_llama_carry.sh.
EOF

# ---- pack --------------------------------------------------------------------------------------------------
mkdir -p "$dst"
rm -f "$dst/llama.cpp.tar.xz" "$dst/VERSION"
tar -C "$stage" --sort=name --mtime='2020-01-01 00:00Z' --owner=0 --group=0 --numeric-owner -cf - llama.cpp \
  | xz -9e -T0 > "$dst/llama.cpp.tar.xz"
bytes=$(stat -c %s "$dst/llama.cpp.tar.xz")
sha=$(sha256sum "$dst/llama.cpp.tar.xz" | cut -d' ' -f1)
{
  echo "llama_cpp_python=$pkg_version"
  echo "llama_cpp_commit=$commit"
  echo "llama_cpp_version=$llama_version"
  echo "tarball=llama.cpp.tar.xz"
  echo "tarball_bytes=$bytes"
  echo "tarball_sha256=$sha"
  echo "unpacked_bytes=$(du -sb "$L" | cut -f1)"
  echo "sdist=$(basename "$sdist")"
  echo "prepared=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# left out:"
  printf '#   %s\n' "${removed[@]}" | sort -u | grep -v '\.md$' || true
  echo "#   (and every *.md / *.gguf file)"
} > "$dst/VERSION"

mib=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')
echo "$dst/llama.cpp.tar.xz: $bytes bytes ($mib MiB), llama.cpp $commit, llama-cpp-python $pkg_version"
if [ "$bytes" -gt $((limit_mib * 1048576)) ]; then
  echo "error: the tarball is over the $limit_mib MiB limit" >&2
  exit 1
fi
