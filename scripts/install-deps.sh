#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build needs and is missing.
# Safe to run again: packages already present are skipped, and when nothing
# is missing it changes nothing and needs no root.
set -euo pipefail

packages=(
  build-essential   # g++ and make
  cmake             # build system (3.25 on Debian 12)
  ninja-build       # generator used by CMakePresets.json
  pkg-config        # finds jemalloc, tcmalloc and bdw-gc
  python3           # benchmark driver
  python3-matplotlib  # plots in papers/evaluation.md (bench/run_eval.py)
  spin              # model checker for papers/handoff.pml
  relacy-dev        # relaxed-memory checker for the epoch code (allocator/tests/relacy)
  libgtest-dev      # GoogleTest: unit tests
  libgmock-dev      # GoogleMock, shipped beside GoogleTest
  libbenchmark-dev  # Google Benchmark: benchmark harness
  libtbb-dev        # Intel TBB scalable allocator (tbbmalloc) baseline
  libjemalloc-dev   # jemalloc baseline
  libmimalloc-dev   # mimalloc baseline
  libgoogle-perftools-dev  # tcmalloc baseline
  libgc-dev         # Boehm-Demers-Weiser GC baseline; gc.h for handoff's libgc (compat/)
  mmv               # libgc clients run on handoff's libgc (compat/tests)
  chase
  w3m
  poke              # libgc client (libpoke) run on handoff's libgc
  guile-3.0         # libgc client with kinds and mark procedures (compat/tests)
  time              # GNU time: peak RSS of the libgc comparison (bench/libgc/compare.py)
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
