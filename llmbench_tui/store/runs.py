"""The run store: ``Store`` and its queries over the journaled TinyDB database."""

from __future__ import annotations

import gc
import heapq
import re
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from tinydb import TinyDB
from tinydb.table import Table

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
from llmbench_tui.store.order import StartedIndex
from llmbench_tui.store.query import RunQuery, StoreError, haystack, parse_when, with_machine
from llmbench_tui.store.records import (
    RUNS,
    SERIES,
    SESSIONS,
    STORE_SCHEMA,
    copy_doc,
    normalize_tables,
    score_at_least,
    sort_key,
    started,
    store_schema,
    unfiltered,
)


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
        self._by_start = StartedIndex(started)  # the history's first page, unsorted runs
        with self._write():
            self._sweep_temp()  # creates, checks or migrates the file on the way in
            if self._storage.needs_folding:  # a long journal left by a killed session:
                self._storage.compact()  # folded in here, not in the middle of an insert

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def spooled(self) -> int:
        return 0  # a local file takes every run

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

            def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                         tb: TracebackType | None) -> None:  # fmt: skip
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
        added, _ = self.add_runs([record], {str(record.get("id")): series} if series else None)
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
                    fresh[record["id"]] = with_machine(record, sessions)
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
            record = copy_doc(current)  # stored documents are replaced, never mutated
            previous = record.get("quality")
            if previous is not None:
                history = record.get("quality_history")
                record["quality_history"] = [*(history if isinstance(history, list) else []),
                                             previous]  # fmt: skip
            record["quality"] = quality
            self._storage.append([[RUNS, run_id, record]])
        return copy_doc(record)

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
                old = [rid for rid, doc in table.items() if (started(doc) or cutoff) < cutoff]
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
        hits = [rid for rid in list(table) if rid.startswith(key)] if key else []
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
        return copy_doc(runs[self._resolve(runs, id_or_prefix, "run")])

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        sessions = self._table(SESSIONS)
        try:
            return copy_doc(sessions[self._resolve(sessions, session_id, "session")])
        except StoreError:
            return None

    def resolve_session_id(self, id_or_prefix: str) -> str:
        """The full id of a session given its id or an unambiguous prefix (else StoreError).

        Sessions known only from their runs (imported records) count too.
        """
        ids = dict.fromkeys(list(self._table(SESSIONS)))
        runs = list(self._table(RUNS).values())
        ids.update(dict.fromkeys(s for r in runs if isinstance(s := r.get("session_id"), str)))
        return self._resolve(ids, id_or_prefix, "session")

    def sessions(self) -> list[dict[str, Any]]:
        return [copy_doc(s) for s in list(self._table(SESSIONS).values())]

    def sessions_by_id(self) -> dict[str, dict[str, Any]]:
        """The sessions by id: cached documents, read-only (the dict is a snapshot, the
        documents are not copies)."""
        return dict(self._table(SESSIONS))

    def distinct(self, field: str) -> list[str]:
        runs = list(self._table(RUNS).values())
        return sorted({str(r.get(field)) for r in runs if r.get(field)})

    def series(self, run_id: str) -> dict[str, Any] | None:
        return self.series_many([run_id]).get(run_id)

    def series_many(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The series of many runs (``store copy``), each session shard read once."""
        runs = self._table(RUNS)
        pending = self._storage.side(SERIES)
        found: dict[str, dict[str, Any]] = {}
        by_shard: dict[Path, list[str]] = {}
        for rid in run_ids:
            record = runs.get(rid)
            if record is None:
                continue
            if rid in pending:
                found[rid] = copy_doc(pending[rid])
            else:
                by_shard.setdefault(self._shard(record.get("session_id")), []).append(rid)
        for shard, rids in by_shard.items():
            table = self._read_shard(shard)
            found.update({rid: copy_doc(table[rid]) for rid in rids if rid in table})
        for doc in found.values():
            doc.pop("started_at", None)
        return found

    def query(self, q: RunQuery | None = None) -> list[dict[str, Any]]:
        """Runs matching ``q``, sorted (newest first by default), at most ``q.limit``."""
        q = q or RunQuery()
        field = q.sort or "-started_at"
        if q.limit is not None and field.lstrip("-+") == "started_at" and unfiltered(q):
            runs = self._table(RUNS)
            ids = self._by_start.page(runs, descending=field.startswith("-"),
                                      offset=max(q.offset, 0), limit=max(q.limit, 0))  # fmt: skip
            return [dict(runs[rid]) for rid in ids]
        hits = self._matching(q)
        descending = field.startswith("-")
        key = sort_key(field.lstrip("-+"))
        keyed = [(key(r), r) for r in hits]
        present = [kr for kr in keyed if kr[0][0] == 0]
        start = max(q.offset, 0)
        wanted = None if q.limit is None else start + max(q.limit, 0)
        if wanted is not None and wanted * 8 < len(present):
            # One page of many runs (the history's first page): a partial selection instead
            # of sorting them all. nlargest/nsmallest equal sorted(...)[:n], ties included.
            pick = heapq.nlargest if descending else heapq.nsmallest
            present = pick(wanted, present, key=lambda kr: kr[0])
        else:
            present.sort(key=lambda kr: kr[0], reverse=descending)
        ordered = [r for _, r in present]
        if wanted is None or len(ordered) < wanted:
            ordered += [r for k, r in keyed if k[0] == 1]
        if q.limit is not None:
            ordered = ordered[start : start + max(q.limit, 0)]
        elif start:
            ordered = ordered[start:]
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
        if sid := q.session_id:
            checks.append(lambda r: str(r.get("session_id") or "").startswith(sid))
        if q.machine:
            from llmbench_tui.telemetry.environment import machine_matches

            sessions = self._table(SESSIONS)
            memo: dict[Any, bool] = {}  # machine id -> match: thousands of runs, a few machines

            def on_machine(record: dict[str, Any]) -> bool:
                block = self.machine_of(record, sessions)
                key = block.get("machine_id") if block else None
                if not isinstance(key, str):  # no id (an odd imported block): no memo
                    return machine_matches(block, q.machine or "")
                if key not in memo:
                    memo[key] = machine_matches(block, q.machine or "")
                return memo[key]

            checks.append(on_machine)
        if q.since:
            since = parse_when(q.since)
            checks.append(lambda r: (started(r) or since) >= since and started(r) is not None)
        if q.until:
            until = parse_when(q.until, end=True)
            checks.append(lambda r: (started(r) or until) <= until and started(r) is not None)
        if (minimum := q.min_score) is not None:
            checks.append(lambda r: score_at_least(r, minimum))
        needle = q.search.casefold() if q.search else None
        hay = self._hay
        hits = []
        # A snapshot of the keys (inserts add to the dict in place); keys, not items: 100,000
        # fresh tuples would wake the cyclic GC, which then walks every cached run.
        for rid in list(runs):
            record = runs[rid]
            if needle is not None:
                text = hay.get(rid)
                if text is None:
                    text = hay[rid] = haystack(record)
                if needle not in text:
                    continue
            if not checks or all(check(record) for check in checks):
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
