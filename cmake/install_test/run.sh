#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds a consumer
# twice: with find_package(handoff) and with pkg-config. Usage:
#   run.sh BUILD_DIR SCRATCH_DIR
set -euo pipefail
build="$1"; scratch="$2"; here="$(cd "$(dirname "$0")" && pwd)"
rm -rf "$scratch"; mkdir -p "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
cmake -S "$here" -B "$scratch/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
"$scratch/cmake-build/consumer"
libdir=$(ls -d "$scratch"/prefix/lib*/pkgconfig | head -1)
flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs handoff-allocator)
# shellcheck disable=SC2086
c++ "$here/consumer.cpp" $flags -o "$scratch/pkgconfig-consumer"
"$scratch/pkgconfig-consumer"
echo "install test: find_package and pkg-config consumers both built and ran"
