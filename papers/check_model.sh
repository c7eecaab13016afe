#!/usr/bin/env bash
# check_model.sh -- model-check the block-handoff protocol (papers/handoff.pml),
# the park/stop handshake (papers/park.pml) and parallel marking's termination
# protocol (papers/termination.pml) with spin, and check that every planted
# mutant of each yields a counterexample.
#
# Runs (each in its own subdirectory of a mktemp -d work directory):
#   model safety    spin -a; pan compiled -DSAFETY -DNOCLAIM; exhaustive search for
#                   assertion violations and invalid end states (deadlocks);
#                   every PROBE:<name> statement of the model must be reached
#                   (so the situations the assertions guard, and the premise of
#                   the LTL property, really occur).
#   model liveness  spin -DLIVENESS -a; pan -a -f -N retire_then_free: the LTL
#                   property [] (retired_b0 -> <> freed_b0) under weak fairness.
#   mutants         spin -DMUTANT_<X> -a; pan -DSAFETY: each must report an error.
# Exit status 0 only if the model verifies (no error, search complete) and every
# mutant fails.  Output: one line per run.
#
# Cost, measured on 2 idle cores: about 35 s wall and 1.9 GB of memory at the
# peak (the safety and liveness searches run side by side; 6.1 M and 7.0 M
# states).  Every search is exhaustive: no -DBITSTATE, no hash compaction;
# the safety search uses -DCOLLAPSE (lossless compression, see below).  Set
# HANDOFF_MODEL_JOBS=1 to run one search at a time (about 60 s, 1.2 GB).
#
# Environment: SPIN (default spin), CC (default cc), HANDOFF_MODEL_JOBS
# (parallel runs, default 2).

set -u

usage() {
  cat <<'EOF'
usage: check_model.sh [--keep] [--help]

Model-checks papers/handoff.pml with spin: safety (assertions, invalid end
states, reachability of the PROBE statements), liveness (LTL retire_then_free
with weak fairness), and each planted mutant (must yield a counterexample).
Prints one line per run; exits 0 only if everything is as expected.

  --keep   keep the work directory (pan sources, outputs, mutant trails) and
           print its path; replay a trail with the command printed for it
  --help   print this text

Environment: SPIN (spin binary), CC (C compiler, default cc),
             HANDOFF_MODEL_JOBS (runs in parallel, default 2).
EOF
}

keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "check_model.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model="$script_dir/handoff.pml"
SPIN=${SPIN:-spin}
CC=${CC:-cc}
jobs_max=${HANDOFF_MODEL_JOBS:-2}

[ -r "$model" ] || { echo "check_model.sh: cannot read $model" >&2; exit 2; }
command -v "$SPIN" >/dev/null 2>&1 || { echo "check_model.sh: spin not found (SPIN=$SPIN)" >&2; exit 2; }
command -v "$CC" >/dev/null 2>&1 || { echo "check_model.sh: C compiler not found (CC=$CC)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/handoff-model.XXXXXX") || exit 2
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  # stop runs still going (only our own background jobs), then remove the work dir
  local pids
  pids=$(jobs -p)
  # shellcheck disable=SC2086  # one pid per word
  [ -n "$pids" ] && kill $pids 2>/dev/null
  wait 2>/dev/null
  if [ "$keep" = 1 ]; then
    echo "work directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work" || exit 2

now() { date +%s.%N; }

# run_one NAME "SPIN_DEFS" "CFLAGS" "PAN_ARGS": builds and runs one search in
# $work/NAME; leaves pan's output in NAME/pan.out and the seconds in NAME/secs.
run_one() {
  local name=$1 defs=$2 cflags=$3 panargs=$4 t0
  mkdir -p "$name" && cd "$name" || return 1
  cp "$model" handoff.pml
  t0=$(now)
  # shellcheck disable=SC2086
  if ! "$SPIN" $defs -a handoff.pml >spin.out 2>&1; then
    echo "spin failed" >pan.out; cat spin.out >>pan.out; return 1
  fi
  # pan.c draws -Wstringop-overflow warnings from gcc; they are harmless.
  # shellcheck disable=SC2086
  if ! "$CC" -O2 -w $cflags -o pan pan.c >cc.out 2>&1; then
    echo "compile failed" >pan.out; cat cc.out >>pan.out; return 1
  fi
  # shellcheck disable=SC2086
  ./pan $panargs >pan.out 2>&1
  if [ -f handoff.pml.trail ]; then
    # replay the (last, shortest) trail to name the property it violates
    # shellcheck disable=SC2086
    "$SPIN" $defs -t handoff.pml >replay.out 2>&1
  fi
  echo "$(now) $t0" | awk '{ printf "%.1f", $1 - $2 }' >secs
}

