#!/usr/bin/env bash
# The first command: from a fresh Debian 12 machine to a running main job.
# Installs missing packages, configures and builds the release preset, runs
# three short stress runs (the allocator alone, the handoff protocol with the
# concurrent sweeper, the collector under churn) and the quick evaluation
# against the malloc baselines and Boehm GC. A few minutes on 2 cores, most
# of it the build.
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

echo "=== stress: the garbage-collected heap, mixed sizes and rooted survivors with checksums (3 s) ==="
build/release/stress/stress_churn --threads 2 --seconds 3 --seed 1

echo "=== benchmark: workloads against malloc baselines and Boehm GC (quick mode) ==="
python3 bench/run_eval.py --quick --build-dir build/release --out-dir build/release/eval-quick

echo "=== done: report in build/release/eval-quick/evaluation.md; the full evaluation is 'python3 bench/run_eval.py' (see README) ==="
