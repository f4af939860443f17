"""Which store a command opens: ``--store``, then ``LLMBENCH_STORE``, then the ``store`` line of
``config.toml``, then the local ``history.json`` in the data directory.

A path (or nothing) means the local TinyDB store; ``postgresql://user@host/db`` (or
``postgres://``) means the team store on PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmbench_tui import config
from llmbench_tui.store.interface import RunStore
from llmbench_tui.store.query import StoreError
from llmbench_tui.store.urls import is_database_url


def store_location(explicit: str | None = None) -> str | None:
    """The configured store location, or None for the default local file."""
    if explicit:
        return explicit
    if os.environ.get("LLMBENCH_STORE"):
        return os.environ["LLMBENCH_STORE"]
    try:
        return config.store_setting()
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def local_path(location: str | None, data_dir: str | os.PathLike[str] | None) -> Path:
    """The TinyDB file a non-URL location names: a ``.json`` file as is, a folder's
    ``history.json``, or the data directory's ``history.json`` when nothing is given."""
    if not location:
        return config.db_path(data_dir)
    path = Path(location).expanduser()
    return path if path.suffix == ".json" else path / "history.json"


def open_store(
    location: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    spool_when_away: bool = False,
) -> RunStore:
    """Open the store ``location`` names (see the module docstring); ``StoreError`` with one
    sentence when it cannot be opened. ``data_dir`` holds the local store and, for a database,
    the spool of runs it could not take. ``spool_when_away``: a database that cannot be reached
    at all (refused, timed out) is not an error but a session that starts spooling (``--batch``
    and the dashboard, which write runs); a wrong password or missing database still is."""
    location = store_location(location)
    if is_database_url(location):
        from llmbench_tui.store.postgres import PgStore  # psycopg only when a database is used

        return PgStore(str(location), config.data_dir(data_dir), spool_when_away=spool_when_away)
    from llmbench_tui.store.runs import Store

    return Store(local_path(location, data_dir))
