#!/usr/bin/env python3
"""Re-wrap notebook code lines longer than 88 characters, without changing what the code does.

    python scripts/format_notebooks.py notebooks/*.ipynb          # rewrite in place
    python scripts/format_notebooks.py --check notebooks/*.ipynb  # list long lines, exit 1 if any

A conservative wrapper, not a formatter (black is not a dependency of the book): only lines
over the limit are touched, in two ways, repeated until the line fits:

* a trailing ``# comment`` that makes a line too long moves to its own line above it;
* the outermost bracket pair on the line whose contents can be split at top-level commas is
  opened, one item (or as many as fit) per line, indented four spaces, the closing bracket on
  its own line (Python's implicit line joining: no backslashes, no new trailing commas).

Each rewritten cell is parsed before and after, and kept only if its syntax tree is identical
(``ast.dump``); otherwise, and for cells that are not plain Python (IPython magics), it is left
as it was and its long lines are reported. Cell outputs and metadata are never touched, so a
formatted notebook needs no re-execution. tests/docs/test_notebook_style.py fails on any code
line over 88 characters.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

LIMIT = 88
OPEN, CLOSE = "([{", ")]}"


def _scan(line: str) -> tuple[list[tuple[int, int]], list[int], int | None]:
    """Bracket pairs closed on this line (open index, close index), the depth of each character
    (-1 inside strings), and the index of a trailing comment, for one physical line."""
    pairs, stack, depth = [], [], []
    comment = None
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == "#":
            comment = i
            depth.extend([-1] * (n - i))
            break
        if ch in "\"'":
            j = _string_end(line, i)
            depth.extend([-1] * (j - i))
            i = j
            continue
        if ch in OPEN:
            stack.append(i)
            depth.append(len(stack))
        elif ch in CLOSE:
            depth.append(len(stack))
            if stack:
                pairs.append((stack.pop(), i))
        else:
            depth.append(len(stack))
        i += 1
    return pairs, depth, comment


def _string_end(line: str, i: int) -> int:
    quote = line[i] * 3 if line[i:i + 3] in ('"""', "'''") else line[i]
    j = i + len(quote)
    while j < len(line):
        if line[j] == "\\":
            j += 2
            continue
        if line.startswith(quote, j):
            return j + len(quote)
        j += 1
    return len(line)  # an unterminated string on this line (a multi-line literal): leave it


def _split_items(line: str, start: int, end: int, depth: list[int]) -> list[str]:
    """The text between brackets at ``start`` and ``end``, split at its top-level commas."""
    level = depth[start]
    items, last = [], start + 1
    for k in range(start + 1, end):
        if line[k] == "," and depth[k] == level:
            items.append(line[last:k + 1].strip())
            last = k + 1
    tail = line[last:end].strip()
    if tail:
        items.append(tail)
    return items


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def wrap_line(line: str, limit: int = LIMIT) -> list[str]:
    """``line`` as one or more lines within ``limit`` where it can be split (see the module doc)."""
    if len(line) <= limit:
        return [line]
    pairs, depth, comment = _scan(line)
    if comment is not None and line[:comment].strip():
        code = line[:comment].rstrip()
        return [_indent(line) + line[comment:].strip(), *wrap_line(code, limit)]
    if comment is not None:
        import textwrap

        pad = _indent(line)
        text = line.strip().lstrip("#").strip()
        return textwrap.wrap(text, limit - len(pad) - 2, initial_indent="", subsequent_indent="",
                             break_long_words=False, break_on_hyphens=False) and \
            [f"{pad}# {chunk}" for chunk in textwrap.wrap(text, limit - len(pad) - 2, break_long_words=False,
                                                            break_on_hyphens=False)]
    pad = _indent(line)
    semis = [k for k, ch in enumerate(line) if ch == ";" and depth[k] == 0]
    if semis:  # "a; b; c": one statement per line first
        cuts = [len(pad), *[k + 1 for k in semis], len(line)]
        parts = [line[a:b].strip().rstrip(";").strip() for a, b in zip(cuts, cuts[1:])]
        return [pad + part for part in parts if part]
    for start, end in sorted(pairs, key=lambda p: (p[0] - p[1], p[0])):  # the widest pair first
        items = _split_items(line, start, end, depth)
        if not items:
            continue
        body = _fill(items, pad + "    ", limit)
        head = line[: start + 1].rstrip()
        closing = pad + line[end:].strip()
        out = [head, *body, closing]
        if out == [line]:
            continue
        result = []
        for piece in out:
            result.extend(wrap_line(piece, limit) if len(piece) > limit and piece != line else [piece])
        return result
    return split_import(line, limit) or split_commas(line, depth, limit) or split_string(line, limit) or [line]


def split_import(line: str, limit: int = LIMIT) -> list[str] | None:
    """``from m import a, b, c`` -> ``from m import (`` / names / ``)``."""
    stripped = line.strip()
    if not stripped.startswith("from ") or " import " not in stripped or "(" in stripped or "#" in stripped:
        return None
    head, names = stripped.split(" import ", 1)
    pad = _indent(line)
    return [f"{pad}{head} import (", *_fill([n.strip() + "," for n in names.split(",")], pad + "    ", limit),
            f"{pad})"]


