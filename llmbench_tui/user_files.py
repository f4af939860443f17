"""Reading a file the user named (a suite, a schema, a rubric, a fixture, the settings) and
writing one (an export, a report): the one home of the sentences that say why it cannot be read
or written, so every command words them alike and no traceback reaches the user."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class UserFileError(ValueError):
    """A file the user named cannot be read; the message names it and says why."""


def read_user_file(path: Path, what: str, *, max_bytes: int | None = None) -> str:
    """The UTF-8 text of ``path``; ``UserFileError`` with one sentence naming ``what`` (``"suite
    file"``) and the path when it is missing, over ``max_bytes``, not UTF-8 or unreadable."""
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise UserFileError(f"{what} {path} is {size:,} bytes, over {max_bytes:,}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserFileError(f"{what} not found: {path}") from None
    except UnicodeDecodeError:
        raise UserFileError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def write_user_file(path: Path, text: str, error: type[Exception]) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, then renamed);
    ``error`` with one sentence naming the path when it cannot be written."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
