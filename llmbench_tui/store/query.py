"""What both store backends share: the query (:class:`RunQuery`), its date syntax, the text a
search looks in, and the one error type a user sees. One home, so the local file and the team
database can never disagree about what a filter means."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

SEARCHED = ("prompt", "response", "model", "model_spec", "error", "prompt_id")


class StoreError(Exception):
    """A store problem explained in one sentence a user can act on."""


@dataclass
class RunQuery:
    """What the history list shows: filters, case-insensitive search, sort, offset and limit.

    ``sort`` is any record field or dotted figure path (``"-timings.decode_tok_s"``); a leading
    ``-`` sorts descending; runs without the field come last either way. ``since``/``until`` take
    an ISO date (whole day, UTC) or datetime (naive means UTC). ``machine`` is part of the host
    name, CPU or GPU model (any case) or a prefix of the machine id (``Store.machine_of``).
    ``offset`` skips that many sorted runs first (paging).
    """

    search: str | None = None
    model: str | None = None
    backend: str | None = None
    host: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None
    session_id: str | None = None
    machine: str | None = None
    sort: str = "-started_at"
    limit: int | None = None
    min_score: float | None = None  # quality.score at least this (unscored runs left out)
    offset: int = 0


def parse_when(text: str, *, end: bool = False) -> datetime:
    """An ISO date or datetime as an aware UTC datetime; a bare date as the start (or, with
    ``end``, the end) of that day, so ``--until 2025-01-31`` includes the 31st."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) - timedelta(microseconds=1) if end else moment
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StoreError(
            f"{text!r} is not a date: use an ISO date like 2025-01-31 or 2025-01-31T14:30"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def haystack(record: dict[str, Any]) -> str:
    """The case-folded text ``--search`` looks in: prompt, response, model, error, tags."""
    parts = [str(record.get(name) or "") for name in SEARCHED]
    tags = record.get("tags")
    if isinstance(tags, list):
        parts.extend(str(tag) for tag in tags)
    return "\0".join(parts).casefold()


def with_machine(record: dict[str, Any], sessions: dict[str, Any]) -> dict[str, Any]:
    """The record with its ``machine`` block (from its session's environment) when it has none
    yet and its session is known: stored in the run, so an export carries it and a query need
    not look the session up. An imported record keeps its own."""
    if isinstance(record.get("machine"), dict):
        return record
    from llmbench_tui.telemetry.environment import machine_block

    session = sessions.get(str(record.get("session_id")))
    block = machine_block(session.get("environment")) if isinstance(session, dict) else None
    return {**record, "machine": block} if block else record
