"""How the local store reads records: start times, sort keys and filters evaluated in Python,
deep copies, and the runs, sessions and series of a database file of any schema version."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from llmbench_tui.schema import get_path
from llmbench_tui.store.journal import META_TABLE, Tables
from llmbench_tui.store.query import RunQuery

STORE_SCHEMA = 1
RUNS, SESSIONS, SERIES = "runs", "sessions", "series"


def started(record: dict[str, Any]) -> datetime | None:
    raw = record.get("started_at")
    return parse_iso(raw) if isinstance(raw, str) else None


@functools.lru_cache(maxsize=262_144)
def parse_iso(raw: str) -> datetime | None:
    """Parsed once per distinct timestamp: sorting and date filters touch every run."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def sort_key(field: str) -> Callable[[dict[str, Any]], tuple]:
    def key(record: dict[str, Any]) -> tuple:
        value = started(record) if field == "started_at" else get_path(record, field)
        if value is None:
            return (1, 0, 0)
        if isinstance(value, datetime):
            return (0, 0, value.timestamp())
        if isinstance(value, bool | int | float):
            return (0, 0, float(value))
        return (0, 1, str(value).casefold())

    return key


def unfiltered(q: RunQuery) -> bool:
    return not (q.search or q.model or q.backend or q.host or q.status or q.since or q.until
                or q.session_id or q.machine or q.min_score is not None)  # fmt: skip


def score_at_least(record: dict[str, Any], minimum: float) -> bool:
    score = get_path(record, "quality.score")
    return isinstance(score, int | float) and not isinstance(score, bool) and score >= minimum


def copy_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A deep copy, so a caller editing a result can never change the cached database."""
    return orjson.loads(orjson.dumps(doc))


def normalize_tables(tables: Tables) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """Runs, sessions and series of any version of the database, without writing anything.

    A schema-0 file (stock TinyDB, before the store had ``_meta``) keeps runs under TinyDB's
    integer ids in ``runs`` or ``_default`` and may embed each run's series in the record; here
    runs are keyed by their own id (one is generated where missing) and series are split off.
    """
    runs: list[dict] = []
    series: dict[str, dict] = {}
    for name in (RUNS, "_default"):
        for doc in tables.get(name, {}).values():
            if not isinstance(doc, dict) or "started_at" not in doc:
                continue
            record = dict(doc)
            record["id"] = str(record.get("id") or uuid.uuid4().hex)
            embedded = record.pop(SERIES, None)
            if isinstance(embedded, dict):
                series[record["id"]] = embedded
            runs.append(record)
    sessions = [
        dict(doc)
        for doc in tables.get(SESSIONS, {}).values()
        if isinstance(doc, dict) and doc.get("id")
    ]
    return runs, sessions, series


def store_schema(tables: Tables | None) -> int:
    """The store schema a parsed file was written with (0: no ``_meta``, a stock TinyDB file)."""
    if not tables or META_TABLE not in tables:
        return 0 if tables else STORE_SCHEMA
    meta = tables[META_TABLE].get("1")
    if not isinstance(meta, dict) or not isinstance(meta.get("schema"), int):
        return 0
    return meta["schema"]
