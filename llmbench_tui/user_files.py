"""Reading a file the user named (a suite, a schema, a rubric, a fixture, the settings): the one
home of the sentences that say why it cannot be read, so every command words them alike and no
traceback reaches the user."""

from __future__ import annotations

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
