"""``llmbench doctor``: check the database and recover what a damaged one still holds.

A damaged history.json is never written over: its bytes are kept as
``history.json.corrupt-<timestamp>`` (a hard link, so the file is preserved even if recovery
stops halfway), every run and session record still readable in it is salvaged, and a new
database holding them replaces it atomically. ``--prune-series DAYS`` drops old telemetry series
(never run records).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from llmbench_tui import config
from llmbench_tui.commands.history import add_data_dir, fail
from llmbench_tui.storage import (
    META_TABLE,
    AtomicJSONStorage,
    CorruptDatabase,
    parse_tables,
)
from llmbench_tui.store import RUNS, SESSIONS, STORE_SCHEMA, Store, StoreError

_OBJECT_START = re.compile(r'\{\s*"')


def salvage(data: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs and sessions whose JSON objects are still complete in a damaged file.

    Tries to decode an object at every ``{"``; a decoded run or session is kept and the scan
    jumps past it, so the work stays close to linear in the file size.
    """
    text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    runs: dict[str, dict] = {}
    sessions: dict[str, dict] = {}
    pos = 0
    while (m := _OBJECT_START.search(text, pos)) is not None:
        try:
            obj, end = decoder.raw_decode(text, m.start())
        except ValueError:
            pos = m.start() + 1
            continue
        if isinstance(obj, dict) and isinstance(obj.get("id"), str) and "started_at" in obj:
            target = runs if "status" in obj else sessions
            target.setdefault(obj["id"], obj)
            pos = end
        elif isinstance(obj, dict) and all(isinstance(v, dict) for v in obj.values()) and obj:
            pos = m.start() + 1  # a table: its records are inside, look at them one by one
        else:
            pos = end
    return list(runs.values()), list(sessions.values())


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _keep_aside(path: Path) -> Path:
    """Preserve ``path``'s bytes under a new name without moving it (link, else copy)."""
    aside = path.with_name(f"{path.name}.corrupt-{_stamp()}")
    try:
        os.link(path, aside)
    except OSError:
        shutil.copy2(path, aside)
    return aside


def recover(path: Path) -> str:
    """Rebuild a damaged database from what it still holds; returns what was done."""
    storage = AtomicJSONStorage(path)
    with storage.transaction():
        data = path.read_bytes()
        try:
            parse_tables(data, path)
            return f"{path} is readable again (another process repaired it); nothing to do"
        except CorruptDatabase:
            pass
        runs, sessions = salvage(data)
        aside = _keep_aside(path)
        tables = {
            META_TABLE: {"1": {"schema": STORE_SCHEMA}},
            RUNS: {r["id"]: r for r in runs},
            SESSIONS: {s["id"]: s for s in sessions},
        }
        storage.write(tables)
    return (
        f"recovered {len(runs)} runs and {len(sessions)} sessions into a new {path.name}; "
        f"the damaged file is kept as {aside.name}"
    )


def check_series(store: Store) -> list[str]:
    """Move unreadable series files aside (series are not worth refusing to start over)."""
    notes = []
    if not store.series_dir.is_dir():
        return notes
    for shard in sorted(store.series_dir.glob("*.json")):
        try:
            parse_tables(shard.read_bytes(), shard)
        except CorruptDatabase:
            notes.append(f"unreadable series file {shard.name} kept as {_keep_aside(shard).name}")
            shard.unlink()
    return notes


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Check and repair the database.")
    add_data_dir(parser)
    parser.add_argument(
        "--prune-series", type=float, metavar="DAYS",
        help="drop telemetry series of runs older than DAYS (run records are kept)",
    )  # fmt: skip
    return parser


def main(args: argparse.Namespace) -> int:
    prog = "llmbench doctor"
    path = config.db_path(args.data_dir)
    if not path.exists():
        print(f"no database at {path} yet; nothing to check")
        return 0
    try:
        parse_tables(path.read_bytes(), path)
    except CorruptDatabase:
        print(recover(path))
    try:
        store = Store(path)
        for note in check_series(store):
            print(note)
        if args.prune_series is not None:
            dropped = store.prune_series(args.prune_series)
            print(f"dropped {dropped} telemetry series older than {args.prune_series:g} days")
        print(f"{path} is healthy: {store.count()} runs, {len(store.sessions())} sessions")
    except StoreError as exc:
        return fail(prog, str(exc))
    return 0
