"""``llmbench store copy SRC DST`` and ``llmbench store sync``: moving runs between stores.

``copy`` copies every session, run and series from one store to another — a local file
(a path to history.json or its folder) or a ``postgresql://`` URL, either way round — in
batches, with a progress bar on a terminal and progress lines otherwise. Runs the destination
already has (same id) are skipped, like ``import``, so copying twice changes nothing; the counts
are printed at the end. The source is only read.

``sync`` sends the runs a team database could not take while it was away (the local spool) and
says how many; opening the store for any command does the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from llmbench_tui.commands.common import add_data_dir, fail
from llmbench_tui.store import RunQuery, RunStore, StoreError, open_store
from llmbench_tui.store.journal import journal_path
from llmbench_tui.store.opening import local_path
from llmbench_tui.store.urls import is_database_url

PROG = "llmbench store"
BATCH = 1000


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Copy runs between stores; send "
                                     "the spool of a team database.")  # fmt: skip
    sub = parser.add_subparsers(dest="action", required=True)
    copy = sub.add_parser("copy", help="copy every run, session and series from SRC to DST")
    copy.add_argument("src", help="a history.json path (or its folder) or a postgresql:// URL")
    copy.add_argument("dst", help="a history.json path (or its folder) or a postgresql:// URL")
    copy.add_argument("--data-dir", help="where a database's local spool lives")
    sync = sub.add_parser("sync", help="send runs spooled while the team database was away")
    add_data_dir(sync)
    return parser


class Progress:
    """A bar redrawn in place on a terminal; a line every 10 % (and at the end) otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.tty = stream.isatty()
        self._shown = -1

    def update(self, done: int, added: int) -> None:
        share = done / self.total if self.total else 1.0
        if self.tty:
            filled = int(share * 30)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                              f"runs ({added} new)")  # fmt: skip
            if done >= self.total:
                self.stream.write("\n")
        else:
            tenth = int(share * 10)
            if tenth == self._shown and done < self.total:
                return
            self._shown = tenth
            self.stream.write(f"copied {done}/{self.total} runs ({added} new)\n")
        self.stream.flush()


def copy_store(src: RunStore, dst: RunStore, stream: TextIO) -> tuple[int, int, int]:
    """Copy everything from ``src`` to ``dst``; ``(sessions added, runs added, runs skipped)``."""
    sessions = dst.add_sessions(src.sessions())
    total = src.count()
    progress = Progress(total, stream)
    added = skipped = done = 0
    progress.update(0, 0)
    while done < total:
        runs = src.query(RunQuery(sort="id", limit=BATCH, offset=done))
        if not runs:
            break
        series = src.series_many(run["id"] for run in runs)
        new, old = dst.add_runs(runs, series)
        added, skipped, done = added + new, skipped + old, done + len(runs)
        progress.update(done, added)
    return sessions, added, skipped


def main(args: argparse.Namespace) -> int:
    if args.action == "sync":
        return _sync(args)
    start = time.perf_counter()
    source = local_path(args.src, None)
    if not is_database_url(args.src) and not (source.exists() or journal_path(source).exists()):
        return fail(PROG, f"no store at {source}: nothing to copy")
    try:
        src = open_store(args.src, args.data_dir)
        try:
            dst = open_store(args.dst, args.data_dir)
        except StoreError:
            src.close()
            raise
        try:
            sessions, added, skipped = copy_store(src, dst, sys.stderr)
            if dst.spooled:
                raise StoreError(f"{dst.location} went away during the copy; {dst.spooled} runs "
                                 "wait in the local spool (llmbench store sync)")  # fmt: skip
            counts = (src.count(), dst.count())
        finally:
            src.close()
            dst.close()
    except StoreError as exc:
        return fail(PROG, str(exc))
    print(f"copied {src.location} -> {dst.location}: {added} runs added, {skipped} already "
          f"there, {sessions} sessions added in {time.perf_counter() - start:.1f} s; "
          f"{counts[0]} runs in the source, {counts[1]} in the destination")  # fmt: skip
    return 0


def _sync(args: argparse.Namespace) -> int:
    from llmbench_tui.store.opening import store_location

    try:
        location = store_location(args.store)
        if not is_database_url(location):
            print("the store is a local file: nothing to sync")
            return 0
        from llmbench_tui import config
        from llmbench_tui.store.postgres import PgStore  # psycopg only for a database

        store = PgStore(str(location), config.data_dir(args.data_dir))  # opening sends the spool
        try:
            sent = store.sent_at_open + store.sync()
            waiting = store.waiting()
        finally:
            store.close()
    except StoreError as exc:
        return fail(PROG, str(exc))
    print(f"sent {sent} spooled runs to {store.location}; {waiting} still waiting")
    return 0
