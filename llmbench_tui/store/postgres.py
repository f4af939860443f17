"""The team store: the run store interface on PostgreSQL (psycopg 3).

Many machines write to one database at once: a run's id (a uuid from the engine) is its primary
key and every insert is ``ON CONFLICT DO NOTHING``, so a run sent twice (a spool drained after a
crash, a ``store copy`` run again) is stored once. Filters, sorting and paging are SQL over real,
indexed columns (``pg_schema``); the record itself is JSONB and reads back equal to what was
written.

When the database is away — refused, timed out, restarted mid-session — writes go to a local
spool (``spool``) with a warning, and the spool is sent at the next open of this store, at
``close``, or by ``llmbench store sync``. Reads fail with one sentence. A wrong password or a
missing database is never "away": it is a sentence naming the URL, without its password.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from llmbench_tui.store import pg_schema as schema
from llmbench_tui.store.query import RunQuery, StoreError, haystack, with_machine
from llmbench_tui.store.spool import Spool, spool_path
from llmbench_tui.store.urls import redact_url

log = logging.getLogger("llmbench.store")
T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
RETRY_AWAY_S = 5.0  # while away, writes go straight to the spool for this long between tries
_LOCK_KEY = 0x6C6C6D62  # advisory lock id ("llmb") serialising migrations of one database
_RUN_COLUMNS = ("id, session_id, started_at, model, model_spec, backend, host, status, "
                "machine_id, machine_text, score, search, doc, raw")  # fmt: skip


class Away(Exception):
    """The database cannot be reached right now (the one failure that spools)."""


def _clean(value: Any) -> str | None:
    """A record value for a text column: PostgreSQL text cannot hold NUL."""
    return None if value is None else str(value).replace("\0", "\x1f")


def _strip_nul(doc: Any) -> Any:
    if isinstance(doc, str):
        return doc.replace("\0", "")
    if isinstance(doc, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_strip_nul(v) for v in doc]
    return doc


def _json(doc: Any) -> tuple[str, bytes | None]:
    """``(jsonb text, raw)``: raw is the exact JSON when JSONB cannot hold it (NUL in a string),
    and the JSONB copy then has the NULs removed (still searchable, never read back)."""
    data = orjson.dumps(doc)
    if b"\\u0000" not in data:
        return data.decode(), None
    return orjson.dumps(_strip_nul(doc)).decode(), data


def _loaded(doc: Any, raw: bytes | None) -> Any:
    return orjson.loads(raw) if raw is not None else doc


def explain(exc: psycopg.Error, shown: str) -> tuple[str, bool]:
    """One sentence for a connection failure, and whether it means "away" (worth spooling)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    lower = text.lower()
    if "password authentication failed" in lower or "no password supplied" in lower:
        return f"PostgreSQL at {shown} refused the login: wrong user or password", False
    if "database" in lower and "does not exist" in lower:
        return (f"PostgreSQL at {shown} has no such database: create it (createdb) or fix the "
                "URL"), False  # fmt: skip
    if "role" in lower and "does not exist" in lower:
        return f"PostgreSQL at {shown} has no such user: create it or fix the URL", False
    if "connection refused" in lower:
        reason = "connection refused; is the server running?"
    elif "timeout" in lower or "timed out" in lower:
        reason = "timed out"
    else:
        reason = first.rsplit(": ", 1)[-1] or first
    return f"cannot reach PostgreSQL at {shown} ({reason})", True


