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

# Eigen 3 (headers + config; its targets file finds the prefix three levels up).
copy /usr/include/eigen3 include/eigen3
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
# Boost: the package files and only the headers the hmoe headers include (none today besides what
# Boost::headers's own version check reads); Boost.JSON tests are not part of the GPU build.
for d in /usr/$multi/cmake/Boost-* /usr/$multi/cmake/boost_headers-* /usr/$multi/cmake/BoostDetectToolset-*; do
  copy "$d" "$multi/cmake/$(basename "$d")"
done
mkdir -p "$dst/include/boost"
cp -a /usr/include/boost/version.hpp "$dst/include/boost/"
cp -a /usr/include/boost/config "$dst/include/boost/" && cp -a /usr/include/boost/config.hpp "$dst/include/boost/"

grep -qxF '/.carry/' "$root/.gitignore" || echo '/.carry/' >>"$root/.gitignore"
du -sh "$dst"