# The runs.  Depth bounds (-m) are above the depths reached (3.7 M for safety,
# 4.8 M for liveness); a search that hits its bound is reported as incomplete,
# never as a pass.  The safety search is compiled with -DCOLLAPSE (lossless
# state compression: still exhaustive) so that it and the liveness search fit
# in 2 GB together; it costs the safety search about 15% more time.
mutants="NO_GENERATION ADVANCE_UNCHECKED EARLY_FREE NO_PIN SWEEPER_NO_PIN"
declare -A defs cflags panargs
defs[liveness]="-DLIVENESS";  cflags[liveness]="";                           panargs[liveness]="-a -f -m5800000 -N retire_then_free"
defs[safety]="";              cflags[safety]="-DSAFETY -DNOCLAIM -DCOLLAPSE"; panargs[safety]="-m4500000"
for m in $mutants; do
  # -I: after the first error, keep searching for shorter trails (cheap here)
  defs[mutant_$m]="-DMUTANT_$m"; cflags[mutant_$m]="-DSAFETY -DNOCLAIM"; panargs[mutant_$m]="-m5000000 -I"
done
order="liveness safety"
for m in $mutants; do order="$order mutant_$m"; done

# Run them, at most $jobs_max at a time (the longest first).
running=0
for name in $order; do
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n
    running=$((running - 1))
  fi
  ( run_one "$name" "${defs[$name]}" "${cflags[$name]}" "${panargs[$name]}" ) &
  running=$((running + 1))
done
wait

# ------------------------------------------------------------------ verdicts
status=0
field() { grep -m1 -oE "$1" "$2" | grep -oE '[0-9][0-9.e+]*' | head -n1; }

complete() {  # the search was not cut short
  ! grep -qE "max search depth too small|out of memory|pan: reached -DMEMLIM" "$1"
}

# model: safety
out=safety/pan.out
probes=$(grep -oE 'PROBE:[a-z0-9_]+' "$model" | sort -u)
missing=""
for p in $probes; do
  # pan lists statements it never executed under "unreached in proctype"
  if sed -n '/^unreached in proctype/,/^unreached in init/p' "$out" | grep -q "$p"; then
    missing="$missing ${p#PROBE:}"
  fi
done
if grep -q "errors: 0" "$out" && complete "$out" && [ -z "$missing" ] && [ -n "$probes" ]; then
  echo "model: safety OK (assertions (1)-(4), invalid end states; $(field '[0-9]+ states, stored' "$out") states stored, depth $(field 'depth reached [0-9]+' "$out"), $(cat safety/secs) s; probes reached: $(echo "$probes" | sed 's/PROBE://' | tr '\n' ' ' | sed 's/ $//'))"
else
  status=1
  why=$(grep -m1 -E "^pan:|error|failed" "$out")
  [ -n "$missing" ] && why="${why:+$why; }probes never reached:$missing"
  echo "model: safety FAILED (${why:-see $out})"
fi

# model: liveness
out=liveness/pan.out
if grep -q "errors: 0" "$out" && complete "$out" && ! grep -q "PROBE:retire_b0" <(sed -n '/^unreached in proctype/,/^unreached in init/p' "$out"); then
  echo "model: liveness OK ([] (retired_b0 -> <> freed_b0) under weak fairness; $(field '[0-9]+ states, stored' "$out") states stored, $(field 'stored \([0-9.e+]+ visited' "$out") visited, $(cat liveness/secs) s)"
