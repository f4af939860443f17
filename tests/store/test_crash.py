"""Evidence that killed writers and concurrent writers lose no acknowledged run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
from support.paths import TESTS

from llmbench_tui.store import Store
from llmbench_tui.store.journal import base_seq, scan_journal

# The child inserts runs forever (or ``count`` of them) and prints each id only after
# add_run() returned, i.e. once the store says the run is durable. ``max_entries`` lowers the
# journal size at which an insert compacts, so that kills also land inside compactions.
WRITER = textwrap.dedent(
    """
    import sys, uuid
    sys.path.insert(0, {tests!r})
    from support.store_helpers import run
    from llmbench_tui.store import journal as storage
    from llmbench_tui.store import Store
    count, series_every, max_entries = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if max_entries:
        storage.JOURNAL_MAX_ENTRIES = max_entries
    store = Store(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while count < 0 or i < count:
        rec = run(id=uuid.uuid4().hex, response="word " * 200, session_id=f"s{{i % 3}}")
        series = {{"arrivals_s": [j / 100 for j in range(300)]}}
        store.add_run(rec, series if i % series_every == 0 else None)
        print(rec["id"], flush=True)
        i += 1
    """
).format(tests=str(TESTS))


def _writer(path: Path, count: int, series_every: int = 1, max_entries: int = 0):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(count), str(series_every), str(max_entries)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _on_disk(path: Path) -> tuple[int, list[int]]:
    """history.json's journal position and the seqs of the valid journal lines."""
    base = base_seq(orjson.loads(path.read_bytes()))
    journal = path.with_name(path.name + ".journal")
    data = journal.read_bytes() if journal.exists() else b""
    return base, [seq for seq, _ in scan_journal(data).entries]


def test_sigkill_during_inserts_never_loses_an_acknowledged_run(tmp_path):
    path = tmp_path / "history.json"
    store = Store(path)
    seed = [{"id": f"seed{i:028d}", "started_at": "2025-01-01T00:00:00Z", "response": "x" * 2000}
            for i in range(1500)]  # fmt: skip
    store.add_runs(seed)  # a few MB, so that a compaction takes long enough to be hit
    store.close()
    seeds = {r["id"] for r in seed}
    rng = random.Random(4)
    acked: set[str] = set()
    kills = mid_compaction = in_flight = stale_journal = 0
    while kills < 20 or ((mid_compaction < 2 or in_flight < 2) and kills < 60):
        child = _writer(path, -1, max_entries=4)  # a compaction every 4 inserts
        assert child.stdout.readline().strip() == "ready"
        # Let it acknowledge at least one insert, then kill it at a random moment.
        acked.add(child.stdout.readline().strip())
        time.sleep(rng.uniform(0.0, 0.08))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        # A line is only complete (newline-terminated) if print() finished before the kill.
        acked.update(line for line in out.splitlines(keepends=True) if line.endswith("\n"))
        acked = {a.strip() for a in acked if a.strip()}
        kills += 1
        temps = [*tmp_path.glob(".history.json.*.tmp"), *tmp_path.glob("history.series/.*.tmp")]
        mid_compaction += bool(temps)
        base, seqs = _on_disk(path)
        stale_journal += bool(seqs) and max(seqs) <= base  # killed after replace, before unlink
        if seqs:  # consecutive: no entry written twice, none skipped
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        reopened = Store(path)  # always opens: never a half-written file
        ids = [r["id"] for r in reopened.query()]
        stored = set(ids)
        assert len(ids) == len(stored) == reopened.count(), "a run appears twice after replay"
        assert acked <= stored, f"lost {len(acked - stored)} acknowledged runs after kill {kills}"
        # At most the one insert in flight at each kill is stored without its acknowledgement.
        unacked = stored - acked - seeds
        assert len(unacked) <= kills, "runs nobody inserted appeared"
        in_flight = len(unacked)  # kills that landed after an append, before its ack
        assert all(reopened.series(a) for a in list(acked)[-5:])
        reopened.close()  # folds the journal in: the next child starts from a clean journal
    assert mid_compaction >= 1, "no kill landed inside a compaction; the test proved nothing"
    assert in_flight >= 1, "no kill landed between an append and its acknowledgement"
    assert not list(tmp_path.glob(".history.json.*.tmp")), "stale temp files were not swept"
    assert not list(tmp_path.glob("history.series/.*.tmp")), "stale temp files were not swept"
    print(f"{kills} kills: {mid_compaction} mid-compaction, {in_flight} between append and ack, "
          f"{stale_journal} between replace and journal removal")  # fmt: skip


def test_three_writers_at_once_lose_nothing(tmp_path):
    path = tmp_path / "history.json"
    Store(path).close()
    # Series on every 10th run only (each series makes its journal line ~5x bigger); a small
    # journal, so that the writers also compact while the others append.
    writers = [_writer(path, 200, series_every=10, max_entries=32) for _ in range(3)]
    outputs = [w.communicate(timeout=240)[0] for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0]
    acked = [line for out in outputs for line in out.split()[1:]]
    assert len(acked) == 600 and len(set(acked)) == 600
    store = Store(path)
    ids = [r["id"] for r in store.query()]
    assert len(ids) == 600 and set(ids) == set(acked)
    with_series = [line for out in outputs for line in out.split()[1::10]]
    assert all(store.series(i) is not None for i in with_series)
    assert os.path.getsize(path) > 0
