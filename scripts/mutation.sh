#!/usr/bin/env bash
# Mutation testing of the handoff protocol: plants each protocol mutant
# (allocator/internal/handoff/mutant.h, selected by HANDOFF_MUTANT=<name> in a
# build with HANDOFF_TEST_HOOKS) and runs the suite's checks against it, in a
# stated order, until one catches it. A check catches a mutant when it exits
# nonzero or prints a sanitizer report; before any mutant, every check must
# pass on the real code (the baseline), or a "catch" would mean nothing.
#
#   scripts/mutation.sh                          every mutant, build/asan; exit 1 unless all caught
#   scripts/mutation.sh --mutants "pin_store_release claim_scan_unpinned"
#   scripts/mutation.sh --baseline               only the baseline: every check passes unmutated
#   scripts/mutation.sh --skip-baseline --mutants X   X only, trusting an earlier baseline (CTest)
#   scripts/mutation.sh --build-dir build/tsan --report-only --table papers/handoff.md
#   options: --build-dir DIR (default build/asan)  --seconds S (per stress run, default 2)
#            --seeds N (stress seeds per check, default 3)  --table FILE (write the table
#            between the mutation-table markers of FILE)  --report-only (exit 0 even when a
#            mutant survives: the tsan variant)  --list (print the mutant names)
#
# Exit status: 0 when every mutant was caught (or --report-only), 1 when one
# survived or the baseline failed, 2 on bad usage.
set -uo pipefail
cd "$(dirname "$0")/.."

# name | what the mutant breaks | the checks to try, in order
mutants_table() {
  cat <<'EOF'
limbo_one_advance|S4 frees after one epoch advance, not two|alloc heap relacy
reclaim_without_generation|R3 re-claims the last block without its generation check|alloc heap unit_reclaim
claim_scan_unpinned|the claim scan (A1..A7) runs without a pin|alloc heap relacy
sweeper_walk_unpinned|the concurrent sweeper's registry walk (S1) runs without a pin|alloc heap
retire_push_before_unlink|S2 pushes to limbo (and tags) before unlinking the slot|alloc heap
advance_skips_participant|try_advance (S3) skips the first participant|alloc heap relacy
claim_unpin_before_cas|the claim scan unpins after the state load, before the CAS|alloc heap
eager_sweep_accepts_owned|the eager sweep also claims OWNED blocks|alloc heap
pin_store_release|the pin store (A1) is release instead of seq_cst|relacy alloc heap
registry_load_relaxed|the registry loads (A2) are relaxed instead of seq_cst|relacy alloc heap
limbo_tag_before_unlink|S2 reads the limbo tag before the unlink|relacy alloc heap
find_cell_unprotected|find_cell / find_object read a block header without pin or state check|lookup alloc heap
sweeper_ignores_pause|the sweeper neither stops its walk nor waits on pause() (stopped world)|heap unit_pause alloc
detach_keeps_record|a detaching thread keeps its epoch record registered|alloc heap unit_epoch
unswept_count_sub_twice|a lazy claim takes two off the directory's UNSWEPT count (finish_lazy_sweep skips blocks)|unit_unswept
unswept_count_misses_add|a lazy sweep begin does not count its UNSWEPT blocks (finish_lazy_sweep skips them)|unit_unswept
EOF
}

build=build/asan
seconds=2
seeds=3
table=""
report_only=0
baseline_only=0
skip_baseline=0
selected=""
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --table) table="$2"; shift 2 ;;
    --mutants) selected="$2"; shift 2 ;;
    --report-only) report_only=1; shift ;;
    --baseline) baseline_only=1; shift ;;
    --skip-baseline) skip_baseline=1; shift ;;
    --list) mutants_table | cut -d'|' -f1; exit 0 ;;
    -h|--help) usage 0 ;;
    *) echo "mutation.sh: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
[[ "$seeds" =~ ^[0-9]+$ ]] || { echo "mutation.sh: --seeds expects a whole number" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "mutation.sh: --seconds expects a number" >&2; exit 2; }
if [ -n "$selected" ]; then
  for m in $selected; do
    mutants_table | cut -d'|' -f1 | grep -x -- "$m" >/dev/null || { echo "mutation.sh: no mutant named '$m'" >&2; exit 2; }
  done
fi

sanitizer=none
grep -q '^HANDOFF_SANITIZER:STRING=address' "$build/CMakeCache.txt" 2>/dev/null && sanitizer=asan
grep -q '^HANDOFF_SANITIZER:STRING=thread' "$build/CMakeCache.txt" 2>/dev/null && sanitizer=tsan
grep -q '^HANDOFF_TEST_HOOKS:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null ||
  { echo "mutation.sh: $build is not a build with HANDOFF_TEST_HOOKS=ON (the debug, asan or tsan preset)" >&2; exit 2; }

# The same options as the stress CTests (stress/CMakeLists.txt).
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=0:strict_string_checks=1:exitcode=66"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:history_size=4:exitcode=66"

