#!/usr/bin/env python3
"""Fails when a comment or a doc names a function that does not exist.

Call-tree comments (STYLE.md 2) and "see X::y" pointers go stale when code
moves: block_pool.h once named Directory::release_block, purge_idle() and
check_accounting() long after they were gone. This check reads the C++
sources of allocator/, collector/, compat/, stress/ and bench/, splits each
file into code and comments, and collects every identifier that occurs in
code (string literals count as code). Then, in every comment, and in every
`backticked` span of README.md and papers/*.md outside cmake and shell code
blocks, it looks at two forms of name:

  A::b     a qualified name whose qualifier A is one of our identifiers
           (a class, namespace or enum of this project): b must occur in code;
  f()      a name written as a call with empty parentheses: f must occur in
           code.

What it cannot see, so that it stays cheap and without false alarms:
  - names qualified by something that is not ours (std::, JSC's
    BlockDirectory::..., cppgc::...): the standard library and the anchors we
    cite are not in this tree; a class of ours renamed everywhere in code but
    not in a comment is skipped the same way (its old name is no longer "ours");
  - whether b is a member of A: it only has to exist somewhere;
  - bare names without "::" or "()" (prose cannot be told from code);
  - whether the call tree's shape (who calls whom) is still true.

Usage: check_comment_names.py SOURCE_DIR [--also FILE...]
  --also FILE  check FILE's comments as well (the negative control plants a
               stale name in a scratch file this way).
Exit status: 0 when every name resolves, 1 otherwise (each unresolved name is
printed as file:line: name).
"""
import os
import re
import sys

SOURCE_DIRS = ["allocator", "collector", "compat", "stress", "bench"]
SOURCE_SUFFIXES = (".h", ".hpp", ".c", ".cpp", ".inc")
FOREIGN_QUALIFIERS = {"std"}  # ours by spelling, never by definition
# The exported CMake targets (handoff::allocator_shared, ...) that docs name
# like C++; their names are assembled in cmake/HandoffLibraries.cmake.
CMAKE_TARGETS = {"allocator", "collector", "allocator_shared", "collector_shared"}

TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
QUALIFIED = re.compile(r"\b([A-Za-z_]\w*)::(~?[A-Za-z_]\w*)")
EMPTY_CALL = re.compile(r"(?<![\w:.>])([a-z_][a-z0-9_]*)\(\)")
FENCE = re.compile(r"^```(\w*)\s*$")
BACKTICKED = re.compile(r"`([^`\n]+)`")


def source_files(root):
    for d in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, d)):
            for name in sorted(names):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.join(dirpath, name)


def split(text):
    """(code, [(line, comment)]) of one C++ file."""
    code, comments, pos = [], [], 0
    for m in TOKEN.finditer(text):
        code.append(text[pos:m.start()])
        pos = m.end()
        token = m.group(0)
        if token.startswith(("//", "/*")):
            comments.append((text.count("\n", 0, m.start()) + 1, token))
        else:
            code.append(token)
    code.append(text[pos:])
    return "".join(code), comments


def doc_spans(text):
    """(line, span) for each backticked span outside cmake/sh code blocks."""
    block, skip = False, False  # inside a fenced block; one of cmake or shell
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            block = not block
            skip = block and fence.group(1) in ("cmake", "sh", "bash", "console")
            continue
        if skip:
            continue
        for m in BACKTICKED.finditer(line):
            yield number, m.group(1)


def unresolved(text, ours):
    for m in QUALIFIED.finditer(text):
        qualifier, name = m.groups()
        if qualifier == "handoff" and name in CMAKE_TARGETS:
            continue
        if qualifier in ours and qualifier not in FOREIGN_QUALIFIERS and name.lstrip("~") not in ours:
            yield m.group(0)
    for m in EMPTY_CALL.finditer(text):
        if m.group(1) not in ours:
            yield m.group(0)


def source_dir_or_usage(argv, doc, expected):
    """(SOURCE_DIR, 0); or (None, status) after printing the usage: to stdout
    for --help (status 0), to stderr when the argument is missing or has no
    `expected` subdirectory (status 2)."""
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(doc)
        return None, 0
    if len(argv) < 2 or not os.path.isdir(os.path.join(argv[1], expected)):
        print(doc, file=sys.stderr)
        return None, 2
    return argv[1], 0


def main(argv):
    root, status = source_dir_or_usage(argv, __doc__, "papers")
    if root is None:
        return status
    also = argv[argv.index("--also") + 1:] if "--also" in argv else []
    ours, comments = set(), []
    for path in list(source_files(root)) + also:
        with open(path, encoding="utf-8", errors="replace") as f:
            code, found = split(f.read())
        ours.update(IDENTIFIER.findall(code))
        comments += [(path, line, text) for line, text in found]
    docs = [os.path.join(root, "README.md")]
    papers = os.path.join(root, "papers")
    docs += [os.path.join(papers, n) for n in sorted(os.listdir(papers)) if n.endswith(".md")]
    for path in docs:
        with open(path, encoding="utf-8") as f:
            comments += [(path, line, span) for line, span in doc_spans(f.read())]
    bad = [(path, line, name) for path, line, text in comments for name in unresolved(text, ours)]
    for path, line, name in bad:
        print(f"{os.path.relpath(path, root)}:{line}: {name} names nothing in the sources")
    if bad:
        print(f"check_comment_names: {len(bad)} stale name(s) in comments or docs", file=sys.stderr)
        return 1
    print(f"check_comment_names: {len(comments)} comments and doc spans, every A::b and f() resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
