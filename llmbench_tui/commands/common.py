"""What every command shares: ``--data-dir``, the filter options, opening the store with a
one-sentence error, and terminal-inert output (errors, JSON, aligned tables).

One home, so ``export`` and ``history`` can never disagree about what a filter means, and no
command prints record text that a terminal would act on.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Protocol

import orjson

from llmbench_tui.safe_text import one_line
from llmbench_tui.store import RunQuery, RunStore, StoreError
from llmbench_tui.store import open_store as open_location


class ArgumentAdder(Protocol):
    """What flag helpers need: a parser or one of its argument groups (``llmbench --help``
    lists the options in groups)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action: ...

    def add_mutually_exclusive_group(self, *, required: bool = False) -> Any: ...


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--store``: every command that reads or writes runs takes both."""
    parser.add_argument(
        "--data-dir", help="where history.json lives (default: LLMBENCH_DATA_DIR or the platform's)"
    )
    add_store_flag(parser)


def add_store_flag(parser: ArgumentAdder) -> None:
    parser.add_argument(
        "--store", metavar="URL_OR_PATH",
        help="where runs are stored: a history.json path (the local store, the default) or "
        "postgresql://USER@HOST/DB (a team database); default LLMBENCH_STORE, then the "
        "store line of config.toml",
    )  # fmt: skip


def add_filters(parser: argparse.ArgumentParser, *, default_limit: int | None) -> None:
    """The query options shared by ``history`` and ``export``."""
    add_data_dir(parser)
    parser.add_argument(
        "--search", help="case-insensitive text in prompt, response, model, tags, error"
    )
    parser.add_argument("--model", help="model name (part of it, case-insensitive)")
    parser.add_argument("--backend", choices=("ollama", "openai", "gguf"))
    parser.add_argument("--host", help="host or base URL (part of it)")
    parser.add_argument("--status", choices=("ok", "error", "timeout", "cancelled", "skipped"))
    parser.add_argument("--session", dest="session_id", help="session id (or its prefix)")
    parser.add_argument(
        "--machine", help="machine: part of its host name, CPU or GPU model, or an id prefix"
    )
    parser.add_argument("--since", help="from this ISO date/datetime (UTC)")
    parser.add_argument("--until", help="up to this ISO date (whole day) or datetime (UTC)")
    parser.add_argument("--min-score", type=float, metavar="X",
                        help="quality score at least X (0-10); unscored runs are left out")
    parser.add_argument(
        "--sort", default="-started_at",
        help="field or figure path; descending with a '-' after '=': --sort=-timings.decode_tok_s",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=int, default=default_limit,
        help=f"at most N runs (default: {default_limit or 'all'})",
    )  # fmt: skip


def query_from(args: argparse.Namespace) -> RunQuery:
    return RunQuery(
        search=args.search, model=args.model, backend=args.backend, host=args.host,
        status=args.status, since=args.since, until=args.until, session_id=args.session_id,
        machine=getattr(args, "machine", None), sort=args.sort, limit=args.limit,
        min_score=getattr(args, "min_score", None),
    )  # fmt: skip


def open_store(args: argparse.Namespace) -> RunStore:
    """The store ``--store``/``--data-dir`` name (``StoreError`` with one sentence if not)."""
    return open_location(getattr(args, "store", None), args.data_dir)


def stored_runs_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser of a command that works on stored runs, with its ``SESSION_OR_RUN`` argument
    (``runs_of``) in place."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("target", metavar="SESSION_OR_RUN",
                        help="a session id or a run id (or an unambiguous prefix of either)")
    return parser


def runs_of(store: RunStore, ref: str) -> list[dict[str, Any]]:
    """The runs ``ref`` names for commands that take SESSION_OR_RUN: one run (id or prefix),
    else every run of a session (id or prefix), oldest first. ``StoreError`` says which when
    ``ref`` is ambiguous, or that it is neither."""
    errors = []
    try:
        return [store.get_run(ref)]
    except StoreError as exc:
        errors.append(str(exc))
    try:
        sid = store.resolve_session_id(ref)
    except StoreError as exc:
        errors.append(str(exc))
    else:
        runs = store.query(RunQuery(session_id=sid, sort="started_at"))
        return [r for r in runs if r.get("session_id") == sid]
    ambiguous = [e for e in errors if "matches" in e]
    raise StoreError(ambiguous[0] if ambiguous else f"{ref!r} is neither a run id nor a "
                     f"session id in {store.location}")


def fail(prog: str, message: str, code: int = 1) -> int:
    """Print a one-sentence error (never a traceback) and return the exit code.

    Messages quote record text (ids of an ambiguous prefix, model names), so they are cleaned too.
    """
    print(f"{prog}: {one_line(message)}", file=sys.stderr)
    return code


# What orjson leaves raw in a string but a terminal may act on: DEL, the 8-bit C1 controls (CSI,
# OSC...) and the bidi overrides. C0 controls, ESC included, it already writes as \u00XX.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert_json(text: str) -> str:
    """orjson output made inert on a terminal yet read back unchanged: characters a terminal
    would act on can only sit inside JSON strings, where ``\\uXXXX`` is the same text."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_text(doc: Any) -> str:
    """``doc`` as indented, terminal-inert JSON (``--json`` output)."""
    return inert_json(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()) + "\n"


def table(rows: list[list[str]]) -> str:
    """Plain aligned columns (header first); readable over SSH and in a pipe."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
