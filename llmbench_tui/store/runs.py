"""The run store: ``Store`` and its queries over the journaled TinyDB database."""


from __future__ import annotations

import gc
import re
import shutil
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from tinydb import TinyDB
from tinydb.table import Table

from llmbench_tui.store.errors import StoreError
from llmbench_tui.store.journal import (
    META_TABLE,
    AtomicJSONStorage,
    CorruptDatabase,
    LockTimeout,
    Tables,
    atomic_write_bytes,
    atomic_write_many,
    parse_tables,
)
from llmbench_tui.store.query import RunQuery, haystack, in_order, record_checks, started_at

STORE_SCHEMA = 1
RUNS, SESSIONS, SERIES = "runs", "sessions", "series"


class _StrIdTable(Table):
    """TinyDB table keyed by our own string ids (run/session uuids), not TinyDB's counters."""

    document_id_class = str  # type: ignore[assignment]  # TinyDB types ids as int

    def _update_table(self, updater: Callable[[dict], None]) -> None:
        """TinyDB's read-modify-write, minus its two id-converting copies of the whole table
        (ids are already strings here). The table is still copied once: readers may be
        iterating the previous dict, which is therefore never mutated."""
        tables = self._storage.read() or {}
        table = dict(tables.get(self.name, {}))
        updater(table)
        tables[self.name] = table
        self._storage.write(tables)
        self.clear_cache()


class _DB(TinyDB):
    table_class = _StrIdTable


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
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


