#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds consumers of
# the allocator and of the collector, static and shared, with
# find_package(handoff) and with pkg-config, and checks what the installed
# package promises:
#   - only the public headers are installed (none of allocator/internal/,
#     and by name: chaos, platform, epoch, limbo, mutant, atomic, block_pool,
#     large_object_space, directory),
#     and together they compile with nothing but the installed tree;
#   - clean link lines: no empty $<LINK_ONLY:>, no include directory twice;
#   - shared libraries with a soname, used by the shared consumers (and not
#     by the static ones);
#   - HANDOFF_SHOW_STATS=1 prints the heap's stats when it is destroyed;
#   - <handoff/config.h> refuses a HANDOFF_TEST_HOOKS mismatch, at compile
#     time (a define the library was built without) and at link time
#     (headers of another build).
# Usage: run.sh BUILD_DIR SCRATCH_DIR
set -euo pipefail
build="$1"; scratch="$2"; here="$(cd "$(dirname "$0")" && pwd)"
fail() { echo "install test: $*" >&2; exit 1; }
rm -rf "$scratch"; mkdir -p "$scratch"
prefix="$scratch/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(ls -d "$prefix"/lib*/pkgconfig | head -1)")
export PKG_CONFIG_PATH="$libdir/pkgconfig"

# Public headers only: nothing from allocator/internal/, and the installed
# headers compile on their own (one translation unit including them all).
# The named list holds even if one of them moves back under include/ (where
# the directory loop below would no longer see it).
src_root="$(cd "$here/../.." && pwd)"
never_installed="chaos.h platform.h epoch.h limbo.h mutant.h atomic.h block_pool.h large_object_space.h directory.h"
for name in $never_installed; do
  [ -e "$src_root/allocator/internal/handoff/$name" ] || fail "handoff/$name is no longer under allocator/internal/"
  if [ -e "$prefix/include/handoff/$name" ]; then fail "internal header handoff/$name was installed"; fi
done
for internal in "$src_root"/allocator/internal/handoff/*.h; do
  if [ -e "$prefix/include/handoff/$(basename "$internal")" ]; then
    fail "internal header handoff/$(basename "$internal") was installed"
  fi
done
for header in "$prefix"/include/handoff/*.h; do echo "#include <handoff/$(basename "$header")>"; done \
  >"$scratch/all_headers.cpp"
c++ -std=c++20 -fsyntax-only -I"$prefix/include" "$scratch/all_headers.cpp" ||
  fail "the installed headers do not compile on their own"

# Exported CMake targets.
targets=$(cat "$libdir"/cmake/handoff/handoffTargets*.cmake)
if grep -q 'LINK_ONLY:>' <<<"$targets"; then fail "exported targets carry an empty \$<LINK_ONLY:>"; fi
while IFS= read -r line; do
  dirs=$(sed -E 's/.*INTERFACE_INCLUDE_DIRECTORIES "([^"]*)".*/\1/' <<<"$line" | tr ';' '\n')
  if [ "$(sort <<<"$dirs" | uniq -d)" != "" ]; then fail "an include directory is listed twice: $line"; fi
done < <(grep 'INTERFACE_INCLUDE_DIRECTORIES' <<<"$targets")

