"""The two backends of the store interface side by side (``bench_store.py --backends``).

For each size N the store is filled in bulk (``add_runs`` in batches; for N above the
generated pool, copies of it with fresh ids and later start times), reopened, then timed one
operation at a time:

- insert: ``add_run(record, series)``, durable on return (local: one fsynced journal line;
  database: one committed transaction). p50, p99 and max of ``--inserts`` consecutive inserts;
- page: the history's first page as the screen asks for it: ``query(limit=101)`` (newest first)
  plus ``count()`` for "1-100 of N";
- search: a case-insensitive text search, first page of hits (``query(search=..., limit=101)``);
- show: what ``llmbench show`` reads: ``get_run(id)`` and ``series(id)``.

Each read figure is the median of ``--repeat`` calls. The PostgreSQL server is the one the
tests use (Debian's, in a temp dir), but durable: fsync on, as the local store's journal is.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.seed_history import make_runs

from llmbench_tui.store import RunQuery, open_store

SEARCH = "TCP three-way"
POOL = 20_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def pool_runs(
    n: int, pool: list[tuple[dict, dict | None]], batch: int
) -> Iterator[list[tuple[dict, Any]]]:
    """``n`` runs in batches: the pool, then copies of it with new ids, shifted later."""
    done = 0
    copy = 0
    while done < n:
        for start in range(0, len(pool), batch):
            chunk = pool[start : start + min(batch, n - done)]
            if copy:
                chunk = [({**rec, "id": f"{copy:04d}{rec['id'][4:]}",
                           "started_at": _later(rec["started_at"], copy)}, ser)
                         for rec, ser in chunk]  # fmt: skip
            yield chunk
            done += len(chunk)
            if done >= n:
                return
        copy += 1


def _later(iso: str, weeks: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(iso) + timedelta(weeks=7 * weeks)).isoformat()


def measure(location: str, data_dir: Path, n: int, pool: list, extra: list, args: Any) -> dict:
    store = open_store(location, data_dir)
    t0 = time.perf_counter()
    # The local store writes a big batch straight into its file (one rewrite each): few, big
    # batches; the database takes any size: 1,000 rows per transaction.
    batch = 1000 if location.startswith("postgresql") else 20_000
    for chunk in pool_runs(n, pool, batch):
        store.add_runs([r for r, _ in chunk], {r["id"]: s for r, s in chunk if s})
    fill_s = time.perf_counter() - t0
    store.close()
    store = open_store(location, data_dir)  # as a command finds it
    try:
        inserts = []
        for rec, ser in extra:
            t = time.perf_counter()
            store.add_run(rec, ser)
            inserts.append((time.perf_counter() - t) * 1000)
        ids = [r["id"] for r, _ in pool[: args.repeat * 7 : 7]]
        cpu = _without_fsync(store, extra) if not location.startswith("postgresql") else []

        def timed(fn: Any) -> float:
            out = []
            for i in range(args.repeat):
                t = time.perf_counter()
                fn(i)
                out.append((time.perf_counter() - t) * 1000)
            return statistics.median(out)

        def page(_i: int) -> None:
            store.query(RunQuery(limit=101))
            store.count()

        def show(i: int) -> None:
            store.get_run(ids[i])
            store.series(ids[i])

        total = store.count()
        return {
            "fill_s": fill_s, "count": total,
            "p50": statistics.median(inserts), "p99": percentile(inserts, 0.99),
            "max": max(inserts),
            "page": timed(page),
            "search": timed(lambda i: store.query(RunQuery(search=SEARCH, limit=101))),
            "show": timed(show),
            "cpu_p50": statistics.median(cpu) if cpu else None,
            "cpu_p99": percentile(cpu, 0.99) if cpu else None,
        }  # fmt: skip
    finally:
        t = time.perf_counter()
        store.close()
        close_ms = (time.perf_counter() - t) * 1000
        print(f"  ({location.split('@')[-1]}: close {close_ms:.0f} ms)", file=sys.stderr)


def _without_fsync(store: Any, extra: list) -> list[float]:
    """The same inserts (fresh ids) with ``os.fsync`` made a no-op: what the insert path costs
    besides the disk. A measurement only: such inserts are not durable."""
    import os

    real = os.fsync
    os.fsync = lambda fd: None
    try:
        out = []
        for rec, ser in extra:
            rec = {**rec, "id": "nofsync" + rec["id"]}
            t = time.perf_counter()
            store.add_run(rec, ser)
            out.append((time.perf_counter() - t) * 1000)
        return out
    finally:
        os.fsync = real


def fsync_floor(directory: Path, n: int) -> tuple[float, float]:
    """p50 and p99 ms of appending 2 kB to a file and fsyncing it, on the disk the local store
    uses: the floor of any durable insert there (the journal does exactly this, once)."""
    import os

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    out = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 2048)
            t = time.perf_counter()
            os.fsync(fd)
            out.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(out), percentile(out, 0.99)


def run_backends(backends: list[str], sizes: list[int], args: argparse.Namespace) -> int:
    pool_all = make_runs(min(max(sizes), POOL) + args.inserts)
    extra = pool_all[-args.inserts :]
    pool = pool_all[: -args.inserts]
    server = None
    root = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    try:
        print("| runs | backend | fill s | insert p50 ms | insert p99 ms | insert max ms | "
              "first page ms | search ms | show ms |")  # fmt: skip
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            for backend in backends:
                if backend == "postgres":
                    if args.pg_url:
                        location = args.pg_url
                        _truncate(location)
                    else:
                        if server is None:
                            from pg_server import PgServer

                            pg_root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
                            server = PgServer(pg_root, durable=True)
                            server.init()
                        location = server.new_database()
                else:
                    location = str(root / f"local-{n}" / "history.json")
                r = measure(location, root / "data", n, pool, extra, args)
                print(f"| {r['count']:,} | {backend} | {r['fill_s']:.0f} | {r['p50']:.2f} | "
                      f"{r['p99']:.2f} | {r['max']:.1f} | {r['page']:.1f} | {r['search']:.1f} | "
                      f"{r['show']:.2f} |", flush=True)  # fmt: skip
                if r["cpu_p50"] is not None:
                    print(f"| | (the same inserts without fsync: the insert path's own cost) "
                          f"| | {r['cpu_p50']:.2f} | {r['cpu_p99']:.2f} | | | | |",
                          flush=True)  # fmt: skip
                if backend == "local":
                    shutil.rmtree(root / f"local-{n}", ignore_errors=True)
                    p50, p99 = fsync_floor(root / "probe", args.inserts)
                    print(f"| | (fsync of a 2 kB append, same disk, just after) | | {p50:.2f} | "
                          f"{p99:.2f} | | | | |", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS series, runs, sessions, schema_version")
