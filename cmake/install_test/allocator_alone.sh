#!/usr/bin/env bash
# The allocator layer builds and installs alone: installs only the
# "allocator" component of the build tree into a scratch prefix, checks that
# nothing of the collector came along (library, headers, CMake targets,
# pkg-config file), then builds a consumer with find_package(handoff
# COMPONENTS allocator), checks handoff-allocator.pc resolves, and runs it:
# it allocates, drops every cell and lets the concurrent sweeper sweep,
# retire and free the blocks (allocator_alone/sweeper_consumer.cpp).
# Usage: allocator_alone.sh BUILD_DIR SCRATCH_DIR
set -euo pipefail
build="$1"; scratch="$2"; here="$(cd "$(dirname "$0")" && pwd)"
fail() { echo "allocator-alone test: $*" >&2; exit 1; }
rm -rf "$scratch"; mkdir -p "$scratch"
prefix="$scratch/prefix"
cmake --install "$build" --prefix "$prefix" --component allocator >/dev/null
libdir=$(dirname "$(ls -d "$prefix"/lib*/pkgconfig | head -1)")

# Nothing of the collector.
if ls "$libdir"/libhandoff_collector* >/dev/null 2>&1; then fail "the collector's library was installed"; fi
for header in "$here"/../../collector/include/handoff/*.h; do
  [ -e "$prefix/include/handoff/$(basename "$header")" ] && fail "collector header $(basename "$header") was installed"
done
[ -e "$libdir/pkgconfig/handoff-collector.pc" ] && fail "handoff-collector.pc was installed"
[ -e "$prefix/include/handoff/concurrent_sweeper.h" ] || fail "the allocator's concurrent_sweeper.h is missing"

# find_package(handoff COMPONENTS allocator).
cmake -S "$here/allocator_alone" -B "$scratch/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
"$scratch/cmake-build/sweeper_consumer"
if readelf -d "$scratch/cmake-build/sweeper_consumer" | grep -q "NEEDED.*libhandoff_collector"; then
  fail "the consumer needs the collector's library"
fi
# pkg-config: handoff-allocator.pc resolves on its own (no collector
# package required); install.consumer builds with it already, so no second
# compile here.
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists handoff-allocator ||
  fail "pkg-config cannot resolve handoff-allocator from the allocator component alone"
echo "allocator-alone test: the allocator component installed alone; its consumers built and reclaimed with the concurrent sweeper"
