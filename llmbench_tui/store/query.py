"""Which stored runs a ``RunQuery`` selects and in which order: the filters, the search text,
the sort. The store (``store.runs``) applies them to its cached documents."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from llmbench_tui.schema import get_path

from .errors import StoreError

_SEARCHED = ("prompt", "response", "model", "model_spec", "error", "prompt_id")


@dataclass
class RunQuery:
    """What the history list shows: filters, case-insensitive search, sort and limit.

    ``sort`` is any record field or dotted figure path (``"-timings.decode_tok_s"``); a leading
    ``-`` sorts descending; runs without the field come last either way. ``since``/``until`` take
    an ISO date (whole day, UTC) or datetime (naive means UTC). ``machine`` is part of the host
    name, CPU or GPU model (any case) or a prefix of the machine id (``Store.machine_of``).
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


def started_at(record: dict[str, Any]) -> datetime | None:
    """The run's ``started_at`` as an aware datetime; ``None`` when it has none or no date."""
    raw = record.get("started_at")
    return _parse_iso(raw) if isinstance(raw, str) else None


@functools.lru_cache(maxsize=262_144)
def _parse_iso(raw: str) -> datetime | None:
    """Parsed once per distinct timestamp: sorting and date filters touch every run."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def sort_key(field: str) -> Callable[[dict[str, Any]], tuple]:
    """Sorts runs by ``field`` (a dotted path), runs without it marked to come last."""
    def key(record: dict[str, Any]) -> tuple:
        value = started_at(record) if field == "started_at" else get_path(record, field)
        if value is None:
            return (1, 0, 0)
        if isinstance(value, datetime):
            return (0, 0, value.timestamp())
        if isinstance(value, bool | int | float):
            return (0, 0, float(value))
        return (0, 1, str(value).casefold())

    return key


def score_at_least(record: dict[str, Any], minimum: float) -> bool:
    """Whether the run has a ``quality.score`` of at least ``minimum``."""
    score = get_path(record, "quality.score")
    return isinstance(score, int | float) and not isinstance(score, bool) and score >= minimum


def haystack(record: dict[str, Any]) -> str:
    """The run's searched text, folded for a case-insensitive search."""
    parts = [str(record.get(name) or "") for name in _SEARCHED]
    tags = record.get("tags")
    if isinstance(tags, list):
        parts.extend(str(tag) for tag in tags)
    return "\0".join(parts).casefold()


def record_checks(
    q: RunQuery, machine_of: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> list[Callable[[dict[str, Any]], bool]]:
    """One predicate per filter of ``q`` (the search is the store's: it keeps the folded text
    of each run); ``machine_of`` gives a run's machine block (``Store.machine_of``)."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    if q.model:
        want = q.model.casefold()
        checks.append(
            lambda r: (
                want in str(r.get("model") or "").casefold()
                or want in str(r.get("model_spec") or "").casefold()
            )
        )
    if q.backend:
        checks.append(lambda r: r.get("backend") == q.backend)
    if q.host:
        host = q.host.casefold()
        checks.append(lambda r: host in str(r.get("host") or "").casefold())
    if q.status:
        checks.append(lambda r: r.get("status") == q.status)
    if q.session_id:
        sid = q.session_id
        checks.append(lambda r: str(r.get("session_id") or "").startswith(sid))
    if q.machine:
        from llmbench_tui.telemetry.environment import machine_matches

        machine = q.machine
        memo: dict[Any, bool] = {}  # machine id -> match: thousands of runs, a few machines

        def on_machine(record: dict[str, Any]) -> bool:
            block = machine_of(record)
            key = block.get("machine_id") if block else None
            if not isinstance(key, str):  # no id (an odd imported block): no memo
                return machine_matches(block, machine)
            if key not in memo:
                memo[key] = machine_matches(block, machine)
            return memo[key]

        checks.append(on_machine)
    if q.since:
        since = parse_when(q.since)
        checks.append(lambda r: (started_at(r) or since) >= since and started_at(r) is not None)
    if q.until:
        until = parse_when(q.until, end=True)
        checks.append(lambda r: (started_at(r) or until) <= until and started_at(r) is not None)
    if q.min_score is not None:
        min_score = q.min_score
        checks.append(lambda r: score_at_least(r, min_score))
    return checks


def in_order(hits: list[dict[str, Any]], q: RunQuery) -> list[dict[str, Any]]:
    """``hits`` sorted by ``q.sort`` (runs without the field last either way), at most
    ``q.limit``."""
    field = q.sort or "-started_at"
    descending = field.startswith("-")
    key = sort_key(field.lstrip("-+"))
    keyed = [(key(r), r) for r in hits]
    present = [kr for kr in keyed if kr[0][0] == 0]
    present.sort(key=lambda kr: kr[0], reverse=descending)
    ordered = [r for _, r in present] + [r for k, r in keyed if k[0] == 1]
    if q.limit is not None:
        ordered = ordered[: max(q.limit, 0)]
    return ordered
