#!/usr/bin/env bash
# The negative control for the grace period, both directions:
#   off: stress_handoff --no-grace must be caught (an AddressSanitizer report
#        or the directory's block validity check) in at least 19 of 20 runs
#        of at most SECONDS each;
#   on:  the same runs with the grace period on must all pass, with no report.
# usage: negative_control.sh STRESS_HANDOFF [RUNS=20] [SECONDS=10] [ON_SECONDS=1]
set -uo pipefail
exe="${1:?usage: negative_control.sh STRESS_HANDOFF [RUNS] [SECONDS] [ON_SECONDS]}"
runs="${2:-20}"
seconds="${3:-10}"
on_seconds="${4:-1}"
need=$(( (runs * 19 + 19) / 20 ))  # 19 of 20, rounded up
log=$(mktemp)
trap 'rm -f "$log"' EXIT
report='ERROR: AddressSanitizer|internal check failed'

caught=0
for seed in $(seq 1 "$runs"); do
  start=$(date +%s%N)
  timeout $(( seconds + 30 )) "$exe" --mode allocator --threads 2 --seconds "$seconds" --seed "$seed" --no-grace >"$log" 2>&1
  rc=$?
  took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  if grep -Eq "$report" "$log"; then
    caught=$((caught + 1))
    what=$(grep -Eom1 'use-after-poison|heap-use-after-free|claimed a block of another directory|[a-z-]+-after-[a-z]+' "$log")
    printf 'grace off, seed %2d: caught (%s) after %d ms\n' "$seed" "${what:-report}" "$took_ms"
  else
    printf 'grace off, seed %2d: NOT caught (exit %d after %d ms)\n' "$seed" "$rc" "$took_ms"
  fi
done
echo "grace off: caught in ${caught} of ${runs} runs (need ${need})"

clean=0
for seed in $(seq 1 "$runs"); do
  "$exe" --mode allocator --threads 2 --seconds "$on_seconds" --seed "$seed" >"$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && ! grep -Eq "$report" "$log"; then
    clean=$((clean + 1))
  else
    echo "grace on, seed ${seed}: FAILED (exit ${rc})"; tail -20 "$log"
  fi
done
echo "grace on: ${clean} of ${runs} runs clean (need all)"

[ "$caught" -ge "$need" ] && [ "$clean" -eq "$runs" ]