class PgStore:
    """The run store on PostgreSQL (see the module docstring). Thread-safe: one connection,
    used under a lock (the engine writes from worker threads)."""

    def __init__(self, url: str, data_dir: Path, *, spool_when_away: bool = False) -> None:
        self.url = url
        self._shown = redact_url(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._spool = Spool(spool_path(data_dir, self._shown))
        self._spooled = 0
        self._away_until = 0.0
        self._machines: dict[str, dict[str, Any] | None] = {}
        self.sent_at_open = 0  # spooled runs this open sent (``llmbench store sync`` says so)
        try:
            self._connection()
        except Away as exc:
            if not spool_when_away:
                raise StoreError(str(exc)) from None
            self._went_away(exc)
        else:
            self.sent_at_open = self.sync()

    # -- connection ------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._shown

    @property
    def spooled(self) -> int:
        return self._spooled

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            sentence, away = explain(exc, self._shown)
            if away:
                raise Away(sentence) from None
            raise StoreError(sentence) from None
        set_json_loads(orjson.loads, conn)
        try:
            self._migrate(conn)
        except psycopg.Error as exc:
            conn.close()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"PostgreSQL at {self._shown}: cannot create or upgrade the "
                             f"store's tables ({reason})") from None  # fmt: skip
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade the schema (one migrating client at a time); refuse a newer one."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row and row[0] is not None else 0
            if version > schema.PG_SCHEMA:
                raise StoreError(
                    f"the database at {self._shown} has store schema {version}, written by a "
                    f"newer llmbench (this one knows up to {schema.PG_SCHEMA}): upgrade llmbench"
                )
            for step in range(version + 1, schema.PG_SCHEMA + 1):
                for statement in schema.MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (%s)", (step,))
            if version < schema.PG_SCHEMA:
                for statement in schema.OPTIONAL:
                    try:
                        with conn.transaction():
                            conn.execute(statement)
                    except psycopg.Error:
                        break  # no trigram index: searches scan, correctly

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work`` on a live connection; one reconnect if the connection was lost (a restarted
        server), then ``Away``. Every write is idempotent, so running it again is safe."""
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    return work(conn)
                except psycopg.OperationalError as exc:
                    self._drop()
                    if attempt:
                        raise Away(explain(exc, self._shown)[0]) from None
                except psycopg.Error as exc:
                    raise StoreError(f"PostgreSQL at {self._shown}: {str(exc).strip()}") from None
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        try:
            return self._run(work)
        except Away as exc:
            raise StoreError(str(exc)) from None

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of a read (``StoreError`` when the database is away)."""
        return self._read(lambda conn: conn.execute(sql, params).fetchall())

    def _went_away(self, exc: Away) -> None:
        if not self._away_until:
            log.warning("%s: runs are kept in %s and sent when it is back (at the next "
                        "command or `llmbench store sync`)", exc, self._spool.path)  # fmt: skip
        self._away_until = time.monotonic() + RETRY_AWAY_S

    def _write(self, work: Callable[[psycopg.Connection[Any]], T], spool: Callable[[], T]) -> T:
        """A write to the database, or to the spool while the database is away."""
        if self._away_until and time.monotonic() < self._away_until:
            return spool()
        try:
            result = self._run(work)
        except Away as exc:
            self._went_away(exc)
            return spool()
        self._away_until = 0.0
        return result

    # -- writing ---------------------------------------------------------------------------

    def add_run(self, record: dict[str, Any], series: dict[str, Any] | None = None) -> None:
        added, _ = self.add_runs([record], {str(record.get("id")): series} if series else None)
        if not added:
            raise StoreError(f"a run with id {record.get('id')} is already stored")

    def add_runs(
        self, records: Iterable[dict[str, Any]], series: dict[str, dict] | None = None
    ) -> tuple[int, int]:
        """Store runs not stored yet, in one transaction; returns ``(added, skipped)``."""
        records = list(records)
        for record in records:
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise StoreError("a run record must be an object with a string 'id'")
            if not record["id"]:
                raise StoreError("a run record has an empty 'id'")

        def spool() -> tuple[int, int]:
            added = self._spool.add_runs(records, series)
            self._spooled += added[0]
            return added

        return self._write(lambda conn: self._insert_runs(conn, records, series or {}), spool)

    def _insert_runs(
        self, conn: psycopg.Connection[Any], records: list[dict[str, Any]], series: dict[str, dict]
    ) -> tuple[int, int]:
        wanted = {r.get("session_id") for r in records if not isinstance(r.get("machine"), dict)}
        sessions = self._sessions_named(conn, [s for s in wanted if isinstance(s, str)])
        rows, series_rows = [], []
        for record in records:
            record = with_machine(record, sessions)
            machine_id, machine_text = schema.machine_columns(record.get("machine"))
            doc, raw = _json(record)
            moment = schema.started(record)
            rows.append((
                record["id"], _clean(record.get("session_id")), moment,
                _clean(record.get("model")), _clean(record.get("model_spec")),
                _clean(record.get("backend")), _clean(record.get("host")),
                _clean(record.get("status")), machine_id, _clean(machine_text),
                schema.score_of(record), _clean(haystack(record)), doc, raw,
            ))  # fmt: skip
            if series.get(record["id"]):
                sdoc, sraw = _json(series[record["id"]])
                series_rows.append((record["id"], moment, sdoc, sraw))
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) "
                "ON CONFLICT (id) DO NOTHING",
                rows,
            )
            added = max(cur.rowcount, 0)
            if series_rows:
                cur.executemany(
                    "INSERT INTO series (run_id, started_at, doc, raw) "
                    "VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT (run_id) DO NOTHING",
                    series_rows,
                )
        return added, len(records) - added

    def add_session(self, session: dict[str, Any]) -> None:
        """Store (or replace) a session."""
        sid = session.get("id") if isinstance(session, dict) else None
        if not isinstance(sid, str) or not sid:
            raise StoreError("a session must be an object with a string 'id'")
        self._write(lambda conn: self._put_sessions(conn, [session], replace=True),
                    lambda: self._spool.add_session(session))  # fmt: skip
        self._machines.pop(sid, None)

    def add_sessions(self, sessions: Iterable[dict[str, Any]]) -> int:
        """Store the sessions not stored yet; returns how many."""
        valid = [s for s in sessions if isinstance(s, dict) and isinstance(s.get("id"), str)
                 and s["id"]]  # fmt: skip

        def spool() -> int:
            for session in valid:
                self._spool.add_session(session)
            return 0

        return self._write(lambda conn: self._put_sessions(conn, valid, replace=False), spool)

    def _put_sessions(
        self, conn: psycopg.Connection[Any], sessions: list[dict[str, Any]], *, replace: bool
    ) -> int:
        if not sessions:
            return 0
        rows = []
        for session in sessions:
            doc, raw = _json(session)
            rows.append((_clean(session["id"]), schema.started(session), doc, raw))
        conflict = ("DO UPDATE SET started_at = excluded.started_at, doc = excluded.doc, "
                    "raw = excluded.raw") if replace else "DO NOTHING"  # fmt: skip
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sessions (id, started_at, doc, raw) VALUES (%s, %s, %s::jsonb, %s) "
                f"ON CONFLICT (id) {conflict}",
                rows,
            )
            return max(cur.rowcount, 0)

    def update_quality(self, run_id: str, quality: dict[str, Any] | None) -> dict[str, Any]:
        """Replace a run's ``quality`` block; the previous one joins ``quality_history``."""

        def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
            with conn.transaction():
                row = conn.execute(
                    "SELECT doc, raw FROM runs WHERE id = %s FOR UPDATE", (run_id,)
                ).fetchone()
                if row is None:
                    raise StoreError(f"no run with id {run_id!r} in {self._shown}")
                record = _loaded(*row)
                previous = record.get("quality")
                if previous is not None:
                    history = record.get("quality_history")
                    record["quality_history"] = [
                        *(history if isinstance(history, list) else []), previous
                    ]
                record["quality"] = quality
                doc, raw = _json(record)
                conn.execute(
                    "UPDATE runs SET doc = %s::jsonb, raw = %s, score = %s WHERE id = %s",
                    (doc, raw, schema.score_of(record), run_id),
                )
            return record

        return self._read(work)

    def delete(self, ids: list[str]) -> int:
        """Delete runs (exact ids) and their series; returns how many runs were deleted."""
        wanted = list(dict.fromkeys(ids))
        return self._read(lambda conn: conn.execute(
            "DELETE FROM runs WHERE id = ANY(%s)", (wanted,)).rowcount)  # fmt: skip

    def prune_series(self, older_than_days: float) -> int:
        """Drop telemetry series of runs started more than N days ago; run records stay."""
        return self._read(lambda conn: conn.execute(
            "DELETE FROM series WHERE started_at < now() - make_interval(secs => %s)",
            (older_than_days * 86400,)).rowcount)  # fmt: skip

    # -- reading ---------------------------------------------------------------------------

    def query(self, q: RunQuery | None = None) -> list[dict[str, Any]]:
        """Runs matching ``q``, sorted and paged by the database."""
        q = q or RunQuery()
        where, params = schema.where(q)
        order, order_params = schema.order_by(q.sort)
        sql = f"SELECT doc, raw FROM runs{where}{order}"
        params += order_params
        if q.limit is not None:
            sql += " LIMIT %s"
            params.append(max(q.limit, 0))
        if q.offset:
            sql += " OFFSET %s"
            params.append(max(q.offset, 0))
        return [_loaded(doc, raw) for doc, raw in self._rows(sql, params)]

    def count(self, q: RunQuery | None = None) -> int:
        where, params = schema.where(q or RunQuery())
        if not where:  # every run: the trigger-kept counter
            return int(self._rows("SELECT coalesce(sum(n), 0) FROM run_count")[0][0])
        return int(self._rows(f"SELECT count(*) FROM runs{where}", params)[0][0])

    def _resolve(self, table: str, column: str, key: str, what: str) -> str | None:
        """The id ``key`` names exactly or as the unique prefix; StoreError when ambiguous;
        None when nothing matches."""
        sql = (
            f"SELECT {column} FROM {table} WHERE {column} = %s UNION ALL "
            f"(SELECT DISTINCT {column} FROM {table} WHERE {column} LIKE %s LIMIT 1001)"
        )
        ids = [row[0] for row in self._rows(sql, (key, schema.like_prefix(key)))]
        if key in ids:
            return key
        hits = sorted(set(ids)) if key else []
        if len(hits) == 1:
            return hits[0]
        if not hits:
            return None
        shown = ", ".join(h[:12] for h in hits[:5])
        count = "over 1000" if len(hits) > 1000 else str(len(hits))
        raise StoreError(f"{what} id prefix {key!r} matches {count} {what}s ({shown}...); "
                         "give more characters")  # fmt: skip

    def get_run(self, id_or_prefix: str) -> dict[str, Any]:
        rows = self._rows("SELECT doc, raw FROM runs WHERE id = %s", (id_or_prefix,))
        if rows:  # the usual case, a full id: one round trip
            return _loaded(*rows[0])
        rid = self._resolve("runs", "id", id_or_prefix, "run")
        rows = [] if rid is None else self._rows("SELECT doc, raw FROM runs WHERE id = %s", (rid,))
        if not rows:
            raise StoreError(f"no run with id {id_or_prefix!r} in {self._shown}")
        return _loaded(*rows[0])

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        try:
            sid = self._resolve("sessions", "id", session_id, "session")
        except StoreError:
            return None
        found = self._read(lambda conn: self._sessions_named(conn, [sid] if sid else []))
        return found.get(sid) if sid else None

    def resolve_session_id(self, id_or_prefix: str) -> str:
        """A session's full id from its id or unambiguous prefix; sessions known only from
        their runs count too."""
        for table, column in (("sessions", "id"), ("runs", "session_id")):
            found = self._resolve(table, column, id_or_prefix, "session")
            if found is not None:
                return found
        raise StoreError(f"no session with id {id_or_prefix!r} in {self._shown}")

    def _sessions_named(
        self, conn: psycopg.Connection[Any], ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        rows = conn.execute("SELECT id, doc, raw FROM sessions WHERE id = ANY(%s)", (ids,))
        return {sid: _loaded(doc, raw) for sid, doc, raw in rows.fetchall()}

    def sessions_by_id(self) -> dict[str, dict[str, Any]]:
        rows = self._rows("SELECT id, doc, raw FROM sessions ORDER BY started_at NULLS LAST, id")
        return {sid: _loaded(doc, raw) for sid, doc, raw in rows}

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.sessions_by_id().values())

    def distinct(self, field: str) -> list[str]:
        if field not in schema.DISTINCT_COLUMNS:
            raise StoreError(f"no list of the different values of {field!r}")
        rows = self._rows(f"SELECT DISTINCT {field} FROM runs WHERE {field} <> ''")
        return sorted(str(value) for (value,) in rows)

    def series(self, run_id: str) -> dict[str, Any] | None:
        return self.series_many([run_id]).get(run_id)

    def series_many(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(run_ids)
        rows = self._rows("SELECT run_id, doc, raw FROM series WHERE run_id = ANY(%s)", (ids,))
        return {rid: _loaded(doc, raw) for rid, doc, raw in rows}

    def machine_of(
        self, record: dict[str, Any], sessions: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The run's own machine block, else its session's (looked up once per session)."""
        own = record.get("machine")
        if isinstance(own, dict):
            return own
        sid = record.get("session_id")
        if not isinstance(sid, str):
            return None
        if sid not in self._machines:
            from llmbench_tui.telemetry.environment import machine_block

            session = (sessions or {}).get(sid) or self.get_session(sid)
            if session is None:
                return None
            env = session.get("environment") if isinstance(session, dict) else None
            self._machines[sid] = machine_block(env)
        return self._machines[sid]

    def machines(self, q: RunQuery | None = None) -> list[tuple[dict[str, Any], int]]:
        """Every machine with runs matching ``q`` and how many, most runs first."""
        where, params = schema.where(q or RunQuery())
        where += (" AND" if where else " WHERE") + " machine_id IS NOT NULL"
        sql = (f"SELECT machine_id, count(*), (array_agg(id))[1] FROM runs{where} "
               "GROUP BY machine_id ORDER BY count(*) DESC")  # fmt: skip
        rows = self._rows(sql, params)
        found = []
        for _mid, count, rid in rows:
            block = self.get_run(rid).get("machine")
            if isinstance(block, dict):
                found.append((block, int(count)))
        return found

    # -- spool -----------------------------------------------------------------------------

    def sync(self) -> int:
        """Send the runs spooled while the database was away; returns how many were sent.
        StoreError (one sentence) when the database is still away."""
        with self._lock:
            if not self._spool.exists():
                return 0
            try:
                sent = self._spool.drain(
                    lambda sessions: self._run(
                        lambda conn: self._put_sessions(conn, sessions, replace=False)),
                    lambda runs, series: self._run(
                        lambda conn: self._insert_runs(conn, runs, series)),
                )  # fmt: skip
            except Away as exc:
                raise StoreError(f"{exc}; the spooled runs stay in {self._spool.path}") from None
        if sent:
            log.warning("sent %d run(s) spooled while PostgreSQL at %s was away", sent,
                        self._shown)  # fmt: skip
        self._spooled = max(self._spooled - sent, 0)
        return sent

    def waiting(self) -> int:
        """Runs waiting in this database's local spool."""
        return self._spool.waiting()

    def close(self) -> None:
        """Send what was spooled this session if the database is back; then disconnect."""
        try:
            if self._spooled:
                self.sync()
        except StoreError as exc:
            log.warning("%s", exc)
        finally:
            self._spool.close()
            with self._lock:
                self._drop()
