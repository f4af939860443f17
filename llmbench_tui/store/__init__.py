"""Where runs are written: the public ``Store`` and its errors in front; ``runs`` (queries,
sessions, series shards) and ``journal`` (the crash-safe file format) behind.

The result store: every run, its telemetry series and its session, in a TinyDB JSON database.

Layout (store schema :data:`STORE_SCHEMA`):

- ``history.json`` (TinyDB format, written by
  :class:`~llmbench_tui.store.journal.AtomicJSONStorage`): table ``_meta`` (``{"1": {"schema":
  N}}``), table ``runs`` keyed by the record's own ``id`` (a uuid from the engine, so ids are
  unique across processes and machines and get-by-id is a dict lookup), table ``sessions`` keyed by
  session id.
- ``history.json.journal``: the write-ahead journal of that storage. An insert (a run with its
  series, or a session) is one appended, fsynced line; the journal is folded into history.json
  every :data:`~llmbench_tui.store.journal.JOURNAL_MAX_ENTRIES` entries, by deletes and pruning, and
  when a store is closed. Stock TinyDB reading history.json sees everything folded in so far.
- ``history.series/<session>.json``: the telemetry and chunk-arrival series, one TinyDB file per
  session (table ``series`` keyed by run id). Kept out of ``history.json`` so that the file
  rewritten on every compaction stays small: series are most of the bytes and are read only when
  one run is opened. A series travels in the same journal line as its run, and is written to its
  shard by the compaction *before* the journal line goes, so a stored run never points at a
  missing series (a kill in between only leaves a series stored twice, which is harmless).

Every write holds the database lock from its read to its append or atomic replace.
"""

from llmbench_tui.store.errors import StoreError
from llmbench_tui.store.journal import CorruptDatabase, LockTimeout
from llmbench_tui.store.query import RunQuery, parse_when
from llmbench_tui.store.runs import (
    RUNS,
    SERIES,
    SESSIONS,
    STORE_SCHEMA,
    Store,
    freeze_loaded_runs,
    normalize_tables,
)

__all__ = [
    "RUNS",
    "SERIES",
    "SESSIONS",
    "STORE_SCHEMA",
    "CorruptDatabase",
    "LockTimeout",
    "RunQuery",
    "Store",
    "StoreError",
    "freeze_loaded_runs",
    "normalize_tables",
    "parse_when",
]
