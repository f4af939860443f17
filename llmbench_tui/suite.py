"""Loading TOML suite files with errors that name the file, the field and the line.

``tomllib`` reports syntax errors with a line but validation happens after parsing, where line
numbers are gone; ``locate`` finds the line of a field from its pydantic location by walking the
file's table headers, which is enough for the flat shape suites have.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from .schema import Suite


class SuiteError(Exception):
    """A suite file that cannot be used; the message names file, field and line."""


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")


def locate(text: str, loc: tuple) -> int | None:
    """The 1-based line where the field at pydantic location ``loc`` is written, if found."""
    lines = text.splitlines()
    keys = [str(p) for p in loc if not isinstance(p, int)]
    indexes = [p for p in loc if isinstance(p, int)]
    if not keys:
        return None
    table, field = (keys[0], keys[1] if len(keys) > 1 else None)
    # Array of tables ([[prompts]]) or a table ([options]) holding the field.
    occurrence = indexes[0] if indexes else 0
    seen = -1
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m and m.group(1) == table:
            seen += 1
            if seen == occurrence:
                if field is None:
                    return i + 1
                for j in range(i + 1, len(lines)):
                    if _HEADER.match(lines[j]):
                        break
                    if re.match(rf"^\s*{re.escape(field)}\s*=", lines[j]):
                        return j + 1
                return i + 1
    # A top-level key (possibly an inline array or table holding the field).
    for i, line in enumerate(lines):
        if _HEADER.match(line):
            break
        if re.match(rf"^\s*{re.escape(table)}\s*=", line):
            return i + 1
    return None


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite; raise ``SuiteError`` with a message a person can act on."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"suite file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"cannot read suite file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from None
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = locate(text, loc)
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: field '{field}': {err['msg']}")
        raise SuiteError("\n".join(problems)) from None
    w = suite.workload
    grid = w is not None and (w.localscore or any(v is not None for v in (w.pp, w.tg, w.depth)))
    if not suite.prompts and not grid:  # a size grid makes its own synthetic prompts
        raise SuiteError(f"{path}: field 'prompts': the suite has no prompts ([[prompts]] tables)")
    ids = [p.id for p in suite.prompts]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        line = locate(text, ("prompts", ids.index(dup[0]) + 1, "id"))
        where = f"{path}:{line}" if line else str(path)
        raise SuiteError(f"{where}: field 'prompts.id': duplicate prompt id {dup[0]!r}")
    return suite