else
  status=1
  echo "model: liveness FAILED ($(grep -m1 -E "^pan:|error|failed|PROBE" "$out"))"
fi

# mutants
declare -A what=(
  [NO_GENERATION]="no_generation_check (R3 compares the state only)"
  [ADVANCE_UNCHECKED]="advance_unchecked (S3 checks thread 0's record only)"
  [EARLY_FREE]="early_free (S4 frees at E >= tag + 1)"
  [NO_PIN]="no_pin (the claim scan A1-A7 does not pin)"
  [SWEEPER_NO_PIN]="sweeper_no_pin (the sweeper's registry walks do not pin)"
)
for m in $mutants; do
  out=mutant_$m/pan.out
  errs=$(field 'errors: [0-9]+' "$out")
  if [ -n "$errs" ] && [ "$errs" -ge 1 ]; then
    cex=$(grep -m1 -oE "text of failed assertion: .*" "mutant_$m/replay.out" | sed 's/text of failed assertion: //')
    [ -n "$cex" ] || cex=$(grep -m1 -E "^pan:1: " "$out" | sed -E 's/^pan:1: //; s/ \(at depth [0-9]+\)//')
    steps=$(grep -m1 -oE "trail ends after [0-9]+ steps" "mutant_$m/replay.out" | grep -oE '[0-9]+')
    case "$cex" in
      *"ptr_freed[2]"*) prop="(1) the sweeper's walk touched a block freed after it loaded it" ;;
      *ptr_freed*) prop="(1) A3/A5 touched a block freed after A2 loaded it" ;;
      *rem_gen_ok*) prop="(1) R3 claimed a block recycled since R1" ;;
      *owners*) prop="(2) two holders of one block" ;;
      *INUSE*) prop="(3) a live cell swept or freed" ;;
      *cls*) prop="(4) claimed a block of another class" ;;
      *) prop="assertion" ;;
    esac
    line="mutant ${what[$m]}: counterexample found ($prop -- $cex; trail of ${steps:-?} steps, $(cat "mutant_$m/secs") s)"
    [ "$keep" = 1 ] && line="$line; replay: cd $work/mutant_$m && $SPIN -DMUTANT_$m -t -p handoff.pml"
    echo "$line"
  else
    status=1
    echo "mutant ${what[$m]}: NO counterexample ($(grep -m1 -E "^pan:|error|failed" "$out" || echo "errors: ${errs:-?}"))"
  fi
done

