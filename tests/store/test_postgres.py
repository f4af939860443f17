"""The team store on a real PostgreSQL (``pg_server``): the same answers as the local store,
schema versions, clear connection errors, many writers, ``store copy`` both ways.

Every database here is a fresh one on a server the tests started themselves (``pg_server.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from support.seed_history import make_runs
from support.store_helpers import run

from llmbench_tui.store import RunQuery, Store, StoreError, open_store
from llmbench_tui.store.pg_schema import PG_SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:  # fmt: skip
    full = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "llmbench_tui.cli", *args], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=timeout)  # fmt: skip


def seeded_pair(pg_url: str, tmp_path: Path, n: int = 300) -> tuple[Store, object, list[dict]]:
    local = Store(tmp_path / "local" / "history.json")
    team = open_store(pg_url, tmp_path / "data")
    pairs = make_runs(n)
    sessions = {rec["session_id"]: {"id": rec["session_id"], "started_at": rec["started_at"]}
                for rec, _ in pairs}  # fmt: skip
    for store in (local, team):
        store.add_sessions(sessions.values())
        store.add_runs([rec for rec, _ in pairs], {rec["id"]: s for rec, s in pairs if s})
    return local, team, [rec for rec, _ in pairs]


QUERIES = [
    RunQuery(),
    RunQuery(limit=25),
    RunQuery(limit=25, offset=50),
    RunQuery(sort="started_at", limit=40),
    RunQuery(sort="-timings.decode_tok_s", limit=30),
    RunQuery(sort="timings.ttft_s"),
    RunQuery(model="QWEN"),
    RunQuery(backend="openai", status="ok"),
    RunQuery(host="gpu-box"),
    RunQuery(search="the", sort="id"),
    RunQuery(since="2025-03-10", until="2025-03-20", sort="started_at"),
    RunQuery(status="error"),
]


def ids(runs: list[dict]) -> list[str]:
    return [r["id"] for r in runs]


def test_the_database_answers_every_query_as_the_local_store(pg_url: str, tmp_path: Path) -> None:
    local, team, records = seeded_pair(pg_url, tmp_path)
    try:
        for q in QUERIES:
            want = local.query(q)
            got = team.query(q)
            if q.sort.lstrip("-") in ("started_at", "id"):
                assert ids(got) == ids(want), q  # a total order: the very same list
            else:  # ties may come in either order; the sort values are the same
                assert sorted(ids(got)) == sorted(ids(want)) or q.limit, q
                assert len(got) == len(want), q
            assert team.count(q) == local.count(q), q
        # every record (and series) reads back equal to what was written
        for record in records[:50]:
            assert team.get_run(record["id"]) == local.get_run(record["id"]) == record
            assert team.series(record["id"]) == local.series(record["id"])
        some = records[7]["id"]
        assert team.get_run(some[:-2]) == record_of(records, some)
        assert team.resolve_session_id(records[0]["session_id"][:8]) == records[0]["session_id"]
        assert sorted(s["id"] for s in team.sessions()) == sorted(s["id"] for s in local.sessions())
    finally:
        local.close()
        team.close()


def record_of(records: list[dict], rid: str) -> dict:
    return next(r for r in records if r["id"] == rid)


def test_filtering_and_paging_happen_in_the_database(pg_url: str, tmp_path: Path) -> None:
    """The history's page is an index scan in SQL, not a load of every run into Python."""
    local, team, _ = seeded_pair(pg_url, tmp_path, n=200)
    local.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        sql = "EXPLAIN SELECT doc FROM runs ORDER BY started_at DESC NULLS LAST, id LIMIT 101"
        plan = "\n".join(row[0] for row in conn.execute(sql))
    assert "runs_started" in plan
    page = team.query(RunQuery(limit=10, offset=20))
    assert len(page) == 10
    team.close()


def test_odd_text_reads_back_exactly(pg_url: str, tmp_path: Path) -> None:
    """NUL (which JSONB cannot hold), escapes, bidi marks and a big float all read back equal."""
    team = open_store(pg_url, tmp_path / "data")
    record = run(response="a\0b \x1b[31m \u202e </script>", model="m\0del",
                 timings={"decode_tok_s": 1e-300})  # fmt: skip
    team.add_run(record, {"gpu_util": [[0.0, 1.5]], "note": "x\0y"})
    assert team.get_run(record["id"]) == record
    assert team.series(record["id"]) == {"gpu_util": [[0.0, 1.5]], "note": "x\0y"}
    assert ids(team.query(RunQuery(search="\x1b[31m"))) == [record["id"]]
    with pytest.raises(StoreError, match="already stored"):
        team.add_run(record)
    team.close()


