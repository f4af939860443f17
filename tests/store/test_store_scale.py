"""The local store at scale: an insert never folds the journal in (that happens at close, or
at open after a killed session), the history's first page comes from the start-time index in
exactly the order of a full sort, and readers in other threads survive inserts that change the
cached tables in place."""

from __future__ import annotations

import threading

import orjson
from support.store_helpers import run

from llmbench_tui.store import RunQuery, Store
from llmbench_tui.store import journal as storage


def ids(runs: list[dict]) -> list[str]:
    return [r["id"] for r in runs]


def test_inserts_never_rewrite_the_file_and_close_folds_in(tmp_path) -> None:
    path = tmp_path / "history.json"
    store = Store(path)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    for i in range(storage.FOLD_AT_OPEN_ENTRIES + 40):  # past the old fold-in limit (256)
        store.add_run(run(), {"arrivals_s": [float(i)]})
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before  # history.json untouched
    assert store.count() == storage.FOLD_AT_OPEN_ENTRIES + 40
    store.close()
    assert len(orjson.loads(path.read_bytes())["runs"]) == storage.FOLD_AT_OPEN_ENTRIES + 40
    assert not path.with_name("history.json.journal").exists()


def test_a_long_journal_left_by_a_killed_session_is_folded_in_at_open(tmp_path) -> None:
    path = tmp_path / "history.json"
    store = Store(path)
    records = [run() for _ in range(storage.FOLD_AT_OPEN_ENTRIES + 5)]
    for record in records:
        store.add_run(record)
    # no close(): as if killed. The next open folds the journal in before anything else.
    again = Store(path)
    assert not path.with_name("history.json.journal").exists()
    assert sorted(ids(again.query())) == sorted(ids(records))
    again.close()


def test_the_first_page_is_the_full_sort_page(tmp_path) -> None:
    store = Store(tmp_path / "history.json")
    same = "2025-03-02T10:00:00+00:00"
    records = [run(started_at=f"2025-03-01T10:{i % 60:02d}:00+00:00") for i in range(150)]
    records += [run(started_at=same) for _ in range(30)]  # ties, across page boundaries
    records += [run(started_at="not a date") for _ in range(5)]  # undated: last either way
    store.add_runs(records[:100])
    for record in records[100:]:
        store.add_run(record)

    def check() -> None:
        for sort in ("-started_at", "started_at"):
            full = ids(store.query(RunQuery(sort=sort)))  # the full, stable sort
            for offset, limit in ((0, 10), (0, 101), (5, 30), (170, 20), (0, 500)):
                page = store.query(RunQuery(sort=sort, limit=limit, offset=offset))
                assert ids(page) == full[offset : offset + limit], (sort, offset, limit)

    check()
    for record in [run(started_at=same), run(started_at="2030-01-01T00:00:00+00:00")]:
        store.add_run(record)  # the index catches up with inserts...
    check()
    store.delete([records[3]["id"], records[160]["id"]])  # ...and with a rewritten table
    check()
    store.update_quality(records[170]["id"], {"score": 5.0})  # a replaced run keeps its place
    check()
    store.close()


def test_readers_in_other_threads_survive_inserts(tmp_path) -> None:
    store = Store(tmp_path / "history.json")
    store.add_runs([run() for _ in range(300)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                store.query(RunQuery(search="haiku"))
                store.sessions_by_id()
                store.resolve_session_id("sess")
        except BaseException as exc:  # e.g. "dictionary changed size during iteration"
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    for _ in range(200):
        store.add_run(run())
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors
    assert store.count() == 500
    store.close()
