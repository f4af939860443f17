"""``llmbench doctor``: check the database and recover what a damaged one still holds.

Damaged files are never written over: their bytes are kept as ``<name>.corrupt-<timestamp>``
(a hard link, so the file is preserved even if recovery stops halfway) before anything replaces
them.

- A damaged history.json: every run and session record still readable in it is salvaged (and the
  journal position it recorded, so journal entries it already held are not applied twice), and a
  new database holding them replaces it atomically.
- A damaged journal (a bad line followed by good ones, or entries that do not follow on from
  history.json): every line whose checksum still matches is kept, in order, renumbered to follow
  on from history.json, and the journal is replaced atomically. A torn last line is not damage
  (a crash mid-append, never acknowledged); the next insert cuts it.

Opening the repaired store then folds the journal into history.json. ``--prune-series DAYS``
drops old telemetry series (never run records).
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

import orjson

from llmbench_tui import config
from llmbench_tui.commands.common import add_data_dir, fail
from llmbench_tui.store import RUNS, SESSIONS, STORE_SCHEMA, Store, StoreError, store_location
from llmbench_tui.store.journal import (
    JOURNAL_KEY,
    META_TABLE,
    NONCE_KEY,
    AtomicJSONStorage,
    CorruptDatabase,
    Entry,
    atomic_write_bytes,
    base_seq,
    encode_entry,
    journal_path,
    parse_tables,
    scan_journal,
)
from llmbench_tui.store.opening import local_path
from llmbench_tui.store.urls import is_database_url

_SEQ = re.compile(rb'"journal":\{"seq":(\d+)\}')
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


def salvage_journal(data: bytes) -> list[Entry]:
    """Every journal line whose checksum still matches, in journal order (first of a seq)."""
    seen: dict[int, Entry] = {}
    for line in data.split(b"\n"):
        scan = scan_journal(line + b"\n")
        for seq, ops in scan.entries:
            seen.setdefault(seq, (seq, ops))
    return sorted(seen.values())


def damage(path: Path) -> CorruptDatabase | None:
    """What is wrong with the database or its journal, as the store would report it."""
    storage = AtomicJSONStorage(path)
    try:
        with storage.transaction():
            storage.read()
    except CorruptDatabase as exc:
        return exc
    return None


def _rebuild_base(path: Path, data: bytes) -> tuple[int, str]:
    """Replace a damaged (or missing) history.json by what it still holds."""
    runs, sessions = salvage(data)
    found = _SEQ.search(data[:4096])
    seq = int(found.group(1)) if found else 0
    tables = {
        META_TABLE: {
            NONCE_KEY: {"v": os.urandom(8).hex()},
            JOURNAL_KEY: {"seq": seq},
            "1": {"schema": STORE_SCHEMA},
        },
        RUNS: {r["id"]: r for r in runs},
        SESSIONS: {s["id"]: s for s in sessions},
    }
    kept = f"; the damaged file is kept as {_keep_aside(path).name}" if path.exists() else ""
    atomic_write_bytes(path, orjson.dumps(tables))
    return seq, (
        f"recovered {len(runs)} runs and {len(sessions)} sessions into a new {path.name}{kept}"
    )


def recover(path: Path) -> str:
    """Rebuild a damaged database and/or journal from what they still hold; says what was done."""
    storage = AtomicJSONStorage(path)
    journal = journal_path(path)
    notes = []
    with storage.transaction():
        data = path.read_bytes() if path.exists() else b""
        try:
            tables = parse_tables(data, path)
        except CorruptDatabase:
            tables = None
        if tables is None:
            seq, note = _rebuild_base(path, data)
            notes.append(note)
        else:
            seq = base_seq(tables)
        jdata = journal.read_bytes() if journal.exists() else b""
        scan = scan_journal(jdata)
        fresh = [e for e in scan.entries if e[0] > seq]
        follows = all(e[0] == seq + 1 + i for i, e in enumerate(fresh))
        if scan.damage is not None or not follows:
            entries = [e for e in salvage_journal(jdata) if e[0] > seq]
            aside = _keep_aside(journal)
            lines = [encode_entry(seq + 1 + i, ops) for i, (_, ops) in enumerate(entries)]
            atomic_write_bytes(journal, b"".join(lines))
            notes.append(
                f"salvaged {len(entries)} journal entries into a new {journal.name}; "
                f"the damaged journal is kept as {aside.name}"
            )
    return "; ".join(notes) or f"{path} is readable again (another process repaired it)"


def check_series(store: Store) -> list[str]:
    """Move unreadable series files aside (series are not worth refusing to start over)."""
    notes: list[str] = []
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
    try:
        location = store_location(args.store)
    except StoreError as exc:
        return fail(prog, str(exc))
    if is_database_url(location):
        return _check_database(prog, str(location), args)
    path = local_path(location, args.data_dir)
    if not path.exists() and not journal_path(path).exists():
        print(f"no database at {path} yet; nothing to check")
        return 0
    try:
        if damage(path) is not None:
            print(recover(path))
        store = Store(path)
        try:
            for note in check_series(store):
                print(note)
            if args.prune_series is not None:
                dropped = store.prune_series(args.prune_series)
                print(f"dropped {dropped} telemetry series older than {args.prune_series:g} days")
            print(f"{path} is healthy: {store.count()} runs, {len(store.sessions())} sessions")
        finally:
            store.close()
    except StoreError as exc:
        return fail(prog, str(exc))
    except OSError as exc:
        return fail(prog, f"cannot repair {path}: {exc.strerror or exc}")
    return 0


def _check_database(prog: str, url: str, args: argparse.Namespace) -> int:
    """A team database is checked by its server; here: can we reach it, what it holds, and
    what waits in the local spool (sent by opening it)."""
    from llmbench_tui.store.postgres import PgStore

    try:
        store = PgStore(url, config.data_dir(args.data_dir))
        try:
            if args.prune_series is not None:
                dropped = store.prune_series(args.prune_series)
                print(f"dropped {dropped} telemetry series older than {args.prune_series:g} days")
            print(f"{store.location} is reachable: {store.count()} runs, "
                  f"{len(store.sessions())} sessions; {store.sent_at_open} spooled runs sent, "
                  f"{store.waiting()} waiting")  # fmt: skip
        finally:
            store.close()
    except StoreError as exc:
        return fail(prog, str(exc))
    return 0