class Store:
    """Thread-safe, multi-process result store (see the module docstring for the layout)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.series_dir = self.path.with_name(self.path.stem + ".series")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _DB(
            str(self.path),
            storage=AtomicJSONStorage,
            side_tables=(SERIES,),
            on_compact=self._flush_series,
        )
        self._storage: AtomicJSONStorage = self._db.storage  # type: ignore[assignment]
        self._runs = self._db.table(RUNS, cache_size=0)
        self._hay: dict[str, str] = {}  # run id -> search text (runs never change once stored)
        self._machines: dict[str, dict[str, Any] | None] = {}  # session id -> machine block
        self._closed = False
        with self._write():
            self._sweep_temp()  # creates, checks or migrates the file on the way in

    # -- plumbing --------------------------------------------------------------------------

    def _corrupt(self, exc: CorruptDatabase) -> StoreError:
        return StoreError(
            f"{exc.path} is damaged ({exc.reason}); it was left untouched - run "
            f"`llmbench doctor --data-dir {exc.path.parent}` to recover the readable runs"
        )

    def _read(self) -> Tables:
        try:
            return self._storage.read() or {}
        except CorruptDatabase as exc:
            raise self._corrupt(exc) from None
        except LockTimeout as exc:  # a read caught mid-compaction waits for the lock
            raise StoreError(str(exc)) from None

    def _write(self):
        """Context manager: hold the lock, with the file checked (and migrated) first."""
        store = self

        class _Txn:
            def __enter__(self) -> Tables:
                self._cm = store._storage.transaction()
                try:
                    self._cm.__enter__()
                except LockTimeout as exc:
                    raise StoreError(str(exc)) from None
                except OSError as exc:
                    raise StoreError(f"cannot lock {store.path}: {exc.strerror or exc}") from None
                try:
                    return store._checked()
                except BaseException:
                    self._cm.__exit__(None, None, None)
                    raise

            def __exit__(
                self,
                kind: type[BaseException] | None,
                exc: BaseException | None,
                tb: TracebackType | None,
            ) -> None:
                self._cm.__exit__(kind, exc, tb)
                if isinstance(exc, CorruptDatabase):
                    raise store._corrupt(exc) from None
                if isinstance(exc, OSError):
                    raise StoreError(f"cannot write {store.path}: {exc.strerror or exc}") from exc

        return _Txn()

    def _checked(self) -> Tables:
        """Under the lock: create a new file, refuse a newer one, migrate an older one."""
        tables = self._read()
        version = store_schema(tables)
        if not tables:
            tables = {META_TABLE: {"1": {"schema": STORE_SCHEMA}}, RUNS: {}, SESSIONS: {}}
            self._storage.write(tables)
        elif version > STORE_SCHEMA:
            raise StoreError(
                f"{self.path.name} was written by a newer llmbench (schema {version}); "
                "upgrade llmbench to read it"
            )
        elif version < STORE_SCHEMA:
            tables = self._migrate(tables, version)
        return self._read()

    def _sweep_temp(self) -> None:
        """Under the lock: remove temp files of writers killed mid-write.

        Every temp file is created and renamed inside the lock, so one that exists while we hold
        it belongs to a writer that died; it never held acknowledged data.
        """
        leftovers = list(self.path.parent.glob(f".{self.path.name}.*.tmp"))
        if self.series_dir.is_dir():
            leftovers += self.series_dir.glob(".*.tmp")
        for tmp in leftovers:
            tmp.unlink(missing_ok=True)

    def _migrate(self, tables: Tables, version: int) -> Tables:
        backup = self.path.with_name(f"{self.path.name}.bak-v{version}")
        shutil.copy2(self.path, backup)
        runs, sessions, series = normalize_tables(tables)
        kept = {k: v for k, v in tables.items() if k not in (RUNS, "_default", SESSIONS)}
        kept[META_TABLE] = {"1": {"schema": STORE_SCHEMA}}
        kept[RUNS] = {run["id"]: run for run in runs}
        kept[SESSIONS] = {s["id"]: s for s in sessions}
        by_id = {run["id"]: run for run in runs}
        self._write_series({rid: (by_id[rid], s) for rid, s in series.items()})
        self._storage.write(kept)
        return kept

    def _shard(self, session_id: Any) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(session_id or "_nosession"))[:120]
        return self.series_dir / f"{safe}.json"

    def _read_shard(self, shard: Path) -> dict[str, Any]:
        try:
            data = shard.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            tables = parse_tables(data, shard) or {}
        except CorruptDatabase as exc:
            raise self._corrupt(exc) from None
        return tables.get(SERIES, {})

    def _write_series(self, items: dict[str, tuple[dict, dict]]) -> None:
        """Under the lock: add ``{run_id: (record, series)}`` to the session shards."""
        shards: dict[Path, dict[str, Any]] = {}
        for run_id, (record, series) in items.items():
            shard = self._shard(record.get("session_id"))
            if shard not in shards:
                shards[shard] = self._read_shard(shard)
            shards[shard][run_id] = {"started_at": record.get("started_at"), **series}
        self._put_shards(shards)

    def _flush_series(self, side: Tables, tables: Tables) -> None:
        """The storage's compaction hook: series still in the journal go to their shards
        (runs deleted meanwhile excepted) before the journal is dropped."""
        runs = tables.get(RUNS, {})
        shards: dict[Path, dict[str, Any]] = {}
        for run_id, doc in side.get(SERIES, {}).items():
            record = runs.get(run_id)
            if record is None:
                continue
            shard = self._shard(record.get("session_id"))
            if shard not in shards:
                shards[shard] = self._read_shard(shard)
            shards[shard][run_id] = doc
        self._put_shards(shards)

    def _put_shards(self, shards: dict[Path, dict[str, Any]]) -> None:
        if shards:
            self.series_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_many({shard: orjson.dumps({SERIES: t}) for shard, t in shards.items()})

    # -- writing ---------------------------------------------------------------------------

    def add_run(self, record: dict[str, Any], series: dict[str, Any] | None = None) -> None:
        """Store one run with its series; durable (one fsynced journal line) when this returns."""
        added, _ = self.add_runs([record], {record.get("id", ""): series} if series else None)
        if not added:
            raise StoreError(f"a run with id {record.get('id')} is already stored")

    def add_runs(
        self, records: Iterable[dict[str, Any]], series: dict[str, dict] | None = None
    ) -> tuple[int, int]:
        """Store many runs in one write (import, migration); ids already present are skipped.

        All or nothing: one journal entry, or one compaction for a batch too big to journal.
        Returns ``(added, skipped)``.
        """
        records = list(records)
        for record in records:
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise StoreError("a run record must be an object with a string 'id'")
            if not record["id"]:
                raise StoreError("a run record has an empty 'id'")
        with self._write() as tables:
            present = tables.get(RUNS, {})
            sessions = tables.get(SESSIONS, {})
            fresh: dict[str, dict[str, Any]] = {}
            for record in records:
                if record["id"] not in present and record["id"] not in fresh:
                    fresh[record["id"]] = self._with_machine(record, sessions)
            if not fresh:
                return 0, len(records)
            ops: list[list] = []
            for rid, rec in fresh.items():
                if series and series.get(rid):
                    ops.append([SERIES, rid, {"started_at": rec.get("started_at"), **series[rid]}])
                ops.append([RUNS, rid, rec])
            self._storage.append(ops)
        return len(fresh), len(records) - len(fresh)

    def update_quality(self, run_id: str, quality: dict[str, Any] | None) -> dict[str, Any]:
        """Replace a stored run's ``quality`` block (``llmbench score``); the previous block, if
        any, is appended to the run's ``quality_history`` with its own ``scored_at``. Durable
        when it returns (one journal entry putting the new document, as inserts are). Returns
        the updated record; StoreError when no run has exactly that id."""
        with self._write() as tables:
            current = tables.get(RUNS, {}).get(run_id)
            if current is None:
                raise StoreError(f"no run with id {run_id!r} in {self.path}")
            record = _copy(current)  # stored documents are replaced, never mutated
            previous = record.get("quality")
            if previous is not None:
                history = record.get("quality_history")
                record["quality_history"] = [*(history if isinstance(history, list) else []),
                                             previous]  # fmt: skip
            record["quality"] = quality
            self._storage.append([[RUNS, run_id, record]])
        return _copy(record)

    def add_session(self, session: dict[str, Any]) -> None:
        """Store (or replace) a session: ``{"id", "started_at", "environment", "plan"}``."""
        sid = session.get("id") if isinstance(session, dict) else None
        if not isinstance(sid, str) or not sid:
            raise StoreError("a session must be an object with a string 'id'")
        with self._write():
            self._storage.append([[SESSIONS, sid, session]])
        self._machines.pop(sid, None)

    def add_sessions(self, sessions: Iterable[dict[str, Any]]) -> int:
        """Store the sessions not stored yet (import), in one write; returns how many."""
        valid = [s for s in sessions if isinstance(s, dict) and isinstance(s.get("id"), str)]
        with self._write() as tables:
            present = tables.get(SESSIONS, {})
            fresh = {s["id"]: s for s in valid if s["id"] and s["id"] not in present}
            if fresh:
                self._storage.append([[SESSIONS, sid, s] for sid, s in fresh.items()])
        for sid in fresh:
            self._machines.pop(sid, None)
        return len(fresh)

    # -- machines --------------------------------------------------------------------------

    @staticmethod
    def _with_machine(record: dict[str, Any], sessions: dict[str, Any]) -> dict[str, Any]:
        """The record with its ``machine`` block (from its session's environment) when it has
        none yet and its session is known: stored in the run, so an export carries it and
        a query need not look the session up. An imported record keeps its own."""
        if isinstance(record.get("machine"), dict):
            return record
        from llmbench_tui.telemetry.environment import machine_block

        session = sessions.get(record.get("session_id", ""))
        block = machine_block(session.get("environment")) if isinstance(session, dict) else None
        return {**record, "machine": block} if block else record

    def machine_of(
        self, record: dict[str, Any], sessions: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The machine a run ran on: its own ``machine`` block (stored with it since this
        version, or imported), else its session's environment, computed once per session.
        ``sessions``: the sessions table, when the caller already holds it (loops)."""
        own = record.get("machine")
        if isinstance(own, dict):
            return own
        sid = record.get("session_id")
        if not isinstance(sid, str):
            return None
        if sid in self._machines:
            return self._machines[sid]
        from llmbench_tui.telemetry.environment import machine_block

        session = (sessions if sessions is not None else self._table(SESSIONS)).get(sid)
        if session is None:
            return None  # not cached: the session may still be imported or written
        block = machine_block(session.get("environment")) if isinstance(session, dict) else None
        self._machines[sid] = block
        return block

    def machines(self, q: RunQuery | None = None) -> list[tuple[dict[str, Any], int]]:
        """Every machine with runs matching ``q`` and how many, most runs first."""
        counts: dict[str, tuple[dict[str, Any], int]] = {}
        sessions = self._table(SESSIONS)
        for record in self._matching(q or RunQuery()):
            block = self.machine_of(record, sessions)
            if block and block.get("machine_id"):
                seen = counts.get(block["machine_id"], (block, 0))
                counts[block["machine_id"]] = (seen[0], seen[1] + 1)
        return sorted(counts.values(), key=lambda bc: -bc[1])

    def delete(self, ids: list[str]) -> int:
        """Delete runs (exact ids) and their series; returns how many runs were deleted."""
        with self._write() as tables:
            runs = tables.get(RUNS, {})
            doomed = {rid: runs[rid] for rid in dict.fromkeys(ids) if rid in runs}
            if not doomed:
                return 0
            by_shard: dict[Path, list[str]] = {}
            for rid, rec in doomed.items():
                by_shard.setdefault(self._shard(rec.get("session_id")), []).append(rid)
            # String ids (``_StrIdTable``); TinyDB's types say int.
            removed: list[str] = self._runs.remove(doc_ids=list(doomed))  # type: ignore[arg-type, assignment]
            for shard, rids in by_shard.items():
                table = self._read_shard(shard)
                if any(rid in table for rid in rids):
                    for rid in rids:
                        table.pop(rid, None)
                    self._put_shard(shard, table)
        for rid in removed:
            self._hay.pop(rid, None)
        return len(removed)

    def _put_shard(self, shard: Path, table: dict[str, Any]) -> None:
        if table:
            atomic_write_bytes(shard, orjson.dumps({SERIES: table}))
        else:
            shard.unlink(missing_ok=True)

    def prune_series(self, older_than_days: float) -> int:
        """Drop telemetry series of runs started more than N days ago; run records stay.

        Returns how many series were dropped.
        """
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        dropped = 0
        with self._write():
            self._storage.compact()  # series still in the journal go to their shards first
            shards = sorted(self.series_dir.glob("*.json")) if self.series_dir.is_dir() else []
            for shard in shards:
                table = self._read_shard(shard)
                old = [rid for rid, doc in table.items() if (started_at(doc) or cutoff) < cutoff]
                if old:
                    for rid in old:
                        del table[rid]
                    self._put_shard(shard, table)
                    dropped += len(old)
        return dropped

    # -- reading ---------------------------------------------------------------------------

    def _table(self, name: str) -> dict[str, dict[str, Any]]:
        tables = self._read()
        if store_schema(tables) != STORE_SCHEMA:
            with self._write() as checked:  # another process replaced the file: re-check it
                tables = checked
        return tables.get(name, {})

    def _resolve(self, table: dict[str, Any], key: str, what: str) -> str:
        if key in table:
            return key
        hits = [rid for rid in table if rid.startswith(key)] if key else []
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise StoreError(f"no {what} with id {key!r} in {self.path}")
        shown = ", ".join(sorted(h[:12] for h in hits)[:5])
        raise StoreError(
            f"{what} id prefix {key!r} matches {len(hits)} {what}s ({shown}...); "
            "give more characters"
        )

    def get_run(self, id_or_prefix: str) -> dict[str, Any]:
        runs = self._table(RUNS)
        return _copy(runs[self._resolve(runs, id_or_prefix, "run")])

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        sessions = self._table(SESSIONS)
        try:
            return _copy(sessions[self._resolve(sessions, session_id, "session")])
        except StoreError:
            return None

    def resolve_session_id(self, id_or_prefix: str) -> str:
        """The full id of a session given its id or an unambiguous prefix (else StoreError).

        Sessions known only from their runs (imported records) count too.
        """
        ids = dict.fromkeys(self._table(SESSIONS))
        runs = self._table(RUNS).values()
        ids.update(dict.fromkeys(s for r in runs if isinstance(s := r.get("session_id"), str)))
        return self._resolve(ids, id_or_prefix, "session")

    def sessions(self) -> list[dict[str, Any]]:
        return [_copy(s) for s in self._table(SESSIONS).values()]

    def sessions_by_id(self) -> dict[str, dict[str, Any]]:
        """The sessions table itself, by id: cached documents, read-only (no copies)."""
        return self._table(SESSIONS)

    def series(self, run_id: str) -> dict[str, Any] | None:
        runs = self._table(RUNS)
        record = runs.get(run_id)
        if record is None:
            return None
        pending = self._storage.side(SERIES).get(run_id)
        doc: dict[str, Any] | None
        if pending is not None:
            doc = _copy(pending)
        else:
            doc = self._read_shard(self._shard(record.get("session_id"))).get(run_id)
        if doc is None:
            return None
        doc.pop("started_at", None)
        return doc

    def query(self, q: RunQuery | None = None) -> list[dict[str, Any]]:
        """Runs matching ``q``, sorted (newest first by default), at most ``q.limit``."""
        q = q or RunQuery()
        hits = self._matching(q)
        ordered = in_order(hits, q)
        # Top-level copies: cheap, and enough to keep a caller's edits out of the file (the
        # storage writes each stored document's own cached bytes). Nested objects are shared
        # with the cache: treat them as read-only, or use get_run() for a deep copy.
        return [dict(r) for r in ordered]

    def count(self, q: RunQuery | None = None) -> int:
        """How many runs match ``q`` (all runs without one), without sorting or copying them —
        so the history screen can say "1–100 of 2,345" cheaply."""
        if q is None:
            return len(self._table(RUNS))
        return len(self._matching(q))

    def _matching(self, q: RunQuery) -> list[dict[str, Any]]:
        """The cached run documents passing every filter of ``q`` (not copies: read-only)."""
        runs = self._table(RUNS)
        sessions = self._table(SESSIONS) if q.machine else {}
        checks = record_checks(q, lambda record: self.machine_of(record, sessions))
        needle = q.search.casefold() if q.search else None
        hay = self._hay
        hits = []
        for rid, record in runs.items():
            if needle is not None:
                text = hay.get(rid)
                if text is None:
                    text = hay[rid] = haystack(record)
                if needle not in text:
                    continue
            if all(check(record) for check in checks):
                hits.append(record)
        return hits

    def close(self) -> None:
        """Fold the journal into history.json (so stock TinyDB and other tools see every run),
        then release the cache. A failure to fold loses nothing: the journal stays."""
        if self._closed:
            return
        self._closed = True
        try:
            self._read()
            if self._storage.journal_entries:
                with self._write():
                    self._storage.compact()
        except StoreError:
            pass
        finally:
            self._db.close()


def freeze_loaded_runs() -> None:
    """Exempt what is in memory now (the store's cached runs) from cyclic garbage collection.

    The cache of 10,000 runs is ~100,000 long-lived dicts; every full collection walks them
    (50-70 ms here) and lands, at random, in the middle of a paint or a keystroke. They are
    freed by reference counting when the store drops them, so freezing costs nothing; call it
    once the store is open, before the UI starts making garbage.
    """
    gc.freeze()