# Shared libraries: versioned file, soname, unversioned link name.
shared=0
if ls "$libdir"/libhandoff_collector.so >/dev/null 2>&1; then
  shared=1
  for lib in allocator collector; do
    soname=$(readelf -d "$libdir/libhandoff_$lib.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
    [[ "$soname" =~ ^libhandoff_$lib\.so\.[0-9]+ ]] || fail "libhandoff_$lib.so has soname '$soname'"
    [ -e "$libdir/$soname" ] || fail "$soname is not installed"
  done
  nm -DC --defined-only "$libdir/libhandoff_allocator.so" | grep -c ' handoff::detail::block_range_map$' >/dev/null ||
    fail "libhandoff_allocator.so does not export block_range_map"
fi
needs() { readelf -d "$1" | grep -c "NEEDED.*libhandoff_$2" >/dev/null; }

# find_package.
cmake -S "$here" -B "$scratch/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
bin="$scratch/cmake-build"
"$bin/consumer"
"$bin/heap_consumer"
if needs "$bin/heap_consumer" collector; then fail "the static consumer needs the shared library"; fi
if [ $shared = 1 ]; then
  "$bin/consumer_shared"
  "$bin/heap_consumer_shared"
  needs "$bin/heap_consumer_shared" collector || fail "heap_consumer_shared does not use libhandoff_collector.so"
  needs "$bin/heap_consumer_shared" allocator || fail "heap_consumer_shared does not use libhandoff_allocator.so"
fi

# pkg-config: a clean line, then shared (what -l finds first) and static.
for pc in handoff-allocator handoff-collector; do
  line=$(pkg-config --cflags --libs "$pc")
  if grep -q '\$<' <<<"$line"; then fail "$pc: a generator expression in '$line'"; fi
  if [ "$(tr ' ' '\n' <<<"$line" | grep -v '^$' | sort | uniq -d)" != "" ]; then
    fail "$pc: a flag repeated in '$line'"
  fi
done
cflags=$(pkg-config --cflags handoff-collector)
lflags=$(pkg-config --libs-only-L handoff-collector)
llibs=$(pkg-config --libs-only-l handoff-collector)
lother=$(pkg-config --libs-only-other handoff-collector)
# shellcheck disable=SC2086
c++ "$here/consumer.cpp" $(pkg-config --cflags --libs handoff-allocator) -Wl,-rpath,"$libdir" -o "$scratch/pc-consumer"
"$scratch/pc-consumer"
# shellcheck disable=SC2086
c++ "$here/heap_consumer.cpp" $cflags $lflags -Wl,-Bstatic $llibs -Wl,-Bdynamic $lother -o "$scratch/pc-heap-static"
if needs "$scratch/pc-heap-static" collector; then fail "pc-heap-static needs the shared library"; fi
"$scratch/pc-heap-static"
if [ $shared = 1 ]; then
  # shellcheck disable=SC2086
  c++ "$here/heap_consumer.cpp" $(pkg-config --cflags --libs handoff-collector) -Wl,-rpath,"$libdir" \
    -o "$scratch/pc-heap-shared"
  needs "$scratch/pc-heap-shared" collector || fail "pc-heap-shared does not use libhandoff_collector.so"
  "$scratch/pc-heap-shared"
fi

# HANDOFF_SHOW_STATS=1: the stats on stderr at destruction.
stats=$(HANDOFF_SHOW_STATS=1 "$bin/heap_consumer" 2>&1 >/dev/null)
grep -Eq '^handoff heap: [0-9]+ collections \([0-9]+ eden' <<<"$stats" || fail "HANDOFF_SHOW_STATS=1 printed: $stats"
quiet=$("$bin/heap_consumer" 2>&1 >/dev/null)
[ -z "$quiet" ] || fail "without HANDOFF_SHOW_STATS the heap printed: $quiet"

# The configuration check (<handoff/config.h>).
hooks=$(sed -n 's/^#define HANDOFF_CONFIG_TEST_HOOKS \([01]\)$/\1/p' "$prefix/include/handoff/config.h")
[ -n "$hooks" ] || fail "config.h does not record HANDOFF_TEST_HOOKS"
if [ "$hooks" = 0 ]; then
  # shellcheck disable=SC2086
  if c++ -DHANDOFF_TEST_HOOKS=1 -c "$here/heap_consumer.cpp" $cflags -o "$scratch/mismatch.o" 2>"$scratch/mismatch.log"; then
    fail "a consumer defining HANDOFF_TEST_HOOKS compiled against a library built without it"
  fi
  grep -q "this handoff was built without it" "$scratch/mismatch.log" || fail "unexpected error: $(cat "$scratch/mismatch.log")"
fi
# Headers of the other configuration, this library: the link refuses.
other=$((1 - hooks))
mkdir -p "$scratch/other-include"
cp -r "$prefix/include/handoff" "$scratch/other-include/"
sed -i "s/^#define HANDOFF_CONFIG_TEST_HOOKS $hooks\$/#define HANDOFF_CONFIG_TEST_HOOKS $other/" \
  "$scratch/other-include/handoff/config.h"
# shellcheck disable=SC2086
if c++ "$here/consumer.cpp" -std=c++20 -I"$scratch/other-include" $lflags -Wl,-Bstatic -lhandoff_allocator \
     -Wl,-Bdynamic -pthread -o "$scratch/mismatch" 2>"$scratch/mismatch-link.log"; then
  fail "headers built with HANDOFF_TEST_HOOKS=$other linked against a library built with $hooks"
fi
grep -q "undefined reference to .handoff_library_built_with" "$scratch/mismatch-link.log" ||
  fail "unexpected link error: $(cat "$scratch/mismatch-link.log")"

echo "install test: find_package and pkg-config consumers (static$([ $shared = 1 ] && echo ' and shared')) built and ran; stats and configuration checks passed"
