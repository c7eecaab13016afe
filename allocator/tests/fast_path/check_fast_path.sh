#!/usr/bin/env bash
# Asserts the allocation fast path's shape in an optimised object file:
#   - no atomic read-modify-write or fence (no lock prefix, xchg, mfence,
#     cmpxchg) in the hot part of either probe function;
#   - the only calls or jumps out of it go to the named slow paths;
#   - at most one conditional branch before the bump in LocalAllocator's
#     path (the free-list compare).
# Usage: check_fast_path.sh OBJECT_FILE
set -euo pipefail
obj="$1"
status=0
for fn in handoff_probe_thread_allocate handoff_probe_local_allocate; do
  # The function body, excluding its .cold clone (out of line by design).
  body=$(objdump -d --no-show-raw-insn -C "$obj" | awk -v f="<$fn>:" '$2==f {p=1; next} p && /^$/ {exit} p')
  if [ -z "$body" ]; then echo "FAIL: $fn not found in $obj"; exit 1; fi
  if grep -Eiq '\block\b|xchg|mfence|lfence|sfence' <<<"$body"; then
    echo "FAIL: $fn contains an atomic or fence instruction:"; echo "$body"; status=1
  fi
  bad_calls=$(grep -E '\b(call|jmp)[a-z]*\b' <<<"$body" | grep -v -E 'allocate_slow|allocate_unclassed|<'"$fn"'(\+0x[0-9a-f]+)?>|\.cold' || true)
  if [ -n "$bad_calls" ]; then
    echo "FAIL: $fn leaves the fast path for something other than its slow paths:"; echo "$bad_calls"; status=1
  fi
  insns=$(grep -cE '^\s+[0-9a-f]+:' <<<"$body")
  echo "$fn: $insns instructions, no atomics"
done
local_body=$(objdump -d --no-show-raw-insn "$obj" | awk '$2=="<handoff_probe_local_allocate>:" {p=1; next} p && /^$/ {exit} p')
first_ret_line=$(grep -nE '\bret' <<<"$local_body" | head -1 | cut -d: -f1)
branches=$(head -n "$first_ret_line" <<<"$local_body" | grep -cE '\bj(a|ae|b|be|e|ne|nb|nbe|g|ge|l|le|z|nz)\b' || true)
echo "handoff_probe_local_allocate: $branches conditional branch(es) before the first return"
if [ "$branches" -gt 1 ]; then echo "FAIL: the bump path has more than one branch"; status=1; fi
[ $status -eq 0 ] && echo "fast path: OK"
exit $status
