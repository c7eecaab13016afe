#!/usr/bin/env bash
# Asserts the write barrier's shape in an optimised object file:
#   - no atomic read-modify-write or fence (no lock prefix, xchg, mfence,
#     cmpxchg) and no call or jump out of the function: the whole barrier
#     is inline, with no slow path;
#   - at most 4 conditional branches in a Member store (null target, range
#     map index, range map byte, card already set) and at most
#     MAX_INSTRUCTIONS instructions.
# Usage: check_barrier.sh OBJECT_FILE
set -euo pipefail
obj="$1"
max_instructions=22  # padding (nop) excluded; two of them are ret
status=0
for fn in handoff_probe_member_store handoff_probe_write_barrier; do
  body=$(objdump -d --no-show-raw-insn -C "$obj" | awk -v f="<$fn>:" '$2==f {p=1; next} p && /^$/ {exit} p')
  if [ -z "$body" ]; then echo "FAIL: $fn not found in $obj"; exit 1; fi
  if grep -Eiq '\block\b|xchg|mfence|lfence|sfence' <<<"$body"; then
    echo "FAIL: $fn contains an atomic or fence instruction:"; echo "$body"; status=1
  fi
  calls=$(grep -E '\b(call|jmp)[a-z]*\b' <<<"$body" | grep -v -E '<'"$fn"'(\+0x[0-9a-f]+)?>' || true)
  if [ -n "$calls" ]; then
    echo "FAIL: $fn leaves the barrier:"; echo "$calls"; status=1
  fi
  insns=$(grep -E '^\s+[0-9a-f]+:' <<<"$body" | grep -cv nop)
  branches=$(grep -cE '\bj(a|ae|b|be|e|ne|nb|nbe|g|ge|l|le|z|nz)\b' <<<"$body" || true)
  echo "$fn: $insns instructions, $branches conditional branches, no atomics, no calls"
  if [ "$insns" -gt "$max_instructions" ]; then echo "FAIL: $fn has more than $max_instructions instructions"; status=1; fi
  if [ "$branches" -gt 4 ]; then echo "FAIL: $fn has more than 4 conditional branches"; status=1; fi
done
[ $status -eq 0 ] && echo "write barrier: OK"
exit $status
