"""The team store's tables, its migrations and how a query becomes SQL.

Each run is one row of ``runs``: the record itself as JSONB (``doc``) plus real columns for what
is filtered and sorted (started time, model, backend, host, status, session, machine, score,
the search text), each indexed, so a history page is an index scan, not a load of every run.
JSONB cannot hold the NUL character, which model output may contain: such a record is kept
byte for byte in ``raw`` (its JSON) and read back from there, so every record reads back equal.

Migrations are numbered; ``schema_version`` holds the one the database is at. A program meeting
a newer number refuses to touch the database rather than guess.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from llmbench_tui.store.query import RunQuery, parse_when

PG_SCHEMA = 2

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE runs (
            id text PRIMARY KEY,
            session_id text,
            started_at timestamptz,
            model text,
            model_spec text,
            backend text,
            host text,
            status text,
            machine_id text,
            machine_text text,
            score double precision,
            search text NOT NULL DEFAULT '',
            doc jsonb NOT NULL,
            raw bytea
        )""",
        "CREATE INDEX runs_started ON runs (started_at DESC NULLS LAST, id)",
        "CREATE INDEX runs_id_prefix ON runs (id text_pattern_ops)",
        "CREATE INDEX runs_session ON runs (session_id text_pattern_ops)",
        "CREATE INDEX runs_backend ON runs (backend, started_at DESC NULLS LAST)",
        "CREATE INDEX runs_status ON runs (status, started_at DESC NULLS LAST)",
        "CREATE INDEX runs_machine ON runs (machine_id text_pattern_ops)",
        "CREATE INDEX runs_score ON runs (score)",
        """CREATE TABLE sessions (
            id text PRIMARY KEY,
            started_at timestamptz,
            doc jsonb NOT NULL,
            raw bytea
        )""",
        """CREATE TABLE series (
            run_id text PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
            started_at timestamptz,
            doc jsonb NOT NULL,
            raw bytea
        )""",
        "CREATE INDEX series_started ON series (started_at)",
    ],
    # How many runs, without counting them (count(*) over a million rows is ~0.1-0.2 s, on
    # every history page): statement triggers keep a counter, spread over 16 rows by writer
    # (backend pid) so that concurrent writers seldom wait on one another.
    2: [
        "CREATE TABLE run_count (slot integer PRIMARY KEY, n bigint NOT NULL)",
        """CREATE FUNCTION llmbench_count_runs() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                DELETE FROM run_count;
            ELSIF TG_OP = 'INSERT' THEN
                INSERT INTO run_count AS c VALUES (pg_backend_pid() % 16,
                    (SELECT count(*) FROM new_rows))
                ON CONFLICT (slot) DO UPDATE SET n = c.n + excluded.n;
            ELSE
                INSERT INTO run_count AS c VALUES (pg_backend_pid() % 16,
                    -(SELECT count(*) FROM old_rows))
                ON CONFLICT (slot) DO UPDATE SET n = c.n + excluded.n;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER runs_count_insert AFTER INSERT ON runs REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION llmbench_count_runs()",
        "CREATE TRIGGER runs_count_delete AFTER DELETE ON runs REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION llmbench_count_runs()",
        "CREATE TRIGGER runs_count_truncate AFTER TRUNCATE ON runs "
        "FOR EACH STATEMENT EXECUTE FUNCTION llmbench_count_runs()",
        "INSERT INTO run_count SELECT 16, count(*) FROM runs",  # runs stored before version 2
    ],
}

# Substring search and model filters use trigram indexes where the server allows the extension
# (pg_trgm is "trusted": a database owner may create it); without it they scan, correctly.
OPTIONAL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS runs_search_trgm ON runs USING gin (search gin_trgm_ops)",
]

DISTINCT_COLUMNS = ("model", "backend", "host", "status")  # Store.distinct: the filter choices

# Sort fields that are real columns (text columns compare case-folded, as the local store does).
_COLUMN_SORTS = {
    "started_at": "started_at",
    "quality.score": "score",
    "model": "lower(model)",
    "backend": "lower(backend)",
    "status": "lower(status)",
    "host": "lower(host)",
    "session_id": "lower(session_id)",
    "id": "id",
}


def like_prefix(text: str) -> str:
    """``text`` as a LIKE pattern matching what starts with it (wildcards escaped)."""
    return escape_like(text) + "%"


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(q: RunQuery) -> tuple[str, list[Any]]:
    """The WHERE clause (with its parameters) of every filter of ``q``."""
    clauses: list[str] = []
    params: list[Any] = []
    if q.model:
        want = f"%{escape_like(q.model.lower())}%"
        clauses.append("(lower(coalesce(model, '')) LIKE %s OR lower(coalesce(model_spec, '')) "
                       "LIKE %s)")  # fmt: skip
        params += [want, want]
    if q.backend:
        clauses.append("backend = %s")
        params.append(q.backend)
    if q.host:
        clauses.append("lower(coalesce(host, '')) LIKE %s")
        params.append(f"%{escape_like(q.host.lower())}%")
    if q.status:
        clauses.append("status = %s")
        params.append(q.status)
    if q.session_id:
        clauses.append("session_id LIKE %s")
        params.append(like_prefix(q.session_id))
    if q.machine:
        needle = q.machine.strip().casefold()
        clauses.append("(machine_id LIKE %s OR machine_text LIKE %s)")
        params += [like_prefix(needle), f"%{escape_like(needle)}%"]
    if q.since:
        clauses.append("started_at >= %s")
        params.append(parse_when(q.since))
    if q.until:
        clauses.append("started_at <= %s")
        params.append(parse_when(q.until, end=True))
    if q.min_score is not None:
        clauses.append("score >= %s")
        params.append(q.min_score)
    if q.search:
        clauses.append("search LIKE %s")
        params.append(f"%{escape_like(q.search.casefold())}%")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def order_by(sort: str | None) -> tuple[str, list[Any]]:
    """ORDER BY for a record field or dotted figure path; runs without it last either way,
    numbers before text (ascending) as in the local store."""
    field = sort or "-started_at"
    direction = "DESC" if field.startswith("-") else "ASC"
    field = field.lstrip("-+")
    column = _COLUMN_SORTS.get(field)
    if column is not None:
        return f" ORDER BY {column} {direction} NULLS LAST, id", []
    path = field.split(".")
    value = "(doc #> %s::text[])"
    kind = f"jsonb_typeof{value}"
    sql = (
        f" ORDER BY (CASE WHEN {kind} IS NULL OR {kind} = 'null' THEN 1 ELSE 0 END),"
        f" (CASE WHEN {kind} IN ('number', 'boolean') THEN 0 ELSE 1 END) {direction},"
        f" (CASE WHEN {kind} = 'number' THEN ({value} #>> '{{}}')::float8"
        f" WHEN {kind} = 'boolean' THEN (CASE WHEN {value} = 'true' THEN 1 ELSE 0 END) END)"
        f" {direction}, lower({value} #>> '{{}}') {direction}, id"
    )
    return sql, [path] * sql.count("%s")


def started(record: dict[str, Any]) -> datetime | None:
    """A record's ``started_at`` as a datetime for its column (None when absent or odd)."""
    raw = record.get("started_at")
    if not isinstance(raw, str):
        return None
    try:
        return parse_when(raw) if len(raw) > 10 else None
    except Exception:
        return None


def score_of(record: dict[str, Any]) -> float | None:
    quality = record.get("quality")
    score = quality.get("score") if isinstance(quality, dict) else None
    if isinstance(score, int | float) and not isinstance(score, bool):
        return float(score)
    return None


def machine_columns(block: Any) -> tuple[str | None, str | None]:
    """``machine_id`` and the case-folded text ``--machine`` looks in (host, CPU, GPU)."""
    if not isinstance(block, dict):
        return None, None
    text = "\0".join(str(block.get(key) or "") for key in ("hostname", "cpu", "gpu")).casefold()
    mid = block.get("machine_id")
    return (str(mid).casefold() if mid else None), text
