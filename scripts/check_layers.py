#!/usr/bin/env python3
"""Fails when allocator/ depends on collector/ (STYLE.md 8: layers only point down),
or when the collector reaches into blocks past its narrow interface (STYLE.md 14).

Two checks over every file under allocator/:
  1. the word "collector" (what `grep -r collector allocator/` finds) occurs
     only in comments: in C++ files outside // and /* */ comments (string
     literals count as code), in CMake, shell and other files outside # comments;
  2. no #include names a header that exists only in collector/
     (collector/include/handoff/*.h), whatever its name.

And two over collector/src and collector/include (tests may look inside):
  3. no #include of <handoff/marked_block.h> or <handoff/directory.h>: the
     collector asks the allocator through cell_services.h, mark_services.h
     and Allocator's own functions;
  4. MarkedBlock is named in code (outside comments) only in the files of
     the marker's per-edge path and the card walk, BLOCK_USERS below
     (mark_services.h says why those stay).

And one over the installed headers (allocator/include/handoff,
collector/include/handoff):
  5. no #include names a header that exists only under allocator/internal/
     (never installed): an installed header that did would not compile in
     an embedder's tree (install.consumer compiles them all, installed).

What it cannot see: a dependency that names neither (a declaration copied
from the collector, a symbol resolved only at link time); the link itself is
checked by the allocator-alone install test (cmake/install_test/allocator_alone.sh).
A block reached without its name (auto, a typedef) passes check 4.

Usage: check_layers.py SOURCE_DIR [--also FILE...] [--also-collector FILE...]
  --also FILE            treat FILE as if it were under allocator/ (the
                         negative control plants a leak in a scratch file)
  --also-collector FILE  treat FILE as a collector/src file outside BLOCK_USERS
  --also-installed FILE  treat FILE as an installed header
Exit status: 0 when clean, 1 when something leaks (printed as file:line).
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_comment_names import source_dir_or_usage, split  # noqa: E402  (usage; code and comments of a C++ file)

CXX_SUFFIXES = (".h", ".hpp", ".c", ".cpp", ".inc")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]handoff/([\w./]+)[>"]', re.M)
# collector/src files that may name MarkedBlock: the marker's per-edge path
# (checked_target, try_mark) and the remembered set's card walk.
BLOCK_USERS = {"mark_target.h", "mark_target.cpp", "marker.h", "marker.cpp", "remembered_set.cpp"}
MARKED_BLOCK = re.compile(r"\bMarkedBlock\b")
# Headers no collector source includes (check 3), and what to use instead.
COLLECTOR_FORBIDDEN = {
    "marked_block.h": "use cell_services.h or mark_services.h",
    "directory.h": "use Allocator's functions or mark_services.h (for_each_block_with_dirty_cards)",
}


def code_lines(path, text):
    """[(line, code text)] of a file, comments removed."""
    if path.endswith(CXX_SUFFIXES):
        code, _ = split(text)
        return list(enumerate(code.splitlines(), 1))
    return [(n, line.split("#", 1)[0]) for n, line in enumerate(text.splitlines(), 1)]


def extra_files(argv):
    """{flag: [FILE...]} for --also, --also-collector and --also-installed."""
    extra, flag = {"--also": [], "--also-collector": [], "--also-installed": []}, None
    for arg in argv[2:]:
        if arg in extra:
            flag = arg
        elif flag is not None:
            extra[flag].append(arg)
    return extra


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        return None  # not a text file


def collector_reaches_into_blocks(root, also):
    """[(path, line, what)]: checks 3 and 4 over collector/src, collector/include."""
    files = []
    for sub in ("src", "include"):
        for dirpath, _, names in os.walk(os.path.join(root, "collector", sub)):
            files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith(CXX_SUFFIXES)]
    bad = []
    for path in files + also:
        text = read_text(path)
        if text is None:
            continue
        for m in INCLUDE.finditer(text):
            if m.group(1) in COLLECTOR_FORBIDDEN:
                bad.append((path, text.count("\n", 0, m.start()) + 1,
                            f"includes <handoff/{m.group(1)}>; {COLLECTOR_FORBIDDEN[m.group(1)]}"))
        if os.path.basename(path) in BLOCK_USERS and path not in also:
            continue
        for number, line in code_lines(path, text):
            if MARKED_BLOCK.search(line):
                bad.append((path, number, "names MarkedBlock outside the marker's hot path: " + line.strip()))
    return bad, len(files)


def installed_includes_internal(root, also):
    """[(path, line, what)]: check 5 over the installed headers."""
    internal_dir = os.path.join(root, "allocator", "internal", "handoff")
    internal = set(os.listdir(internal_dir)) if os.path.isdir(internal_dir) else set()
    headers = []
    for layer in ("allocator", "collector"):
        d = os.path.join(root, layer, "include", "handoff")
        headers += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(CXX_SUFFIXES)]
    internal -= {os.path.basename(h) for h in headers}  # a name in both is installed
    bad = []
    for path in headers + also:
        text = read_text(path) or ""
        for m in INCLUDE.finditer(text):
            if m.group(1) in internal:
                bad.append((path, text.count("\n", 0, m.start()) + 1,
                            f"installed header includes <handoff/{m.group(1)}>, an internal header"))
    return bad, len(headers)


def main(argv):
    root, status = source_dir_or_usage(argv, __doc__, "allocator")
    if root is None:
        return status
    extra = extra_files(argv)
    also = extra["--also"]
    collector_headers = set(os.listdir(os.path.join(root, "collector", "include", "handoff")))
    allocator_headers = set()
    for sub in ("include", "internal"):
        d = os.path.join(root, "allocator", sub, "handoff")
        if os.path.isdir(d):
            allocator_headers.update(os.listdir(d))
    only_collector = collector_headers - allocator_headers
    files = []
    for dirpath, _, names in os.walk(os.path.join(root, "allocator")):
        files += [os.path.join(dirpath, n) for n in sorted(names)]
    bad = []
    for path in files + also:
        text = read_text(path)
        if text is None:
            continue
        for number, line in code_lines(path, text):
            if "collector" in line:
                bad.append((path, number, "names the collector outside a comment: " + line.strip()))
        for m in INCLUDE.finditer(text):
            if m.group(1) in only_collector:
                bad.append((path, text.count("\n", 0, m.start()) + 1, f"includes <handoff/{m.group(1)}>, a collector header"))
    reach, collector_files = collector_reaches_into_blocks(root, extra["--also-collector"])
    leaks, installed = installed_includes_internal(root, extra["--also-installed"])
    for path, number, what in bad + reach + leaks:
        print(f"{os.path.relpath(path, root)}:{number}: {what}")
    if bad:
        print(f"check_layers: allocator/ depends on collector/ ({len(bad)} place(s))", file=sys.stderr)
    if reach:
        print(f"check_layers: the collector reaches into blocks or directories ({len(reach)} place(s))", file=sys.stderr)
    if leaks:
        print(f"check_layers: an installed header includes an internal one ({len(leaks)} place(s))", file=sys.stderr)
    if bad or reach or leaks:
        return 1
    print(f"check_layers: {len(files)} files under allocator/, 'collector' only in comments, no collector include; "
          f"{collector_files} collector files, no marked_block.h or directory.h include, "
          f"MarkedBlock only in {', '.join(sorted(BLOCK_USERS))}; "
          f"{installed} installed headers, none includes an internal one")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
