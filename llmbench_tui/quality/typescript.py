"""The ``typescript`` check: finding ``tsc`` and type-checking an answer with it.

``tsc`` is looked for, in order: the ``LLMBENCH_TSC`` environment variable (a path or a command
name), a project-local ``node_modules/.bin/tsc`` in the current folder or any folder above it,
the same next to this package's checkout (``npm ci`` at the repository root installs the pinned
TypeScript there), then ``PATH``. Where there is none the check is not run, and says how to
get one.

The code is written to ``answer.ts`` in a fresh temporary folder, preceded by as many empty lines
as the answer has before it, and an optional prelude (ambient declarations, e.g. Vue's compiler
macros) goes to a ``prelude.d.ts`` beside it, so ``tsc``'s line numbers are answer lines without
arithmetic. Both files are given on the command line, which makes ``tsc`` ignore any
``tsconfig.json``; ``--moduleDetection force`` makes the answer a module even without imports,
so its top-level names cannot clash with the DOM's globals (``name``, ``status``...).
``--skipDefaultLibCheck`` rather than ``--skipLibCheck``: the latter would skip every ``.d.ts``,
and a mistake in the prelude would silently turn its names into ``any``.

``tsc`` only reads the code, it never runs it, so it is not sandboxed beyond the temporary
folder, a minimal environment and a timeout (Node's memory reservations would not fit the
sandbox's address-space limit anyway).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TSC_FLAGS = (
    "--noEmit",
    "--strict",
    "--target",
    "es2020",
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
    "--moduleDetection",
    "force",
    "--skipDefaultLibCheck",
    "--pretty",
    "false",
)
NOT_FOUND = "tsc not found (set LLMBENCH_TSC or install TypeScript: npm install typescript)"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_DIAGNOSTIC = re.compile(
    r"^(?P<file>answer\.ts|prelude\.d\.ts)\((?P<line>\d+),\d+\): "
    r"error (?P<code>TS\d+): (?P<msg>.*)$"
)


def find_tsc() -> tuple[str | None, str]:
    """``(path, "")`` for the ``tsc`` to use, or ``(None, reason)`` when there is none."""
    configured = os.environ.get("LLMBENCH_TSC", "").strip()
    if configured:
        found = shutil.which(configured)
        if found:
            return found, ""
        return None, f"LLMBENCH_TSC={configured} is not an executable file"
    for start in (Path.cwd(), _REPO_ROOT):
        for folder in (start, *start.parents):
            candidate = folder / "node_modules" / ".bin" / "tsc"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate), ""
    found = shutil.which("tsc")
    return (found, "") if found else (None, NOT_FOUND)


@dataclass(frozen=True)
class TscOutcome:
    """``passed`` is ``None`` when ``tsc`` could not run or give an answer (the reason is in
    ``detail``); ``errors`` are ``"TS2322: … (line 3)"`` strings."""

    passed: bool | None
    detail: str
    errors: tuple[str, ...] = ()


def typecheck(source: str, *, line_offset: int, prelude: str, timeout_s: float) -> TscOutcome:
    """Type-check ``source`` (TypeScript, ``line_offset`` answer lines before it) with
    ``tsc --strict``. Passing means no errors at all: one type error and the code does not
    compile, so there is no partial credit."""
    tsc, reason = find_tsc()
    if tsc is None:
        return TscOutcome(None, reason)
    with tempfile.TemporaryDirectory(prefix="llmbench-tsc-") as work:
        folder = Path(work)
        (folder / "answer.ts").write_text(
            "\n" * line_offset + source, encoding="utf-8", errors="replace"
        )
        files = ["answer.ts"]
        if prelude:
            (folder / "prelude.d.ts").write_text(prelude, encoding="utf-8")
            files.append("prelude.d.ts")
        env = {"PATH": os.environ.get("PATH", os.defpath)}
        try:
            done = subprocess.run(
                [tsc, *TSC_FLAGS, *files],
                cwd=work,
                env=env,
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return TscOutcome(None, f"tsc did not finish within {timeout_s:g} s")
        except OSError as exc:
            return TscOutcome(None, f"tsc could not start: {exc}")
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    errors = _diagnostics(output)
    if errors:
        more = ""
        if len(errors) > 1:
            codes = list(dict.fromkeys(e.split(":", 1)[0] for e in errors[1:]))
            more = f"; {len(errors) - 1} more: {', '.join(codes[:5])}"
        return TscOutcome(False, errors[0] + more, tuple(errors))
    if done.returncode == 0:
        return TscOutcome(True, "tsc --strict: no errors")
    # No located error but a failure: tsc itself or Node is broken (a bad option, no node).
    first = next((line for line in output.splitlines() if line.strip()), "")
    return TscOutcome(None, f"tsc failed (exit {done.returncode}): {first}")


def _diagnostics(output: str) -> list[str]:
    """``tsc --pretty false`` errors in our two files as ``"TS2322: message (line 3)"``;
    errors in the prelude say so; continuation lines (indented) are left out."""
    errors = []
    for line in output.splitlines():
        m = _DIAGNOSTIC.match(line)
        if m:
            where = "line" if m.group("file") == "answer.ts" else "prelude line"
            errors.append(f"{m.group('code')}: {m.group('msg')} ({where} {m.group('line')})")
    return errors