# ------------------------------------------------ the two small models
# small_model LABEL PML DEPTH CLASSIFY WHAT MUTANTS: an exhaustive safety
# search of PML (in $work/LABEL_model) that must verify with every
# PROBE:<name> reached, then one search per mutant in MUTANTS (in
# $work/LABEL_mutant_<name>) that must give a counterexample. WHAT names an
# associative array (mutant -> description); CLASSIFY is a function that
# prints the property a counterexample's text breaks.
small_model_run() {  # small_model_run DIR PML DEPTH "SPIN_DEFS"
  local base
  base=$(basename "$2")
  mkdir -p "$1" && cp "$2" "$1/$base" || return 1
  # shellcheck disable=SC2086
  (cd "$1" && "$SPIN" $4 -a "$base" >spin.out 2>&1 && "$CC" -O2 -w -DSAFETY -o pan pan.c >cc.out 2>&1 &&
     ./pan -m"$3" -I >pan.out 2>&1; [ -f "$base.trail" ] && "$SPIN" $4 -t "$base" >replay.out 2>&1; true)
}
small_model() {
  local label=$1 model=$2 depth=$3 classify=$4 mutants=$6
  local -n descr=$5
  local base out probes missing="" p m errs cex prop line
  base=$(basename "$model")
  small_model_run "$work/${label}_model" "$model" "$depth" ""
  out="$work/${label}_model/pan.out"
  probes=$(grep -oE 'PROBE:[a-z0-9_]+' "$model" | sort -u)
  for p in $probes; do
    if [ ! -f "$out" ] || sed -n '/^unreached in proctype/,/^unreached in init/p' "$out" | grep -q "$p"; then
      missing="$missing ${p#PROBE:}"
    fi
  done
  if [ -f "$out" ] && grep -q "errors: 0" "$out" && complete "$out" && [ -z "$missing" ]; then
    echo "$label model: safety OK (assertions (1)-(2), invalid end states (3); $(field '[0-9]+ states, stored' "$out") states stored; probes reached: $(echo "$probes" | sed 's/PROBE://' | tr '\n' ' ' | sed 's/ $//'))"
  else
    status=1
    echo "$label model: safety FAILED ($(grep -m1 -E "^pan:|error|failed" "$out" 2>/dev/null)${missing:+ probes never reached:$missing})"
  fi
  for m in $mutants; do
    small_model_run "$work/${label}_mutant_$m" "$model" "$depth" "-DMUTANT_$m"
    out="$work/${label}_mutant_$m/pan.out"
    errs=$(field 'errors: [0-9]+' "$out" 2>/dev/null)
    if [ -n "$errs" ] && [ "$errs" -ge 1 ]; then
      cex=$(grep -m1 -oE "text of failed assertion: .*" "$work/${label}_mutant_$m/replay.out" 2>/dev/null | sed 's/text of failed assertion: //')
      [ -n "$cex" ] || cex=$(grep -m1 -E "^pan:1: " "$out" | sed -E 's/^pan:1: //; s/ \(at depth [0-9]+\)//')
      prop=$("$classify" "$cex")
      line="$label mutant ${descr[$m]}: counterexample found ($prop -- $cex)"
      [ "$keep" = 1 ] && line="$line; replay: cd $work/${label}_mutant_$m && $SPIN -DMUTANT_$m -t -p $base"
      echo "$line"
    else
      status=1
      echo "$label mutant ${descr[$m]}: NO counterexample ($(grep -m1 -E "^pan:|error|failed" "$out" 2>/dev/null || echo "errors: ${errs:-?}"))"
    fi
  done
}

# The park/stop handshake: papers/park.pml (collector/src/safepoint.cpp).
# Exhaustive, about 13 k states: well under a second each.
declare -A park_what=(
  [PUBLISH_LATE]="publish_late (the stack is captured after the word says parked)"
  [UNPARK_UNCHECKED]="unpark_unchecked (leaving parked ignores the stop flag)"
  [PARK_SPLIT]="park_split (park is a load and a store, not a CAS)"
  [SLOW_UNCOUNTED]="slow_uncounted (the park slow path does not count itself)"
)
park_property() {
  case "$1" in
    *snap_ok*) echo "(1) the collector scanned a stale snapshot or a running thread" ;;
    *in_gc*) echo "(2) a mutator ran while the world was stopped" ;;
    *"invalid end state"*) echo "(3) a collection waits for ever for a parked thread" ;;
    *) echo "assertion" ;;
  esac
}
small_model park "$script_dir/park.pml" 200000 park_property park_what \
  "PUBLISH_LATE UNPARK_UNCHECKED PARK_SPLIT SLOW_UNCOUNTED"

# Parallel marking's termination: papers/termination.pml
# (collector/src/mark_work.h). Exhaustive, about 35 k states: under a
# second each.
declare -A term_what=(
  [IDLE_BEFORE_PUBLISH]="idle_before_publish (a donor of its last item counts itself idle before the item is in the pool)"
  [REACTIVATE_LATE]="reactivate_late (T4 takes a segment before counting itself busy)"
  [CHECKS_POOL_ONLY]="checks_pool_only (T6 concludes from the pool's counter alone)"
)
term_property() {
  case "$1" in
    *traced*) echo "(2) a terminated drain left an item untraced" ;;
    *held*) echo "(1) a worker concluded while work was held or pooled" ;;
    *"invalid end state"*) echo "(3) a worker waits for ever" ;;
    *) echo "assertion" ;;
  esac
}
small_model termination "$script_dir/termination.pml" 100000 term_property term_what \
  "IDLE_BEFORE_PUBLISH REACTIVATE_LATE CHECKS_POOL_ONLY"

if [ "$status" = 0 ]; then
  echo "check_model: all runs as expected"
else
  echo "check_model: FAILED"
fi
exit "$status"
