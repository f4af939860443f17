"""Where the team store keeps what the database could not take: a local TinyDB store per
database (``<data dir>/spool/<digest of the URL>.json``), with the local store's guarantees —
an insert is one fsynced journal line, so a kill -9 loses at most the run in flight.

Draining sends sessions first, then runs with their series (the database skips ids it already
has), and only then deletes the sent runs from the spool: a crash in between sends them again,
which changes nothing. Runs another process spools meanwhile are not touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llmbench_tui.store.query import RunQuery
from llmbench_tui.store.runs import Store

DRAIN_BATCH = 500

SendSessions = Callable[[list[dict[str, Any]]], object]
SendRuns = Callable[[list[dict[str, Any]], dict[str, dict]], object]


def spool_path(data_dir: Path, shown_url: str) -> Path:
    """One spool per database (its URL without password), so runs go back where they belong."""
    digest = hashlib.sha256(shown_url.encode()).hexdigest()[:16]
    return data_dir / "spool" / f"{digest}.json"


class Spool:
    """The local store of runs waiting for the database (opened only when needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store: Store | None = None

    def _open(self) -> Store:
        if self._store is None:
            self._store = Store(self.path)
        return self._store

    def exists(self) -> bool:
        return self.path.exists()

    def add_session(self, session: dict[str, Any]) -> None:
        self._open().add_session(session)

    def add_runs(
        self, records: Iterable[dict[str, Any]], series: dict[str, dict] | None = None
    ) -> tuple[int, int]:
        return self._open().add_runs(records, series)

    def waiting(self) -> int:
        """How many runs wait in the spool."""
        return self._open().count() if self._store is not None or self.exists() else 0

    def drain(self, send_sessions: SendSessions, send_runs: SendRuns) -> int:
        """Send everything spooled; returns how many runs were sent. An exception from a send
        leaves the unsent runs in the spool."""
        if self._store is None and not self.exists():
            return 0
        store = self._open()
        sessions = store.sessions()
        if sessions:
            send_sessions(sessions)
        sent = 0
        while True:
            runs = store.query(RunQuery(sort="started_at", limit=DRAIN_BATCH))
            if not runs:
                return sent
            ids = [run["id"] for run in runs]
            send_runs(runs, store.series_many(ids))
            store.delete(ids)
            sent += len(ids)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
