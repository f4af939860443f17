"""Loading TOML suite files with errors that name the file, the field and the line.

``tomllib`` reports syntax errors with a line but validation happens after parsing, where line
numbers are gone; ``locate`` (``toml_lines``) finds the line of a field from its pydantic location
by walking the file's table headers, nested ``[[prompts.checks]]`` included. Everything a check or
a fixture can get wrong (unknown kind, bad regex, a schema that is not a JSON Schema, a missing
fixture or schema file) is refused here, before any model runs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from .quality import validation_message
from .schema import Suite
from .toml_lines import locate
from .user_files import UserFileError, read_user_file

__all__ = ["SuiteError", "load_suite", "locate"]


class SuiteError(Exception):
    """A suite file that cannot be used; the message names file, field and line."""


def load_suite(path: str | Path) -> Suite:
    """Parse and validate a suite; raise ``SuiteError`` with a message a person can act on."""
    path = Path(path)
    try:
        text = read_user_file(path, "suite file")
    except UserFileError as exc:
        raise SuiteError(str(exc)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from None
    try:
        # Fixture folders and schema files are relative to the suite file.
        suite = Suite.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise SuiteError(validation_message(exc, path, text)) from None
    w = suite.workload
    grid = w is not None and (w.localscore or any(v is not None for v in (w.pp, w.tg, w.depth)))
    if not suite.prompts and not suite.conversations and not grid:  # a grid makes its own prompts
        raise SuiteError(f"{path}: field 'prompts': the suite has no prompts ([[prompts]] tables) "
                         "and no conversations ([[conversations]] tables)")
    conv_ids = [c.id for c in suite.conversations]
    dup_conv = sorted({i for i in conv_ids if conv_ids.count(i) > 1})
    if dup_conv:
        line = locate(text, ("conversations", conv_ids.index(dup_conv[0]) + 1, "id"))
        where = f"{path}:{line}" if line else str(path)
        raise SuiteError(f"{where}: field 'conversations.id': duplicate conversation id "
                         f"{dup_conv[0]!r}")
    ids = [p.id for p in suite.prompts]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        line = locate(text, ("prompts", ids.index(dup[0]) + 1, "id"))
        where = f"{path}:{line}" if line else str(path)
        raise SuiteError(f"{where}: field 'prompts.id': duplicate prompt id {dup[0]!r}")
    return suite