def test_quality_updates_deletes_and_pruning(pg_url: str, tmp_path: Path) -> None:
    team = open_store(pg_url, tmp_path / "data")
    old = run(started_at="2020-01-01T00:00:00+00:00")
    new = run(started_at=datetime.now(UTC).isoformat())
    team.add_runs([old, new], {old["id"]: {"s": [1]}, new["id"]: {"s": [2]}})
    updated = team.update_quality(new["id"], {"score": 8.5})
    assert updated["quality"] == {"score": 8.5}
    team.update_quality(new["id"], {"score": 6.0})
    again = team.get_run(new["id"])
    assert again["quality"] == {"score": 6.0} and again["quality_history"] == [{"score": 8.5}]
    assert ids(team.query(RunQuery(min_score=5))) == [new["id"]]
    assert team.prune_series(365) == 1 and team.series(old["id"]) is None
    assert team.delete([old["id"], "nope"]) == 1 and team.count() == 1
    with pytest.raises(StoreError, match="no run with id"):
        team.update_quality("nope", None)
    team.close()


def test_a_newer_schema_is_refused_with_a_sentence(pg_url: str, tmp_path: Path) -> None:
    open_store(pg_url, tmp_path / "data").close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (PG_SCHEMA,)
        conn.execute("UPDATE schema_version SET version = %s", (PG_SCHEMA + 1,))
    done = cli("history", "--store", pg_url, "--data-dir", str(tmp_path / "data"))
    assert done.returncode != 0
    assert f"has store schema {PG_SCHEMA + 1}, written by a newer llmbench" in done.stderr
    assert "Traceback" not in done.stderr