stress="$build/stress/stress_handoff"
relacy="$build/allocator/tests/relacy/epoch_relacy"
unit="$build/allocator/tests/handoff_allocator_unit_tests"
api="$build/allocator/tests/handoff_allocator_api_tests"
heap_tests="$build/collector/tests/handoff_heap_tests"

# check_runs CHECK: one command line per run of that check.
check_runs() {
  local s
  case "$1" in
    alloc) for s in $(seq 1 "$seeds"); do echo "$stress --mode allocator --threads 2 --seconds $seconds --seed $s"; done ;;
    heap) for s in $(seq 1 "$seeds"); do echo "$stress --mode heap --threads 2 --seconds $seconds --seed $s"; done ;;
    relacy) echo "$relacy 200000" ;;
    lookup) echo "$api --gtest_filter=AllocatorFindCell.StaleLookupsBesideAFreerNeverReadAFreedBlock"
            echo "$heap_tests --gtest_filter=Handles.StaleRootsBesideTheSweeperNeverReadAFreedBlock" ;;
    unit_reclaim) echo "$unit --gtest_filter=LastBlockReclaim.*" ;;
    unit_epoch) echo "$unit --gtest_filter=Epoch*:Limbo*" ;;
    unit_pause) echo "$api --gtest_filter=ConcurrentSweeper.PauseLeavesNoBlockSweepingAndResumeContinues" ;;
    unit_unswept) echo "$unit --gtest_filter=DirectoryTest.FinishLazySweepLeavesNoBlockUnsweptWhateverWasTakenBefore" ;;
  esac
}
check_label() {
  case "$1" in
    alloc) echo "stress_handoff --mode allocator" ;;
    heap) echo "stress_handoff --mode heap" ;;
    relacy) echo "relacy.epoch (Relacy)" ;;
    lookup) echo "stale-lookup tests (gtest)" ;;
    unit_reclaim) echo "LastBlockReclaim.* (gtest)" ;;
    unit_epoch) echo "Epoch*/Limbo* (gtest)" ;;
    unit_pause) echo "ConcurrentSweeper.PauseLeavesNoBlockSweeping... (gtest)" ;;
    unit_unswept) echo "DirectoryTest.FinishLazySweepLeavesNoBlockUnswept... (gtest)" ;;
  esac
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# run_one COMMAND MUTANT: sets rc, took_ms and what (the report's kind).
run_one() {
  local start cmd="$1" m="$2"
  start=$(date +%s%N)
  # "none" selects the real code (the Relacy harness then checks only it).
  # A subshell, so that the shell's own "Aborted" note goes nowhere.
  (HANDOFF_MUTANT="$m" timeout 120 $cmd >"$log" 2>&1; exit $?) 2>/dev/null
  rc=$?
  took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  what=""
  if grep -q "ERROR: AddressSanitizer" "$log"; then
    what="ASan: $(sed -n 's/.*ERROR: AddressSanitizer: \([A-Za-z-]*\).*/\1/p' "$log" | head -1)"
  elif grep -q "WARNING: ThreadSanitizer" "$log"; then
    what="TSan: $(sed -n 's/.*WARNING: ThreadSanitizer: \([a-z -]*\).*/\1/p' "$log" | head -1 | sed 's/ *$//')"
  elif grep -q "runtime error:" "$log"; then
    what="UBSan"
  elif grep -q "REPORTED" "$log"; then
    what="Relacy: $(grep -Eom1 'DATA RACE|ASSERT|[A-Z ]+ \(' "$log" | tr -d '(' | sed 's/ *$//' | tr 'A-Z' 'a-z')"
  elif grep -q "VIOLATION" "$log"; then
    what="program: $(grep -m1 'VIOLATION' "$log" | sed 's/.*VIOLATION: //' | cut -c1-70)"
  elif grep -q "internal check failed\|check failed" "$log"; then
    what="check: $(grep -m1 'check failed' "$log" | sed 's/.*check failed: .* (\(.*\))$/\1/' | cut -c1-80)"
  elif grep -q "\[  FAILED  \]" "$log"; then
    what="gtest: $(grep -m1 '\[  FAILED  \]' "$log" | sed 's/.*\] //' | cut -d' ' -f1)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    what="timeout"
  elif [ "$rc" -ne 0 ]; then
    what="exit $rc"
  fi
}

failed=0
echo "=== baseline: every check passes on the real code ($build, $sanitizer)"
checks_needed=$(mutants_table | cut -d'|' -f3 | tr ' ' '\n' | sort -u)
if [ -n "$selected" ]; then
  checks_needed=$(for m in $selected; do mutants_table | grep "^$m|" | cut -d'|' -f3; done | tr ' ' '\n' | sort -u)
