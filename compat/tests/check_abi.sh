#!/usr/bin/env bash
# Every symbol of the libgc 8.2 ABI (compat/abi/libgc-8.2.symbols, the
# dynamic symbols of Debian's libgc.so.1) is defined by handoff's libgc, and
# it exports nothing else (the collector stays private).
set -euo pipefail
library=$1
expected=$2
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
nm -D --defined-only "$library" | awk '{print $3}' | sort > "$actual"
missing=$(comm -23 "$expected" "$actual")
extra=$(comm -13 "$expected" "$actual")
[ -z "$missing" ] || { echo "missing from $library:"; echo "$missing"; exit 1; }
[ -z "$extra" ] || { echo "exported by $library but not libgc's:"; echo "$extra"; exit 1; }
soname=$(objdump -p "$library" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = "libgc.so.1" ] || { echo "soname is '$soname', not libgc.so.1"; exit 1; }
echo "check_abi: $(wc -l < "$expected") symbols, soname $soname"
