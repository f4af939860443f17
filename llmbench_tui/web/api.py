"""The read-only JSON API as pure functions: query parameters in, ``Reply(status, document)`` out.

No aiohttp here (``server`` adapts these to routes), and nothing that writes: the store is only
queried. The history filters are parsed by the very parser the command line uses
(``commands.common.add_filters`` / ``query_from``), fed ``--NAME=VALUE`` for each parameter, so
``GET /api/runs?model=qwen&sort=-timings.decode_tok_s`` and ``llmbench history --model qwen
--sort=-timings.decode_tok_s`` cannot disagree about what a filter means. ``--data-dir`` is
not a parameter: the server decides which database is served.

Documents are records exactly as stored. ``json_bytes`` writes them with every character a
browser or a terminal could act on as a ``\\uXXXX`` escape (``<``, ``>``, ``&``, C0/C1 controls,
bidi overrides, U+2028/U+2029), which a JSON parser reads back as the very same string.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from llmbench_tui.commands.common import add_filters, inert_json, query_from
from llmbench_tui.store import RunQuery, RunStore, StoreError, parse_when

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# The command line's filter options (``add_filters``), by their option names.
FILTERS = ("search", "model", "backend", "host", "status", "session", "since", "until", "sort")
PAGING = ("limit", "offset", "page")
_SORT = re.compile(r"[-+]?[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
# What could end a <script>, open a tag or an entity, or end a line in JavaScript source.
_HTML_UNSAFE = re.compile("[<>&\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    doc: Any


class BadParameter(ValueError):
    """A query parameter the API refuses (HTTP 400), with the parameter's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    def reply(self) -> Reply:
        return Reply(400, {"error": str(self), "parameter": self.name})


def json_bytes(doc: Any) -> bytes:
    """``doc`` as compact JSON that is inert in a browser and on a terminal, read back unchanged."""
    text = inert_json(orjson.dumps(doc).decode())
    return _HTML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


class _Refused(Exception):
    pass


class _FilterParser(argparse.ArgumentParser):
    """The command line's filter parser, raising instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _Refused(message)


def _filter_parser() -> _FilterParser:
    parser = _FilterParser(prog="GET /api/runs", add_help=False, exit_on_error=False)
    add_filters(parser, default_limit=DEFAULT_LIMIT)
    return parser


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return values[0]


def _int(name: str, text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise BadParameter(name, f"{text!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise BadParameter(name, f"must be {bound}, got {value}")
    return value


def parse_runs_query(params: Mapping[str, Sequence[str]]) -> tuple[RunQuery, int, int]:
    """``(query, offset, limit)`` from ``GET /api/runs`` parameters (name -> values)."""
    for name in params:
        if name not in FILTERS and name not in PAGING:
            known = ", ".join((*FILTERS, *PAGING))
            raise BadParameter(name, f"unknown parameter (known: {known})")
    argv = []
    for name in FILTERS:
        value = _single(params, name)
        if value is not None:
            argv.append(f"--{name}={value}")
    try:
        args = _filter_parser().parse_args(argv)
    except argparse.ArgumentError as exc:
        name = (exc.argument_name or "parameter").split("/")[-1].lstrip("-")
        raise BadParameter(name, exc.message) from None
    except _Refused as exc:  # not expected with known options only; said plainly if it happens
        raise BadParameter("parameters", str(exc)) from None
    query = query_from(args)
    for name in ("since", "until"):
        value = getattr(query, name)
        if value:
            try:
                parse_when(value, end=name == "until")
            except StoreError as exc:
                raise BadParameter(name, str(exc)) from None
    if not _SORT.fullmatch(query.sort or ""):
        raise BadParameter("sort", "a field or dotted figure path, '-' first for descending")
    limit_text = _single(params, "limit")
    limit = DEFAULT_LIMIT if limit_text is None else _int("limit", limit_text, 1, MAX_LIMIT)
    offset_text, page_text = _single(params, "offset"), _single(params, "page")
    if offset_text is not None and page_text is not None:
        raise BadParameter("page", "give offset or page, not both")
    offset = 0
    if offset_text is not None:
        offset = _int("offset", offset_text, 0)
    elif page_text is not None:
        offset = (_int("page", page_text, 1) - 1) * limit
    query.limit, query.offset = limit, offset  # paged by the store (in SQL on a database)
    return query, offset, limit


def list_runs(store: RunStore, params: Mapping[str, Sequence[str]]) -> Reply:
    """``GET /api/runs``: one page of matching runs (newest first unless ``sort`` says
    otherwise) and how many match in all."""
    try:
        query, offset, limit = parse_runs_query(params)
    except BadParameter as exc:
        return exc.reply()
    try:
        page = store.query(query)
        total = store.count(query)
    except StoreError as exc:
        return _unavailable(exc)
    return Reply(200, {
        "total": total, "offset": offset, "limit": limit, "count": len(page),
        "next_offset": offset + limit if offset + limit < total else None, "runs": page,
    })  # fmt: skip


def get_run(store: RunStore, run_id: str) -> Reply:
    """``GET /api/runs/{id}``: one full record (an id or an unambiguous prefix, as ``show``)."""
    try:
        return Reply(200, store.get_run(run_id))
    except StoreError as exc:
        if str(exc).startswith(("no run with id", "run id prefix")):
            return Reply(404, {"error": _without_path(store, exc)})
        return _unavailable(exc)


def get_session(store: RunStore, session_id: str) -> Reply:
    """``GET /api/sessions/{id}``: the session as stored (environment, plan; ``null`` for a
    session known only from imported runs), with how many runs it has and where to list them."""
    try:
        full_id = store.resolve_session_id(session_id)
    except StoreError as exc:
        if str(exc).startswith(("no session with id", "session id prefix")):
            return Reply(404, {"error": _without_path(store, exc)})
        return _unavailable(exc)
    try:
        doc = store.get_session(full_id)
        runs = store.count(RunQuery(session_id=full_id))
    except StoreError as exc:
        return _unavailable(exc)
    return Reply(200, {
        "id": full_id, "session": doc, "run_count": runs,
        "runs_url": "/api/runs?session=" + quote(full_id, safe=""),
    })  # fmt: skip


def not_found(path: str) -> Reply:
    return Reply(404, {"error": f"no such endpoint: {path}"})


def _without_path(store: RunStore, exc: StoreError) -> str:
    """The store's sentence minus the database path (a client needs the id, not the file)."""
    return str(exc).replace(f" in {store.location}", "")


def _unavailable(exc: StoreError) -> Reply:
    return Reply(503, {"error": f"the run database cannot be read: {exc}"})
