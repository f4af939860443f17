"""The store's write-ahead journal: torn lines, damage, idempotent replay, compaction, and
processes reading each other's appends."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from support.paths import TESTS
from support.store_helpers import run
from tinydb import TinyDB

from llmbench_tui.commands import doctor
from llmbench_tui.store import Store, StoreError
from llmbench_tui.store import journal as storage
from llmbench_tui.store.journal import base_seq, encode_entry, scan_journal


@pytest.fixture
def path(tmp_path):
    return tmp_path / "history.json"


def journal(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def ids(store: Store) -> list[str]:
    return [r["id"] for r in store.query()]


@pytest.mark.parametrize(
    "torn",
    [
        b'4a5b6c7d {"seq": 4, "ops": [["runs", "x", {"id": "x", "started',  # no newline
        encode_entry(4, [["runs", "y", {"id": "y"}]])[:-30] + b"\n",  # bad checksum
        b"\0" * 300,  # blocks allocated, never written
    ],
    ids=["unterminated", "bad-checksum", "zeros"],
)
def test_torn_last_line_is_ignored_then_cut_by_the_next_writer(path, torn):
    store = Store(path)
    runs = [run() for _ in range(3)]
    for r in runs:
        store.add_run(r)
    good = journal(path).read_bytes()
    with journal(path).open("ab") as handle:
        handle.write(torn)
    reader = Store(path)
    assert sorted(ids(reader)) == sorted(r["id"] for r in runs)  # the torn append is not a run
    late = run()
    reader.add_run(late)  # under the lock: cuts the torn bytes, then appends
    data = journal(path).read_bytes()
    assert data.startswith(good) and torn not in data
    assert [seq for seq, _ in scan_journal(data).entries] == [1, 2, 3, 4]
    assert len(scan_journal(data).entries) == data.count(b"\n")  # nothing else left
    assert late["id"] in ids(store)  # the first store reads just the new tail
    store.close()
    reader.close()
    assert sorted(ids(Store(path))) == sorted(r["id"] for r in [*runs, late])


def test_damaged_middle_line_is_refused_and_doctor_salvages_the_rest(path, capsys):
    store = Store(path)
    runs = [run() for _ in range(4)]
    for r in runs:
        store.add_run(r, {"arrivals_s": [0.5]})
    store._storage.close()  # drop the cache: the damage below must be read from disk
    lines = journal(path).read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"ok"', b'"OK"')  # bit rot inside entry 2
    bad = b"".join(lines)
    journal(path).write_bytes(bad)
    with pytest.raises(StoreError) as err:
        Store(path)
    message = str(err.value)
    assert "history.json.journal is damaged" in message and "llmbench doctor" in message
    assert journal(path).read_bytes() == bad  # left untouched
    code = doctor.main(doctor.build_parser("llmbench doctor").parse_args(
        ["--data-dir", str(path.parent)]))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "salvaged 3 journal entries" in out and "healthy: 3 runs" in out
    kept = [p for p in path.parent.iterdir() if p.name.startswith("history.json.journal.corrupt")]
    assert len(kept) == 1 and kept[0].read_bytes() == bad
    fixed = Store(path)
    assert sorted(ids(fixed)) == sorted(r["id"] for r in runs if r is not runs[1])
    assert fixed.series(runs[3]["id"]) == {"arrivals_s": [0.5]}  # an entry after the damage
    assert not journal(path).exists()  # doctor's store folded the salvaged entries in


@pytest.mark.parametrize("compaction", ["close", "delete"])
def test_replay_is_idempotent_after_a_crash_between_replace_and_journal_removal(path, compaction):
    store = Store(path)
    runs = [run() for _ in range(5)]
    for r in runs:
        store.add_run(r, {"arrivals_s": [1.0]})
    store.add_session({"id": "sess-a", "started_at": "2025-03-01T10:00:00Z", "plan": {}})
    before = journal(path).read_bytes()
    if compaction == "close":
        store.close()
    else:
        assert store.delete([runs[0]["id"]]) == 1
        store.close()
    # The crash: history.json was replaced, the old journal was never removed.
    assert not journal(path).exists()
    journal(path).write_bytes(before)
    assert base_seq(orjson.loads(path.read_bytes())) == 6  # every journal entry is in the file
    kept = runs[1:] if compaction == "delete" else runs
    again = Store(path)
    assert sorted(ids(again)) == sorted(r["id"] for r in kept)  # no duplicate, no resurrection
    assert again.count() == len(kept) and len(again.sessions()) == 1
    gone = compaction == "delete"
    assert again.series(runs[0]["id"]) == (None if gone else {"arrivals_s": [1.0]})
    late = run()
    again.add_run(late)  # the next writer drops the stale journal and continues the sequence
    assert [seq for seq, _ in scan_journal(journal(path).read_bytes()).entries] == [7]
    again.close()
    with TinyDB(str(path)) as db:  # stock TinyDB sees the folded-in result
        assert len(db.table("runs")) == len(kept) + 1


def test_inserts_fold_in_at_the_journal_limit(path, monkeypatch):
    monkeypatch.setattr(storage, "JOURNAL_MAX_ENTRIES", 4)
    store = Store(path)
    runs = [run(session_id=f"s{i % 2}") for i in range(10)]
    for i, r in enumerate(runs):
        store.add_run(r, {"arrivals_s": [float(i)]})
        assert store._storage.journal_entries <= 4
    folded = orjson.loads(path.read_bytes())
    # Inserts 1-4 and 6-9 were journaled (seq 1-8); the 5th and the 10th found the journal
    # full and folded it in together with themselves.
    assert base_seq(folded) == 8 and len(folded["runs"]) == 10
    assert not journal(path).exists()
    assert [store.series(r["id"]) for r in runs] == [{"arrivals_s": [float(i)]} for i in range(10)]
    shards = {p.name for p in store.series_dir.iterdir()}
    assert shards == {"s0.json", "s1.json"}  # folded series went to their shards
    bulk = [run() for _ in range(9)]
    assert store.add_runs(bulk) == (9, 0)  # too many for one entry: straight into history.json
    assert len(orjson.loads(path.read_bytes())["runs"]) == 19 and not journal(path).exists()


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from support.store_helpers import run
    from llmbench_tui.store import Store
    store = Store(sys.argv[1])
    for line in sys.stdin:
        if line.strip() == "add":
            rec = run()
            store.add_run(rec, {{"arrivals_s": [0.25]}})
            print(rec["id"], flush=True)
        else:
            print(",".join(sorted(r["id"] for r in store.query())), flush=True)
    """
).format(tests=str(TESTS))


