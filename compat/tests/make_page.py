#!/usr/bin/env python3
"""Writes a deterministic HTML page of about --bytes bytes for the w3m runs:
sections of headings, paragraphs with inline markup and links, nested
lists, definition lists, preformatted text, forms and tables (some nested,
some with spans), so that w3m's layout code allocates the way a real page
makes it. The same --seed and --bytes always give the same page."""
import argparse
import random
import sys

WORDS = ("garbage collector heap block cell mark sweep epoch grace period "
         "allocator directory thread root stack register pointer object free "
         "list size class large sweep handoff barrier finalizer weak link "
         "conservative interior page table frame scan trace verify").split()


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def paragraph(rng, i):
    parts = []
    for k in range(rng.randint(3, 8)):
        w = words(rng, rng.randint(4, 14))
        style = rng.randint(0, 6)
        if style == 0:
            w = f'<a href="http://example.org/s{i}/p{k}.html">{w}</a>'
        elif style == 1:
            w = f"<b>{w}</b>"
        elif style == 2:
            w = f"<i>{w}</i> &amp; <code>{rng.choice(WORDS)}()</code>"
        elif style == 3:
            w = f"{w} &lt;{rng.choice(WORDS)}&gt; &#169; &eacute;t&eacute;"
        parts.append(w)
    return "<p>" + ". ".join(parts) + ".</p>\n"


def nested_list(rng, depth, i):
    tag = rng.choice(("ul", "ol"))
    out = [f"<{tag}>"]
    for k in range(rng.randint(2, 6)):
        out.append(f"<li>{words(rng, rng.randint(2, 9))}")
        if depth < 3 and rng.random() < 0.35:
            out.append(nested_list(rng, depth + 1, i))
        out.append("</li>")
    out.append(f"</{tag}>")
    return "\n".join(out) + "\n"


def table(rng, i, depth=0):
    rows, cols = rng.randint(2, 9), rng.randint(2, 6)
    out = [f'<table border="1" cellpadding="{rng.randint(0, 3)}">',
           "<caption>" + words(rng, 3) + "</caption>",
           "<tr>" + "".join(f"<th>{rng.choice(WORDS)}</th>" for _ in range(cols)) + "</tr>"]
    for r in range(rows):
        cells = []
        c = 0
        while c < cols:
            span = 1 if rng.random() < 0.85 else min(2, cols - c)
            content = words(rng, rng.randint(1, 6))
            if depth == 0 and rng.random() < 0.05:
                content = table(rng, i, depth + 1)
            elif rng.random() < 0.2:
                content = f'<a href="#s{rng.randint(0, i)}">{content}</a>'
            align = rng.choice(("left", "right", "center"))
            cells.append(f'<td colspan="{span}" align="{align}">{content}</td>')
            c += span
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def section(rng, i):
    out = [f'<h{rng.randint(1, 4)} id="s{i}">Section {i}: {words(rng, 4)}</h2>']
    for _ in range(rng.randint(1, 3)):
        out.append(paragraph(rng, i))
    kind = rng.randint(0, 5)
    if kind <= 1:
        out.append(table(rng, i))
    elif kind == 2:
        out.append(nested_list(rng, 0, i))
    elif kind == 3:
        out.append("<dl>" + "".join(f"<dt>{rng.choice(WORDS)}</dt><dd>{words(rng, 8)}</dd>"
                                    for _ in range(rng.randint(2, 5))) + "</dl>\n")
    elif kind == 4:
        out.append("<pre>" + "\n".join(words(rng, rng.randint(3, 10)) for _ in range(rng.randint(2, 6)))
                   + "</pre>\n")
    else:
        out.append(f'<form action="/s{i}"><input type="text" name="q{i}" value="{rng.choice(WORDS)}">'
                   f'<select name="o{i}"><option>{rng.choice(WORDS)}<option selected>{rng.choice(WORDS)}</select>'
                   f'<input type="submit" value="go"></form>\n')
    out.append("<hr>\n")
    return "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bytes", type=int, default=2 << 20, help="approximate page size (default 2 MiB)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("output", nargs="?", default="-")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    chunks = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>handoff w3m page</title></head><body>\n']
    size = len(chunks[0])
    i = 0
    while size < args.bytes:
        s = section(rng, i)
        chunks.append(s)
        size += len(s)
        i += 1
    chunks.append("</body></html>\n")
    text = "".join(chunks)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
