#!/usr/bin/env bash
# Profiles of the workloads behind missed targets, for papers/evaluation.md.
#
# Uses perf with the cpu-clock software event (this VM exposes no hardware
# counters) and writes, under papers/results/profile/:
#   <name>.top.txt       perf report: the hottest symbols (flat, by DSO)
#   <name>.annotate.txt  the hottest instructions of the hottest symbol
#   commit.txt           the commit profiled (and "dirty" when allocator/,
#                        collector/ or bench/ had uncommitted changes)
# for gcbench on handoff and on Boehm GC (3 runs each), binary-trees (depth
# 17), larson and prodcons (2 threads) and 16 KiB large objects
# (bench_micro_handoff large/) on handoff. bench/eval_report.py quotes these files.
#
# usage: bench/profile.sh [BUILD_DIR]     (default: build/release)
set -eu  # no pipefail: `head` closes the pipes early on purpose
repo="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$repo/build/release}"
out="$repo/papers/results/profile"
command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 2; }
mkdir -p "$out"
{
  git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown
  git -C "$repo" diff --quiet HEAD -- allocator collector bench 2>/dev/null || echo dirty
} >"$out/commit.txt"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

profile() {  # name symbol-to-annotate command...
  local name="$1" symbol="$2"
  shift 2
  perf record -q -e cpu-clock -F 10000 -o "$tmp/$name.data" -- "$@" >/dev/null 2>&1
  {
    echo "\$ perf record -e cpu-clock -F 10000 -- $(echo "$*" | sed "s|$repo/||g; s|three |(3 runs) |")"
    echo "\$ perf report --no-children --sort dso,symbol --stdio | head"
    perf report -i "$tmp/$name.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
      grep -v '^#' | grep '%' | head -20 | cut -c1-140
  } >"$out/$name.top.txt"
  if [ "$symbol" = "@top" ]; then  # the hottest symbol, whatever its (long) name
    {
      echo "\$ perf annotate --stdio (the hottest symbol; hottest instructions, percent of its samples, in address order)"
      perf annotate -i "$tmp/$name.data" --stdio 2>/dev/null | awk '/Percent.*Source/{n++} n==1' |
        grep -E '^\s+[0-9]+\.[0-9]+ :' | awk '$1 >= 0.5' | head -12 | cut -c1-120
    } >"$out/$name.annotate.txt"
  elif [ -n "$symbol" ]; then
    {
      echo "\$ perf annotate --stdio -s $symbol (hottest instructions, percent of the symbol's samples)"
      perf annotate -i "$tmp/$name.data" --stdio -s "$symbol" 2>/dev/null |
        grep -E '^\s+[0-9]+\.[0-9]+ :' | sort -rn | head -8 | cut -c1-120
    } >"$out/$name.annotate.txt"
  fi
  echo "wrote $out/$name.*"
}

three() { for _ in 1 2 3; do "$@"; done; }
export -f three
bench="$build/bench"
profile gcbench-handoff handoff::detail::Marker::try_mark \
  bash -c "three $bench/bench_workload_handoff --workload gcbench"
profile binary-trees-handoff handoff::detail::Marker::try_mark \
  "$bench/bench_workload_handoff" --workload binary-trees --depth 17
profile gcbench-boehm "" \
  bash -c "three $bench/bench_workload_boehm --workload gcbench"
profile larson-handoff @top \
  "$bench/bench_workload_handoff" --workload larson --threads 2
profile large-handoff "" \
  "$bench/bench_micro_handoff" --benchmark_min_time=0.3 --benchmark_filter=large/handoff/16384
if command -v strace >/dev/null; then
  {
    echo "\$ strace -c -f bench_micro_handoff --benchmark_min_time=0.05 --benchmark_filter=large/handoff/16384"
    strace -c -f "$bench/bench_micro_handoff" --benchmark_min_time=0.05 \
      --benchmark_filter=large/handoff/16384 2>&1 >/dev/null | grep -E 'calls|mmap|munmap|madvise|^-' | head -8
  } >"$out/large-handoff.strace.txt"
fi
profile prodcons-handoff "" \
  "$bench/bench_workload_handoff" --workload prodcons --threads 2