def test_two_processes_interleave_and_read_only_the_new_tail(path):
    mine = Store(path)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def ask(command: str) -> str:
        child.stdin.write(command + "\n")
        child.stdin.flush()
        return child.stdout.readline().strip()

    try:
        expected: set[str] = set()
        mine.count()
        reloads, replays = mine._storage.reloads, mine._storage.replays
        for _ in range(15):
            theirs = ask("add")
            expected.add(theirs)
            assert set(ids(mine)) == expected  # their append is visible here at once
            assert mine.series(theirs) == {"arrivals_s": [0.25]}
            ours = run()
            mine.add_run(ours)
            expected.add(ours["id"])
            assert set(ask("list").split(",")) == expected  # and ours there
        # Neither history.json was re-parsed nor the journal replayed from its start: each
        # read applied only the lines appended since the last one.
        assert mine._storage.reloads == reloads
        assert mine._storage.replays - replays <= 1  # the journal's first appearance
        assert len(scan_journal(journal(path).read_bytes()).entries) == 30
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    mine.close()
    assert len(orjson.loads(path.read_bytes())["runs"]) == 30


@pytest.mark.parametrize("cached", [True, False], ids=["warm-reader", "cold-reader"])
@pytest.mark.parametrize("then", ["append", "nothing"])
def test_a_reader_caught_between_compaction_steps_reads_again_under_the_lock(path, cached, then):
    """history.json and the journal are two files: a reader without the lock can read the old
    history.json and then the journal of the next one (or none). It must notice and re-read."""
    writer, reader = Store(path), Store(path)
    first = [run() for _ in range(3)]
    for r in first:
        writer.add_run(r)
    assert reader.count() == 3
    if not cached:
        reader._storage.close()  # forget everything, as a process that just started
    later = run()
    real = reader._storage._load_base
    calls = []

    def load_base_then_another_process_compacts():
        real()
        if not calls:  # history.json read; now it is replaced and the journal removed...
            calls.append(1)
            writer.close()
            if then == "append":
                other = Store(path)
                other.add_run(later)  # ...and a new journal started
                other._storage.close()

    reader._storage._load_base = load_base_then_another_process_compacts
    want = [*first, later] if then == "append" else first
    assert sorted(ids(reader)) == sorted(r["id"] for r in want)
    assert calls == [1]


def test_a_journal_without_its_database_is_reported_and_doctor_rebuilds(path, capsys):
    store = Store(path)
    store.add_run(run())
    store._storage.close()
    shutil.move(path, path.with_name("elsewhere.json"))
    with pytest.raises(StoreError, match="is missing but its journal"):
        Store(path)
    code = doctor.main(doctor.build_parser("llmbench doctor").parse_args(
        ["--data-dir", str(path.parent)]))  # fmt: skip
    assert code == 0 and "healthy: 1 runs" in capsys.readouterr().out
