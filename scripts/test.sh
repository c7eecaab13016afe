#!/usr/bin/env bash
# The test command: installs missing packages, then configures, builds and
# runs every test under each preset (release, debug, asan, tsan by default).
#   scripts/test.sh                 all four presets
#   scripts/test.sh release tsan    only these
set -euo pipefail
cd "$(dirname "$0")/.."

presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(release debug asan tsan)

scripts/install-deps.sh
for preset in "${presets[@]}"; do
  echo "=== preset ${preset}: configure, build, test ==="
  start=$(date +%s)
  cmake --workflow --preset "${preset}"
  echo "=== preset ${preset}: passed in $(( $(date +%s) - start )) s ==="
done
echo "all presets passed: ${presets[*]}"
