"""Nothing lost when the team database is away: PostgreSQL stopped (``pg_ctl stop -m
immediate``) in the middle of a ``--batch`` session, the session ends normally with a warning,
its runs wait in the local spool, and after a restart ``store sync`` (or any command opening the
store) sends every one of them, exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from support.ollama_server import FakeModel
from support.pg_server import wait_until
from support.store_helpers import run

from llmbench_tui.store import open_store

ROOT = Path(__file__).resolve().parents[2]
RUNS = 30


def count(url: str) -> int:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute("SELECT count(*) FROM runs").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return -1


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "llmbench_tui.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_session_outlives_the_database_and_sync_sends_every_run(
    ollama_server, pg_server, pg_url: str, tmp_path: Path
) -> None:
    ollama_server.add_model(FakeModel(name="slow-fake:1m", token_delay_s=0.01))
    data = str(tmp_path / "data")
    open_store(pg_url, data).close()  # the schema exists before the session starts
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    batch = subprocess.Popen(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m",
         f"ollama:slow-fake:1m@{ollama_server.url}", "-n", str(RUNS), "--warmup", "0",
         "--store", pg_url, "--data-dir", data],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_until(lambda: count(pg_url) >= 3, timeout=120)
        pg_server.stop("immediate")  # in the middle of the session
        before = time.monotonic()
        _out, err = batch.communicate(timeout=300)
    finally:
        if batch.poll() is None:
            batch.kill()
        pg_server.start()
    assert batch.returncode == 0, err
    assert time.monotonic() - before < 120
    assert "cannot reach PostgreSQL at" in err and "kept in the local spool" in err, err
    assert "Traceback" not in err
    stored = count(pg_url)
    assert 3 <= stored < RUNS  # some runs went to the database, the rest to the spool
    synced = cli("store", "sync", "--store", pg_url, "--data-dir", data)
    assert synced.returncode == 0, synced.stderr
    assert f"sent {RUNS - stored} spooled runs" in synced.stdout and "0 still waiting" in \
        synced.stdout  # fmt: skip
    assert count(pg_url) == RUNS
    with psycopg.connect(pg_url, autocommit=True) as conn:
        distinct = conn.execute("SELECT count(DISTINCT id) FROM runs").fetchone()
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()
    assert distinct == (RUNS,) and sessions == (1,)
    again = cli("store", "sync", "--store", pg_url, "--data-dir", data)
    assert "sent 0 spooled runs" in again.stdout  # nothing sent twice


def test_the_next_command_sends_the_spool(pg_server, pg_url: str, tmp_path: Path) -> None:
    """Writes while the server is down go to the spool; `history` after the restart sends them."""
    data = tmp_path / "data"
    store = open_store(pg_url, data)
    store.add_run(run(model="before"))
    pg_server.stop("immediate")
    try:
        spooled = [run(model=f"while-away-{i}") for i in range(5)]
        for record in spooled:
            store.add_run(record, {"gpu_util": [[0.0, 1.0]]})  # no exception: spooled
        assert store.spooled == 5
        store.close()  # tries to send; the database is still away: the spool stays
    finally:
        pg_server.start()
    assert count(pg_url) == 1
    done = cli("history", "--store", pg_url, "--data-dir", str(data), "--json")
    assert done.returncode == 0, done.stderr
    assert "sent 5 run(s) spooled" in done.stderr
    assert count(pg_url) == 6
    back = open_store(pg_url, data)
    try:
        for record in spooled:
            assert back.get_run(record["id"]) == record
            assert back.series(record["id"]) == {"gpu_util": [[0.0, 1.0]]}
    finally:
        back.close()


def test_kill_9_while_spooling_loses_at_most_the_run_in_flight(
    ollama_server, pg_server, pg_url: str, tmp_path: Path
) -> None:
    """A `--batch` killed (SIGKILL) while the database is away: every run it reported finished
    (the progress line comes after the store write) is in the spool and reaches the database."""
    import signal

    ollama_server.add_model(FakeModel(name="slow-fake:1m", token_delay_s=0.01))
    data = str(tmp_path / "data")
    open_store(pg_url, data).close()
    pg_server.stop("immediate")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    batch = subprocess.Popen(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m",
         f"ollama:slow-fake:1m@{ollama_server.url}", "-n", "200", "--warmup", "0",
         "--store", pg_url, "--data-dir", data],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    finished = 0
    try:
        assert batch.stderr is not None
        for line in batch.stderr:  # progress lines go to stderr when it is not a terminal
            if line.startswith("[") and "/200]" in line:
                finished += 1
                if finished == 5:
                    batch.send_signal(signal.SIGKILL)
                    break
        batch.wait(30)
    finally:
        if batch.poll() is None:
            batch.kill()
        pg_server.start()
    assert finished == 5
    synced = cli("store", "sync", "--store", pg_url, "--data-dir", data)
    assert synced.returncode == 0, synced.stderr
    assert count(pg_url) >= finished  # the run in flight may or may not have made it
