#!/usr/bin/env bash
# Copies the system headers (and their CMake package files) that the CUDA unit, its tests and the hmoe headers
# they include need into .carry/ (git-ignored), so that a bare device machine can configure the build:
#   cmake ... -DCMAKE_PREFIX_PATH=$PWD/.carry
# Run here, from the repository root, before a device run that names `.carry` in its carry list.
# Layout mirrors /usr so the packages' own relative paths (…/cmake/X → ../../..) keep working.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dst=$root/.carry
multi=lib/x86_64-linux-gnu
rm -rf "$dst"
mkdir -p "$dst/include" "$dst/share" "$dst/$multi/cmake" "$dst/lib/cmake"

copy() { mkdir -p "$dst/$(dirname "$2")"; cp -a "$1" "$dst/$2"; }

# The headers of Eigen and Boost that hmoe's headers, tests and examples include, found by the preprocessor with
# the GPU machine's instruction set (Eigen picks its AVX-512 files by it); all of Boost.Asio besides, in case the
# device's newer g++ takes another branch inside it. The whole of both would not fit the 64 MiB carry limit.
probe=$(mktemp --suffix=.cpp)
cat >"$probe" <<'CPP'
#include <hmoe/gpu.hpp>
#include <hmoe/pipeline/run_lanes.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>
int main() {}
CPP
needed=$(g++ -std=c++20 -march=sapphirerapids -M -I"$root/include" -I/usr/include/eigen3 "$probe" | tr ' \\' '\n\n' |
         grep -E '^/usr/include/(eigen3|boost)/' | sort -u)
rm -f "$probe"
for h in $needed; do copy "$h" "include/${h#/usr/include/}"; done
copy /usr/include/boost/asio include/boost/asio
copy /usr/share/eigen3 share/eigen3
# xsimd and xtl (hmoe::hmoe links xsimd; Debian's xsimd config names xtl).
copy /usr/include/xsimd include/xsimd
copy /usr/include/xtl include/xtl
copy /usr/$multi/cmake/xsimd $multi/cmake/xsimd
copy /usr/share/cmake/xtl share/cmake/xtl
# doctest: its targets file hard-codes /usr; make it relative (lib/cmake/doctest → three levels up).
copy /usr/include/doctest include/doctest
copy /usr/lib/cmake/doctest lib/cmake/doctest
sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$dst/lib/cmake/doctest/doctestTargets.cmake"
# Boost's package files (the headers came with the list above) and what Boost::headers's version check reads.
for d in /usr/$multi/cmake/Boost-* /usr/$multi/cmake/boost_headers-* /usr/$multi/cmake/BoostDetectToolset-*; do
  copy "$d" "$multi/cmake/$(basename "$d")"
done
cp -a /usr/include/boost/version.hpp "$dst/include/boost/"
cp -a /usr/include/boost/config "$dst/include/boost/" && cp -a /usr/include/boost/config.hpp "$dst/include/boost/"

grep -qxF '/.carry/' "$root/.gitignore" || echo '/.carry/' >>"$root/.gitignore"
du -sh "$dst"
