#!/usr/bin/env bash
# The first command: from a fresh Debian 12 machine to a running main job.
# Installs missing packages, configures and builds the release preset, runs
# two short stress runs (the allocator alone, then the handoff protocol with
# the concurrent sweeper) and the quick allocation benchmark against the
# malloc baselines. A few minutes on 2 cores, most of it the build.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "=== configure + build (preset release) ==="
cmake --preset release
cmake --build --preset release

echo "=== stress: concurrent allocation, dropping and sweeping (5 s) ==="
build/release/stress/stress_alloc --threads 2 --seconds 5 --seed 1

echo "=== stress: the cached-block race, with the concurrent sweeper retiring and freeing (3 s) ==="
build/release/stress/stress_handoff --threads 2 --seconds 3 --seed 1

echo "=== benchmark: allocate N then reclaim, against malloc baselines (quick mode) ==="
python3 bench/run_alloc_bench.py --quick --build-dir build/release --out build/release/alloc_reclaim_quick.json

echo "=== done: the full benchmark is 'python3 bench/run_alloc_bench.py' (see README) ==="