def _fill(items: list[str], inner: str, limit: int) -> list[str]:
    body, current = [], ""
    for item in items:
        candidate = f"{current} {item}" if current else item
        if current and len(inner) + len(candidate) > limit:
            body.append(inner + current)
            current = item
        else:
            current = candidate
    if current:
        body.append(inner + current)
    return body


def split_commas(line: str, depth: list[int], limit: int = LIMIT) -> list[str] | None:
    """A line inside an open bracket (or ending in one) split at the commas of its outer level:
    the items continue on lines of their own (implicit line joining)."""
    final = next((d for d in reversed(depth) if d >= 0), 0)
    opener = max((k for k, ch in enumerate(line) if ch in OPEN and depth[k] == final and final > 0), default=-1)
    start = opener + 1 if opener >= 0 else len(_indent(line))
    level = final
    cuts = [k for k in range(start, len(line)) if line[k] == "," and depth[k] == level]
    if not cuts:
        return None
    items, last = [], start
    for k in cuts:
        items.append(line[last:k + 1].strip())
        last = k + 1
    if line[last:].strip():
        items.append(line[last:].strip())
    pad = _indent(line)
    if opener >= 0:
        return [line[:opener + 1].rstrip(), *_fill(items, pad + "    ", limit)]
    lines = _fill(items, pad, limit)
    return lines if len(lines) > 1 else None


def split_string(line: str, limit: int = LIMIT) -> list[str] | None:
    """A one-line string literal that runs past ``limit``, split at spaces into adjacent
    literals on following lines (valid inside brackets; the caller checks the syntax tree)."""
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "#":
            return None
        if ch not in "\"'":
            i += 1
            continue
        end = _string_end(line, i)
        if line[i:i + 3] in ('"""', "'''") or end <= limit:
            i = end
            continue
        p = i
        while p > 0 and line[p - 1].lower() in "rbfu":
            p -= 1
        prefix, quote = line[p:i], line[i]
        body = line[i + 1:end - 1]
        col = p
        pieces, current, depth = [], "", 0
        for word in _words(body, "f" in prefix.lower()):
            room = limit - col - len(prefix) - 2 - (0 if pieces else 0)
            if current and len(current) + len(word) > room:
                pieces.append(current)
                current = word
            else:
                current += word
        pieces.append(current)
        if len(pieces) < 2:
            return None
        lits = [f"{prefix}{quote}{piece}{quote}" for piece in pieces]
        first = line[:p] + lits[0]
        rest = [" " * col + lit for lit in lits[1:]]
        rest[-1] += line[end:]
        return [first, *rest]
    return None


def _words(body: str, fstring: bool) -> list[str]:
    """``body`` cut after each space that is outside ``{...}`` (in an f-string), keeping the spaces."""
    words, current, depth = [], "", 0
    for ch in body:
        current += ch
        if fstring and ch == "{":
            depth += 1
        elif fstring and ch == "}":
            depth = max(depth - 1, 0)
        elif ch == " " and depth == 0:
            words.append(current)
            current = ""
    if current:
        words.append(current)
    return words


def _same_tree(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError:
        return False


def format_source(source: str, limit: int = LIMIT) -> str:
    """A cell's source with its long lines wrapped, or unchanged if that would change its tree."""
    if all(len(line) <= limit for line in source.splitlines()):
        return source
    try:
        ast.parse(source)
    except SyntaxError:
        return source  # IPython magics or broken code: leave it to a person
    lines = source.split("\n")
    for _ in range(5):  # each pass wraps what the previous one could; a line is kept only if safe
        changed = False
        k = 0
        while k < len(lines):
            if len(lines[k]) > limit:
                wrapped = wrap_line(lines[k], limit)
                trial = lines[:k] + wrapped + lines[k + 1:]
                if wrapped != [lines[k]] and _same_tree(source, "\n".join(trial)):
                    lines, changed = trial, True
                    k += len(wrapped)
                    continue
            k += 1
        if not changed:
            break
    return "\n".join(lines)


def long_lines(nb: dict, limit: int = LIMIT) -> list[tuple[int, int, str]]:
    """(code cell number from 1, line number from 1, line) for every code line over ``limit``."""
    out = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for number, cell in enumerate(code, start=1):
        src = "".join(cell.get("source", ""))
        out += [(number, k, line) for k, line in enumerate(src.splitlines(), start=1) if len(line) > limit]
    return out


def format_notebook(path: Path, limit: int = LIMIT) -> int:
    """Rewrite ``path`` in place (only if something changed); returns the number of cells changed."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    changed = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", ""))
        new = format_source(src, limit)
        if new != src:
            cell["source"] = new.splitlines(keepends=True)
            changed += 1
    if changed:
        indent = 1 if text.startswith('{\n "') else 2
        path.write_text(json.dumps(nb, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="only list long lines; exit 1 if any")
    ap.add_argument("--limit", type=int, default=LIMIT)
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"format_notebooks: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    remaining = 0
    for path in args.notebooks:
        if not args.check:
            n = format_notebook(path, args.limit)
            if n:
                print(f"{path}: {n} cells re-wrapped")
        for cell, line_no, line in long_lines(json.loads(path.read_text(encoding="utf-8")), args.limit):
            remaining += 1
            print(f"{path}: code cell {cell}, line {line_no}: {len(line)} > {args.limit}: {line.strip()[:60]}")
    return 1 if remaining else 0


if __name__ == "__main__":
    raise SystemExit(main())
