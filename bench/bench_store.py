"""Benchmark of the result store against stock TinyDB, at several database sizes.

For each size N the database is first filled in bulk (one write) with realistic generated runs
and their telemetry series (``tests/support/seed_history.py``), then timed, one operation at a time:

- insert: ``add_run(record, series)`` of a new run, crash-safe (one journal line appended and
  fsynced under the cross-process lock; every ``JOURNAL_MAX_ENTRIES``-th insert also folds the
  journal into history.json: temp file, fsync, replace, dir fsync). ``--inserts`` of them are
  timed so that compactions are included: p50, max and mean (the amortized cost);
  stock: ``Table.insert`` with ``JSONStorage`` (in place, not safe), ``--repeat`` of them;
- close: the final fold-in of whatever the journal still holds (ours only);
- list: the first page (50 newest runs);
- search: a case-insensitive text search over every run (all hits, sorted newest first);
- get: one run by id.

Stock TinyDB keeps the series in a table of the same file, since it has no other place.
Usage: ``python bench/bench_store.py --sizes 1000,10000,50000 --stock-max 10000``.

``--backends local,postgres`` instead compares the two backends of the store interface (the
local file and the team database; ``bench_backends.py``): insert p50/p99, search, the history's
first page, ``show``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tinydb import Query, TinyDB
from tinydb.storages import JSONStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.seed_history import make_runs

from llmbench_tui.store import RunQuery, Store

SEARCH = "TCP three-way"


def samples(fn, repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls."""
    out = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def timed(fn, repeat: int) -> float:
    """Median milliseconds of ``repeat`` calls."""
    return statistics.median(samples(fn, repeat))


def insert_stats(ms: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(ms), "max": max(ms), "mean": statistics.fmean(ms)}


def ours(tmp: Path, runs, extra, repeat: int) -> dict[str, float]:
    path = tmp / "ours" / "history.json"
    store = Store(path)
    store.add_runs([r for r, _ in runs], {r["id"]: s for r, s in runs if s})
    ids = [r["id"] for r, _ in runs]
    inserts = samples(lambda i: store.add_run(*extra[i]), len(extra))
    out = {
        **insert_stats(inserts),
        "list": timed(lambda i: store.query(RunQuery(limit=50)), repeat),
        "search": timed(lambda i: store.query(RunQuery(search=SEARCH)), repeat),
        "get": timed(lambda i: store.get_run(ids[i * 7 % len(ids)]), repeat),
        "mb": path.stat().st_size / 1e6,
    }
    t0 = time.perf_counter()
    store.close()
    out["close"] = (time.perf_counter() - t0) * 1000
    return out


def stock(tmp: Path, runs, extra, repeat: int) -> dict[str, float]:
    path = tmp / "stock.json"
    with TinyDB(str(path), storage=JSONStorage) as db:
        db.storage.write(
            {
                "runs": {str(i + 1): r for i, (r, _) in enumerate(runs)},
                "series": {
                    str(i + 1): dict(s, run_id=r["id"]) for i, (r, s) in enumerate(runs) if s
                },
            }
        )
        table, series = db.table("runs"), db.table("series")
        needle = SEARCH.casefold()
        Run = Query()

        def insert(i: int) -> None:
            rec, ser = extra[i]
            table.insert(rec)
            if ser:
                series.insert(dict(ser, run_id=rec["id"]))

        def search(i: int) -> None:
            hits = table.search(Run.prompt.test(lambda t: needle in str(t).casefold()))
            sorted(hits, key=lambda r: r["started_at"], reverse=True)

        ids = [r["id"] for r, _ in runs]
        out = {
            **insert_stats(samples(insert, repeat)),
            "list": timed(
                lambda i: sorted(table.all(), key=lambda r: r["started_at"])[-50:], repeat
            ),
            "search": timed(search, repeat),
            "get": timed(lambda i: table.get(Run.id == ids[i * 7 % len(ids)]), repeat),
            "mb": path.stat().st_size / 1e6,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--stock-max", type=int, default=10000, help="skip stock above this size")
    parser.add_argument("--repeat", type=int, default=9, help="timed calls per operation")
    parser.add_argument(
        "--inserts", type=int, default=300, help="timed inserts into ours (>256: one compaction)"
    )
    parser.add_argument("--dir", help="where to build the databases (default: a temp dir)")
    parser.add_argument("--backends", help="local,postgres: the store interface's backends "
                        "(bench_backends.py) instead of ours against stock TinyDB")  # fmt: skip
    parser.add_argument("--pg-url", help="a PostgreSQL database for --backends postgres "
                        "(default: a server started in a temp dir, as the tests do)")  # fmt: skip
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.backends:
        from bench_backends import run_backends

        return run_backends(args.backends.split(","), sizes, args)
    print(f"# {platform.platform()}, Python {platform.python_version()}, "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    print("| runs | store | file MB | insert p50 ms | insert max ms | insert mean ms | "
          "close ms | list ms | search ms | get ms |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    extra_n = max(args.inserts, args.repeat)
    all_runs = make_runs(max(sizes) + extra_n)
    for n in sizes:
        runs, extra = all_runs[:n], all_runs[-extra_n:]
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            results = [("llmbench (crash-safe)", ours(Path(tmp), runs, extra, args.repeat))]
            if n <= args.stock_max:
                results.append(
                    ("stock TinyDB JSONStorage", stock(Path(tmp), runs, extra, args.repeat))
                )
        for name, r in results:
            close = f"{r['close']:.1f}" if "close" in r else "-"
            print(f"| {n:,} | {name} | {r['mb']:.1f} | {r['p50']:.1f} | {r['max']:.1f} | "
                  f"{r['mean']:.1f} | {close} | {r['list']:.1f} | {r['search']:.1f} | "
                  f"{r['get']:.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
