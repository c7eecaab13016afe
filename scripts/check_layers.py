#!/usr/bin/env python3
"""Fails when allocator/ depends on collector/ (STYLE.md 8: layers only point down).

Two checks over every file under allocator/:
  1. the word "collector" (what `grep -r collector allocator/` finds) occurs
     only in comments: in C++ files outside // and /* */ comments (string
     literals count as code), in CMake, shell and other files outside # comments;
  2. no #include names a header that exists only in collector/
     (collector/include/handoff/*.h), whatever its name.

What it cannot see: a dependency that names neither (a declaration copied
from the collector, a symbol resolved only at link time); the link itself is
checked by the allocator-alone install test (cmake/install_test/allocator_alone.sh).

Usage: check_layers.py SOURCE_DIR [--also FILE...]
  --also FILE  treat FILE as if it were under allocator/ (the negative
               control plants a leak in a scratch file this way).
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


def code_lines(path, text):
    """[(line, code text)] of a file, comments removed."""
    if path.endswith(CXX_SUFFIXES):
        code, _ = split(text)
        return list(enumerate(code.splitlines(), 1))
    return [(n, line.split("#", 1)[0]) for n, line in enumerate(text.splitlines(), 1)]


def main(argv):
    root, status = source_dir_or_usage(argv, __doc__, "allocator")
    if root is None:
        return status
    also = argv[argv.index("--also") + 1:] if "--also" in argv else []
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
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError:
            continue  # not a text file
        for number, line in code_lines(path, text):
            if "collector" in line:
                bad.append((path, number, "names the collector outside a comment: " + line.strip()))
        for m in INCLUDE.finditer(text):
            if m.group(1) in only_collector:
                bad.append((path, text.count("\n", 0, m.start()) + 1, f"includes <handoff/{m.group(1)}>, a collector header"))
    for path, number, what in bad:
        print(f"{os.path.relpath(path, root)}:{number}: {what}")
    if bad:
        print(f"check_layers: allocator/ depends on collector/ ({len(bad)} place(s))", file=sys.stderr)
        return 1
    print(f"check_layers: {len(files)} files under allocator/, 'collector' only in comments, no collector include")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
