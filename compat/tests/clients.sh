#!/usr/bin/env bash
# End-to-end runs of Debian programs that link libgc.so.1, loaded with
# handoff's libgc instead (LD_LIBRARY_PATH; the programs have no RPATH, so
# Debian's libgc is then not loaded at all).
#
#   clients.sh LIBDIR mmv  [FILES]        rename FILES files, check the listing
#   clients.sh LIBDIR chase [HOPS]        resolve a chain of HOPS symlinks
#   clients.sh LIBDIR w3m  BYTES          dump a generated page of BYTES bytes;
#                                         byte-identical to the run on Debian's libgc
#   clients.sh LIBDIR poke                run workload.pk; output identical to
#                                         the run on Debian's libgc
#   clients.sh LIBDIR guile SCRIPT        run guile/SCRIPT.scm (or -c '(display
#                                         (+ 1 2))' for SCRIPT=hello); output
#                                         identical to the run on Debian's libgc
# HANDOFF_* variables in the environment reach handoff's libgc (torture,
# verification). Exit 77 (CTest's skip code) when the program is missing.
set -euo pipefail

libdir=$1
client=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/handoff-clients.XXXXXX")
trap 'rm -rf "$work"' EXIT

if ! command -v "$client" >/dev/null 2>&1; then
  echo "clients.sh: $client is not installed (scripts/install-deps.sh installs it); skipped"
  exit 77
fi
if [ ! -e "$libdir/libgc.so.1" ]; then
  echo "clients.sh: no libgc.so.1 in $libdir" >&2
  exit 1
fi

# Runs "$@" on handoff's libgc and checks that it really was loaded.
on_handoff() {
  LD_LIBRARY_PATH="$libdir" "$@"
}
check_loaded() {
  local resolved
  resolved=$(LD_LIBRARY_PATH="$libdir" ldd "$(command -v "$1")" | awk '$1 == "libgc.so.1" {print $3}')
  if [ "$(readlink -f "$resolved")" != "$(readlink -f "$libdir/libgc.so.1")" ]; then
    echo "clients.sh: $1 does not load handoff's libgc (it resolves libgc.so.1 to '$resolved')" >&2
    exit 1
  fi
}
fail() {
  echo "clients.sh: $client: $*" >&2
  exit 1
}

# guile's binary links libguile, which links libgc.so.1.
if [ "$client" = guile ]; then
  check_loaded_lib() {
    local resolved
    resolved=$(LD_LIBRARY_PATH="$libdir" ldd "$(command -v guile)" | awk '$1 == "libgc.so.1" {print $3}')
    [ "$(readlink -f "$resolved")" = "$(readlink -f "$libdir/libgc.so.1")" ] ||
      { echo "clients.sh: guile does not load handoff's libgc ('$resolved')" >&2; exit 1; }
  }
  check_loaded_lib
else
  check_loaded "$client"
fi
case "$client" in
  mmv)
    files=${3:-3000}
    mkdir "$work/d"
    (cd "$work/d" && for i in $(seq -w 1 "$files"); do printf '%s\n' "$i" > "f$i.txt"; done)
    (cd "$work/d" && on_handoff mmv 'f*.txt' 'renamed_#1.dat') || fail "mmv exited with $?"
    (cd "$work/d" && seq -w 1 "$files" | sed 's/.*/renamed_&.dat/' | sort) > "$work/expected"
    (cd "$work/d" && ls | sort) > "$work/listing"
    cmp -s "$work/expected" "$work/listing" || fail "the listing after renaming differs from the expected one"
    # Contents moved with their names.
    for i in 1 $((files / 2)) "$files"; do
      n=$(printf "%0${#files}d" "$i")
      [ "$(cat "$work/d/renamed_$n.dat")" = "$n" ] || fail "renamed_$n.dat lost its contents"
    done
    echo "mmv: renamed $files files"
    ;;
  chase)
    hops=${3:-2000}
    mkdir -p "$work/c"
    echo target > "$work/c/target"
    prev=target
    # Alternate relative hops through subdirectories and plain ones, so that
    # chase builds and drops many path strings.
    for i in $(seq 1 "$hops"); do
      if [ $((i % 3)) -eq 0 ]; then
        mkdir -p "$work/c/d$i"
        ln -s "../$prev" "$work/c/d$i/l"
        prev="d$i/l"
      else
        ln -s "$prev" "$work/c/l$i"
        prev="l$i"
      fi
    done
    (cd "$work/c" && chase -w $((hops * 4)) -l $((hops * 4)) "$prev") > "$work/expected" 2>&1 ||
      fail "chase on Debian's libgc failed"
    (cd "$work/c" && on_handoff chase -w $((hops * 4)) -l $((hops * 4)) "$prev") > "$work/got" 2>&1 ||
      fail "chase exited with $?: $(head -c 500 "$work/got")"
    cmp -s "$work/expected" "$work/got" || fail "output differs from the run on Debian's libgc"
    grep -q "/target$" "$work/got" || fail "the chain did not resolve to its target"
    echo "chase: resolved $hops hops"
    ;;
  w3m)
    bytes=${3:?w3m needs a page size}
    python3 "$here/make_page.py" --bytes "$bytes" "$work/page.html"
    run_w3m() {
      env -i HOME="$work/home" LANG=C.UTF-8 TERM=dumb PATH="$PATH" "$@" \
        w3m -dump -T text/html -cols 100 -O UTF-8 "$work/page.html"
    }
    mkdir -p "$work/home"
    run_w3m > "$work/expected" || fail "w3m on Debian's libgc failed"
    handoff_env=()
    while IFS= read -r line; do handoff_env+=("$line"); done < <(env | grep '^HANDOFF_' || true)
    run_w3m LD_LIBRARY_PATH="$libdir" "${handoff_env[@]}" > "$work/got" || fail "w3m exited with $?"
    cmp "$work/expected" "$work/got" || fail "the dump differs from the run on Debian's libgc"
    echo "w3m: $(wc -c < "$work/got") bytes of dump identical to Debian's libgc (page of $bytes bytes)"
    ;;
  poke)
    run_poke() { poke -q --no-init-file -l "$here/workload.pk" -c '.exit'; }
    run_poke > "$work/expected" 2>&1 || fail "poke on Debian's libgc failed"
    on_handoff run_poke > "$work/got" 2>&1 || fail "poke exited with $?: $(head -c 500 "$work/got")"
    cmp "$work/expected" "$work/got" || fail "output differs from the run on Debian's libgc"
    echo "poke: $(cat "$work/got")"
    ;;
  guile)
    script=${3:-hello}
    if [ "$script" = hello ]; then
      run_guile() { "$@" guile --no-auto-compile -c '(display (+ 1 2)) (newline)'; }
    else
      run_guile() { "$@" guile --no-auto-compile "$here/guile/$script.scm"; }
    fi
    # Debian's libgc run does not get the HANDOFF_* torture variables.
    run_guile env -u HANDOFF_COLLECT_EVERY -u HANDOFF_VERIFY > "$work/expected" 2>&1 ||
      fail "guile on Debian's libgc failed"
    run_guile on_handoff > "$work/got" 2>&1 || fail "guile exited with $?: $(head -c 500 "$work/got")"
    cmp "$work/expected" "$work/got" || fail "output differs from the run on Debian's libgc"
    echo "guile $script: $(cat "$work/got")"
    ;;
  *)
    echo "clients.sh: unknown client $client" >&2
    exit 2
    ;;
esac
