"""Evidence for R-STORE-2: killed writers and concurrent writers lose no acknowledged run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from llmbench_tui.store import Store

# The child inserts runs forever (or ``count`` of them) and prints each id only after
# add_run() returned, i.e. once the store says the run is durable.
WRITER = textwrap.dedent(
    """
    import sys, uuid
    sys.path.insert(0, {tests!r})
    from store_helpers import run
    from llmbench_tui.store import Store
    store = Store(sys.argv[1])
    count, series_every = int(sys.argv[2]), int(sys.argv[3])
    print("ready", flush=True)
    i = 0
    while count < 0 or i < count:
        rec = run(id=uuid.uuid4().hex, response="word " * 200, session_id=f"s{{i % 3}}")
        series = {{"arrivals_s": [j / 100 for j in range(300)]}}
        store.add_run(rec, series if i % series_every == 0 else None)
        print(rec["id"], flush=True)
        i += 1
    """
).format(tests=str(Path(__file__).parent))


def _writer(path: Path, count: int, series_every: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(count), str(series_every)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_during_inserts_never_loses_an_acknowledged_run(tmp_path):
    path = tmp_path / "history.json"
    store = Store(path)
    seed = [{"id": f"seed{i:028d}", "started_at": "2025-01-01T00:00:00Z", "response": "x" * 2000}
            for i in range(1500)]  # fmt: skip
    store.add_runs(seed)  # a few MB, so that a write takes long enough to be hit
    store.close()
    rng = random.Random(4)
    acked: set[str] = set()
    kills = mid_write = 0
    while kills < 20 or (mid_write < 3 and kills < 60):
        child = _writer(path, -1)
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
        mid_write += bool(list(tmp_path.glob(".history.json.*.tmp")))
        reopened = Store(path)  # always opens: never a half-written file
        stored = {r["id"] for r in reopened.query()}
        assert acked <= stored, f"lost {len(acked - stored)} acknowledged runs after kill {kills}"
        assert all(reopened.series(a) for a in list(acked)[-5:])
        reopened.close()
    assert mid_write >= 1, "no kill landed inside a write; the test proved nothing"
    assert not list(tmp_path.glob(".history.json.*.tmp")), "stale temp files were not swept"


def test_three_writers_at_once_lose_nothing(tmp_path):
    path = tmp_path / "history.json"
    Store(path).close()
    # Series on every 10th run only: each series costs a second fsynced file, and this test is
    # about the runs table (the kill test above covers series on every insert).
    writers = [_writer(path, 200, series_every=10) for _ in range(3)]
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