fi
[ "$skip_baseline" -eq 1 ] && checks_needed="" && echo "  (skipped: --skip-baseline)"
for check in $checks_needed; do
  while read -r cmd; do
    exe=${cmd%% *}
    [ -x "$exe" ] || { echo "  $(check_label "$check"): $exe is missing: skipped"; continue; }
    run_one "$cmd" none
    if [ "$rc" -ne 0 ] || [ -n "$what" ]; then
      echo "  BASELINE FAILED: $cmd (exit $rc, ${what:-no report}); the log:"; tail -20 "$log"; failed=1
    fi
  done < <(check_runs "$check")
  echo "  $(check_label "$check"): passes"
done
[ "$failed" -eq 0 ] || { echo "mutation.sh: the baseline failed, so no catch would mean anything"; exit 1; }
[ "$baseline_only" -eq 1 ] && exit 0

results=$(mktemp)
trap 'rm -f "$log" "$results"' EXIT
survivors=0
while IFS='|' read -r m description checks; do
  if [ -n "$selected" ] && ! grep -qw -- "$m" <<<"$selected"; then continue; fi
  caught=""
  total_ms=0
  for check in $checks; do
    while read -r cmd; do
      exe=${cmd%% *}
      [ -x "$exe" ] || continue
      run_one "$cmd" "$m"
      total_ms=$((total_ms + took_ms))
      if [ "$rc" -ne 0 ] || [ -n "$what" ]; then
        caught="$check"; break
      fi
    done < <(check_runs "$check")
    [ -n "$caught" ] && break
  done
  if [ -n "$caught" ]; then
    seed=$(grep -Eo -- '--seed [0-9]+' <<<"$cmd" | cut -d' ' -f2)
    printf '%-28s caught by %s%s after %d ms (%s)\n' "$m" "$(check_label "$caught")" "${seed:+ seed $seed}" "$took_ms" "${what:-exit $rc}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$description" "$(check_label "$caught")${seed:+, seed $seed}" \
      "$took_ms" "$total_ms" "${what:-exit $rc}" "$checks" >>"$results"
  else
    printf '%-28s NOT CAUGHT (checks: %s; %d ms in all)\n' "$m" "$checks" "$total_ms"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$description" "-" "-" "$total_ms" "not caught" "$checks" >>"$results"
    survivors=$((survivors + 1))
  fi
done < <(mutants_table)

if [ -n "$table" ]; then
  export MT_RESULTS="$results" MT_TABLE="$table" MT_SAN="$sanitizer" MT_SECONDS="$seconds" MT_SEEDS="$seeds"
  export MT_DATE="$(date -u +%Y-%m-%d)"
  export MT_COMMIT="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- . ':!papers' 2>/dev/null || echo ' with uncommitted changes')"
  export MT_CPU="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
  python3 - <<'PY' || exit 1
import os
env = os.environ
san = env["MT_SAN"]
rows = [l.rstrip("\n").split("\t") for l in open(env["MT_RESULTS"]) if l.strip()]
caught = sum(1 for r in rows if r[2] != "-")
labels = {"alloc": "A", "heap": "H", "relacy": "R", "lookup": "L", "unit_reclaim": "U", "unit_epoch": "U"}
out = []
w = out.append
w(f"Generated by `scripts/mutation.sh --build-dir build/{san} --table papers/handoff.md` on {env['MT_DATE']}")
w(f"(commit {env['MT_COMMIT']}, {env['MT_CPU']}; the {san} preset; each stress run {env['MT_SECONDS']} s with 2")
w(f"threads, up to {env['MT_SEEDS']} seeds per check; a check catches a mutant when it exits nonzero or prints a")
w("sanitizer report). *Time* is the catching run's own time; *in all* adds the runs before it.")
w("")
w("| mutant | what it breaks | caught by | time | in all | report |")
w("|---|---|---|---|---|---|")
for m, desc, by, took, total, what, checks in rows:
    t = "-" if took == "-" else f"{int(took) / 1000:.2f} s"
    w(f"| `{m}` | {desc} | {by} | {t} | {int(total) / 1000:.2f} s | {what.replace('|', '/')} |")
w("")
by_tool = {}
for r in rows:
    tool = r[5].split(":")[0] if r[2] != "-" else "not caught"
    by_tool[tool] = by_tool.get(tool, 0) + 1
w(f"Caught: **{caught} of {len(rows)}**. By the kind of report: " +
  ", ".join(f"{k} {v}" for k, v in sorted(by_tool.items())) + ".")
text = "\n".join(out)
begin, end = f"<!-- mutation-table:{san}:begin -->", f"<!-- mutation-table:{san}:end -->"
path = env["MT_TABLE"]
doc = open(path).read()
if begin in doc and end in doc:
    doc = doc[: doc.index(begin) + len(begin)] + "\n" + text + "\n" + doc[doc.index(end):]
else:
    doc = doc.rstrip("\n") + "\n\n" + begin + "\n" + text + "\n" + end + "\n"
open(path, "w").write(doc)
PY
  echo "table written to $table"
fi

echo "mutation.sh: $(( $(wc -l <"$results") - survivors )) of $(wc -l <"$results") mutants caught ($sanitizer)"
[ "$report_only" -eq 1 ] && exit 0
[ "$survivors" -eq 0 ]