def test_connection_failures_are_one_sentence_without_the_password(
    pg_server, pg_url: str, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    database = pg_url.rsplit("/", 1)[1]
    cases = {
        pg_server.url(database, "secret", "wrong-password"): "refused the login: wrong user or "
                                                             "password",
        pg_server.url("no_such_db", "secret", "right-password"): "has no such database",
        f"postgresql://secret:right-password@127.0.0.1:{free_port()}/x": "connection refused",
    }  # fmt: skip
    for url, sentence in cases.items():
        done = cli("history", "--store", url, "--data-dir", data)
        assert done.returncode != 0, url
        assert sentence in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert "password@" not in done.stderr and "wrong-password" not in done.stderr
        assert "postgresql://secret@127.0.0.1:" in done.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:  # PostgreSQL 15: public is not
        conn.execute("GRANT ALL ON SCHEMA public TO secret")  # writable by every user
    good = cli("history", "--store", pg_server.url(database, "secret", "right-password"),
               "--data-dir", data)  # fmt: skip
    assert good.returncode == 0, good.stderr


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_store_comes_from_flag_environment_or_config(pg_url: str, tmp_path: Path) -> None:
    team = open_store(pg_url, tmp_path / "data")
    team.add_run(run(model="in-the-database"))
    team.close()
    data = str(tmp_path / "data")
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text(f'store = "{pg_url}"\n')
    for env in ({"LLMBENCH_STORE": pg_url}, {"LLMBENCH_CONFIG_DIR": str(config)}):
        done = cli("history", "--data-dir", data, "--json", env=env)
        assert "in-the-database" in done.stdout, (env, done.stderr)
    local = cli("history", "--data-dir", data, "--store", str(tmp_path / "elsewhere"),
                env={"LLMBENCH_STORE": pg_url})  # fmt: skip
    assert "no runs stored yet in" in local.stdout and "elsewhere" in local.stdout


# -- many writers ---------------------------------------------------------------------------


def test_two_hosts_write_at_once_and_history_separates_them(ollama_server, pg_url: str,
                                                            tmp_path: Path) -> None:  # fmt: skip
    """Two `--batch` processes on two host names (their own UTS namespaces) into one database
    at the same time: every run stored once, each under its machine."""
    if os.geteuid() != 0:  # unshare --uts needs CAP_SYS_ADMIN; CI and this box run as root
        pytest.skip("needs root for unshare --uts")
    procs = []
    for host in ("bench-alpha", "bench-beta"):
        script = (f"hostname {host} && exec {sys.executable} -m llmbench_tui.cli --batch "
                  f"-m ollama:smollm-fake:135m@{ollama_server.url} -n 12 --warmup 0 "
                  f"--store {pg_url} --data-dir {tmp_path / host}")  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        argv = ["unshare", "--uts", "sh", "-c", script]
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    team = open_store(pg_url, tmp_path / "data")
    try:
        runs = team.query()
        assert len(runs) == len({r["id"] for r in runs}) == 24
        machines = {block["hostname"]: count for block, count in team.machines()}
        assert machines == {"bench-alpha": 12, "bench-beta": 12}
    finally:
        team.close()
    for host in ("bench-alpha", "bench-beta"):
        done = cli("history", "--store", pg_url, "--machine", host, "--json",
                   "--data-dir", str(tmp_path / "data"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        import json

        listed = json.loads(done.stdout)
        assert len(listed) == 12 and {r["machine"]["hostname"] for r in listed} == {host}


# -- store copy -----------------------------------------------------------------------------


def test_store_copy_both_ways_keeps_every_record(pg_url: str, tmp_path: Path) -> None:
    local, _team, _records = seeded_pair(pg_url, tmp_path / "seed", n=10)
    _team.close()  # (seeded_pair also filled the database: use a fresh one below)
    extra = [rec for rec, _ in make_runs(450, seed=11)]
    series = {rec["id"]: {"gpu_util": [[0.0, float(i)]]} for i, rec in enumerate(extra)}
    local.add_runs(extra, series)
    local.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("TRUNCATE runs, sessions, series")
    src = str(tmp_path / "seed" / "local")
    data = str(tmp_path / "data")
    missing = cli("store", "copy", str(tmp_path / "missing"), pg_url, "--data-dir", data)
    assert missing.returncode == 1 and "no store at" in missing.stderr
    assert not (tmp_path / "missing").exists()  # a typo creates nothing
    first = cli("store", "copy", src, pg_url, "--data-dir", data)
    assert first.returncode == 0, first.stderr
    assert "460 runs added, 0 already there" in first.stdout
    assert "copied 460/460 runs" in first.stderr  # not a terminal: progress lines
    again = cli("store", "copy", src, pg_url, "--data-dir", data)
    assert "0 runs added, 460 already there" in again.stdout  # idempotent
    back = tmp_path / "back" / "history.json"
    home = cli("store", "copy", pg_url, str(back), "--data-dir", data)
    assert home.returncode == 0, home.stderr
    assert "460 runs added" in home.stdout
    source, team, copy = Store(Path(src) / "history.json"), open_store(pg_url, data), Store(back)
    try:
        assert source.count() == team.count() == copy.count() == 460
        for store in (team, copy):
            for record in source.query():
                assert store.get_run(record["id"]) == record
            assert store.series_many(ids(source.query())) == source.series_many(
                ids(source.query()))
        assert sorted(map(str, team.sessions())) == sorted(map(str, source.sessions()))
    finally:
        for store in (source, team, copy):
            store.close()


def test_an_older_schema_is_upgraded_in_place(pg_url: str, tmp_path: Path) -> None:
    """A database at schema 1 (before the run counter) with runs in it: the program upgrades
    it on open and the count stays exact, through inserts and deletes."""
    from llmbench_tui.store.pg_schema import MIGRATIONS

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
        for i in range(3):
            conn.execute("INSERT INTO runs (id, doc) VALUES (%s, %s::jsonb)",
                         (f"old{i}", f'{{"id": "old{i}"}}'))  # fmt: skip
    team = open_store(pg_url, tmp_path / "data")
    try:
        assert team.count() == 3
        team.add_runs([run(), run()])
        assert team.count() == 5 == len(team.query())
        assert team.delete(["old0", "old1"]) == 2 and team.count() == 3
    finally:
        team.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(PG_SCHEMA,)]


def test_filter_choices_come_from_the_store(pg_url: str, tmp_path: Path) -> None:
    local, team, records = seeded_pair(pg_url, tmp_path, n=120)
    try:
        for field in ("model", "backend", "host", "status"):
            want = sorted({str(r[field]) for r in records if r.get(field)})
            assert team.distinct(field) == local.distinct(field) == want
        with pytest.raises(StoreError):
            team.distinct("prompt; DROP TABLE runs")
    finally:
        local.close()
        team.close()
