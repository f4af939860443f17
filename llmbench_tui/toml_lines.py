"""Finding the line of a field in a TOML file from its pydantic location.

``tomllib`` reports syntax errors with a line, but validation happens after parsing, where line
numbers are gone. ``locate`` walks the file's table headers instead: a location such as
``("prompts", 1, "checks", 0, "pattern")`` is the ``pattern =`` line of the first
``[[prompts.checks]]`` table after the second ``[[prompts]]`` header; fields of plain tables
(``[options]``), top-level keys and inline values (``checks = [{...}]``, ``rules = [...]``)
are found too. When the exact line cannot be told, the nearest enclosing one is given.

Kept apart from ``suite`` (which re-exports ``locate``) so that ``quality.fixtures`` can use it
without importing the suite schema, which itself imports the quality package.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")


def _assignment(key: str) -> re.Pattern[str]:
    return re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")


def locate(text: str, loc: tuple) -> int | None:
    """The 1-based line where the field at pydantic location ``loc`` is written, if found."""
    lines = text.splitlines()
    headers = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _HEADER.match(line))]
    parts = list(loc)
    path = ""  # the table we are in ("" = top level)
    start, end = 0, len(lines)  # its lines, sub-tables included
    found: int | None = None  # 0-based line of the deepest thing located so far
    i = 0
    while i < len(parts):
        key = parts[i]
        if isinstance(key, int):
            i += 1
            continue
        key = str(key)
        index = parts[i + 1] if i + 1 < len(parts) and isinstance(parts[i + 1], int) else None
        name = f"{path}.{key}" if path else key
        tables = [h for h in headers if start <= h[0] < end and h[1] == name]
        if tables:  # [name] or [[name]]: the index picks the occurrence of an array of tables
            occurrence = index if index is not None else 0
            if occurrence >= len(tables):
                break
            at = tables[occurrence][0]
            start = at + 1
            end = next(
                (h[0] for h in headers if h[0] > at and not h[1].startswith(name + ".")),
                len(lines),
            )
            path, found = name, at
            i += 2 if index is not None else 1
            continue
        # A key of the current table, written before its first sub-table header.
        own_end = next((h[0] for h in headers if start <= h[0] < end), end)
        pattern = _assignment(key)
        line = next((j for j in range(start, own_end) if pattern.match(lines[j])), None)
        if line is None:
            break
        found = line
        if index is not None and lines[line].rstrip().endswith("["):
            # A multi-line array of inline tables: the index-th line opening one.
            opening = [j for j in range(line + 1, own_end) if lines[j].lstrip().startswith("{")]
            if index < len(opening):
                found = opening[index]
        break
    return None if found is None else found + 1
