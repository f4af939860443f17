"""The store: ids, queries, series, sessions, schema versions and damaged files."""

from __future__ import annotations

import orjson
import pytest
from support.store_helpers import run
from tinydb import TinyDB

from llmbench_tui.store import STORE_SCHEMA, RunQuery, Store, StoreError


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "history.json")
    yield s
    s.close()


def test_add_get_and_prefix(store):
    rec = run(id="abc123" + "0" * 26)
    other = run(id="abd456" + "0" * 26)
    store.add_run(rec, {"arrivals_s": [0.1, 0.2]})
    store.add_run(other)
    assert store.count() == 2
    assert store.get_run(rec["id"]) == rec
    assert store.get_run("abc")["id"] == rec["id"]
    with pytest.raises(StoreError, match="matches 2 runs"):
        store.get_run("ab")
    with pytest.raises(StoreError, match="no run with id 'zz'"):
        store.get_run("zz")
    with pytest.raises(StoreError, match="already stored"):
        store.add_run(rec)
    assert store.series(rec["id"]) == {"arrivals_s": [0.1, 0.2]}
    assert store.series(other["id"]) is None


def test_results_are_copies(store):
    rec = run()
    store.add_run(rec)
    got = store.get_run(rec["id"])
    got["timings"]["ttft_s"] = 99.0
    store.query()[0]["tokens"] = {"output": 7}  # top-level copies from query()
    assert store.get_run(rec["id"])["timings"]["ttft_s"] is None
    assert store.get_run(rec["id"])["tokens"]["output"] is None


def test_file_is_tinydb_keyed_by_run_id_with_series_apart(store, tmp_path):
    rec = run()
    store.add_run(rec, {"telemetry": {"cpu_pct": [1.0, 2.0]}})
    # Acknowledged = one journal line; history.json gets it when the journal is folded in
    # (here: on close), and only then do stock TinyDB and the series shard see it.
    assert rec["id"] in (tmp_path / "history.json.journal").read_text()
    assert rec["id"] not in (tmp_path / "history.json").read_text()
    assert store.series(rec["id"]) == {"telemetry": {"cpu_pct": [1.0, 2.0]}}
    store.close()
    assert not (tmp_path / "history.json.journal").exists()
    with TinyDB(str(tmp_path / "history.json")) as db:  # stock TinyDB reads our file
        assert db.table("_meta").get(doc_id=1) == {"schema": STORE_SCHEMA}
    raw = orjson.loads((tmp_path / "history.json").read_bytes())
    assert list(raw["runs"]) == [rec["id"]]
    assert "cpu_pct" not in (tmp_path / "history.json").read_text()
    shard = orjson.loads((tmp_path / "history.series" / "sess-a.json").read_bytes())
    assert shard["series"][rec["id"]]["telemetry"] == {"cpu_pct": [1.0, 2.0]}


def test_query_search_filters_sort_limit(store):
    a = run(
        started_at="2025-03-01T10:00:00+00:00", model="qwen2.5:7b", timings={"decode_tok_s": 50.0}
    )
    b = run(
        started_at="2025-03-02T10:00:00Z",
        model="llama3.1:8b",
        backend="openai",
        host="http://10.0.0.2:8080",
        response="The HARBOUR is calm",
        timings={"decode_tok_s": 70.0},
        tags=["nightly"],
    )
    c = run(
        started_at="2025-03-03T23:59:00+00:00",
        status="error",
        error="Model 'x' not found",
        response="",
        session_id="sess-b",
    )
    for r in (a, b, c):
        store.add_run(r)

    def ids(**kw):
        return [r["id"] for r in store.query(RunQuery(**kw))]

    assert ids() == [c["id"], b["id"], a["id"]]  # newest first
    assert ids(sort="started_at") == [a["id"], b["id"], c["id"]]
    assert ids(sort="-timings.decode_tok_s") == [b["id"], a["id"], c["id"]]  # missing last
    assert ids(sort="timings.decode_tok_s") == [a["id"], b["id"], c["id"]]
    assert ids(search="harbour") == [b["id"]]
    assert ids(search="NIGHTLY") == [b["id"]]
    assert ids(search="not FOUND") == [c["id"]]
    assert ids(search="LLAMA3") == [b["id"]]
    assert ids(search="sea.") == [c["id"], b["id"], a["id"]]  # prompt
    assert ids(model="QWEN") == [c["id"], a["id"]]
    assert ids(backend="openai") == [b["id"]]
    assert ids(host="10.0.0.2") == [b["id"]]
    assert ids(status="error") == [c["id"]]
    assert ids(session_id="sess-b") == [c["id"]]
    assert ids(since="2025-03-02") == [c["id"], b["id"]]
    assert ids(until="2025-03-02") == [b["id"], a["id"]]  # a whole day
    assert ids(until="2025-03-03") == [c["id"], b["id"], a["id"]]
    assert ids(since="2025-03-01T10:00:01", until="2025-03-03T12:00") == [b["id"]]
    assert ids(limit=1) == [c["id"]]
    with pytest.raises(StoreError, match="not a date"):
        store.query(RunQuery(since="last tuesday"))


def test_sessions_delete_and_prune(store):
    store.add_session({"id": "sess-a", "started_at": "2025-03-01T10:00:00Z", "plan": {}})
    store.add_session({"id": "sess-a", "started_at": "2025-03-01T10:00:00Z", "plan": {"n": 2}})
    assert store.get_session("sess-a")["plan"] == {"n": 2}
    assert store.get_session("nope") is None
    old = run(started_at="2020-01-01T00:00:00+00:00")
    new = run(started_at="2999-01-01T00:00:00+00:00")
    store.add_run(old, {"arrivals_s": [1.0]})
    store.add_run(new, {"arrivals_s": [2.0]})
    assert store.prune_series(30) == 1
    assert store.series(old["id"]) is None and store.series(new["id"]) == {"arrivals_s": [2.0]}
    assert store.count() == 2  # run records are never pruned
    assert store.delete([new["id"], "missing"]) == 1
    assert store.count() == 1 and store.series(new["id"]) is None
    assert not (store.series_dir / "sess-a.json").exists()  # empty shard removed


def test_second_store_sees_other_writers(tmp_path):
    one, two = Store(tmp_path / "h.json"), Store(tmp_path / "h.json")
    first = run()
    one.add_run(first)
    assert two.count() == 1
    second = run()
    two.add_run(second)  # must not drop the record written by `one`
    assert {r["id"] for r in one.query()} == {first["id"], second["id"]}


def _stock_v0(path):
    """A schema-0 database: stock TinyDB, integer ids, series embedded in the record."""
    rec = run()
    legacy = dict(rec, series={"arrivals_s": [0.5]})
    no_id = run()
    del no_id["id"]
    with TinyDB(str(path)) as db:
        db.table("runs").insert(legacy)
        db.table("runs").insert(no_id)
        db.table("sessions").insert({"id": "sess-a", "started_at": "2025-03-01T10:00:00Z"})
    return rec


def test_migrates_older_schema_keeping_a_copy(tmp_path):
    path = tmp_path / "history.json"
    rec = _stock_v0(path)
    before = path.read_bytes()
    store = Store(path)
    assert (tmp_path / "history.json.bak-v0").read_bytes() == before
    assert store.count() == 2
    assert store.get_run(rec["id"])["prompt"] == rec["prompt"]
    assert "series" not in store.get_run(rec["id"])
    assert store.series(rec["id"]) == {"arrivals_s": [0.5]}
    assert store.get_session("sess-a")["id"] == "sess-a"
    assert orjson.loads(path.read_bytes())["_meta"]["1"] == {"schema": STORE_SCHEMA}


def test_refuses_newer_schema(tmp_path):
    path = tmp_path / "history.json"
    path.write_bytes(orjson.dumps({"_meta": {"1": {"schema": STORE_SCHEMA + 1}}, "runs": {}}))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"newer llmbench \(schema 2\); upgrade llmbench"):
        Store(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-tables"])
def test_damaged_file_gives_clear_error_and_is_untouched(tmp_path, damage):
    path = tmp_path / "history.json"
    store = Store(path)
    for _ in range(5):
        store.add_run(run())
    store.close()
    good = path.read_bytes()
    bad = {
        "truncated": good[: len(good) // 2],
        "garbage": bytes(range(256)) * 10,
        "not-tables": b'{"runs": [1, 2, 3]}',
    }[damage]
    path.write_bytes(bad)
    with pytest.raises(StoreError) as err:
        Store(path)
    message = str(err.value)
    assert str(path) in message and "llmbench doctor --data-dir" in message
    assert "\n" not in message
    assert path.read_bytes() == bad


def test_damage_noticed_by_an_open_store(tmp_path):
    path = tmp_path / "history.json"
    store = Store(path)
    store.add_run(run())
    path.write_bytes(b'{"runs": {"x": ')
    with pytest.raises(StoreError, match="damaged"):
        store.add_run(run())
    assert path.read_bytes() == b'{"runs": {"x": '


def test_count_with_query_matches_query_length(tmp_path):
    import dataclasses

    from support.store_helpers import run

    store = Store(tmp_path / "history.json")
    for i in range(30):
        store.add_run(run(model="qwen" if i % 3 else "llama", status="ok"))
    assert store.count() == 30
    for q in (RunQuery(model="qwen"), RunQuery(model="llama", limit=2), RunQuery(search="zzz")):
        assert store.count(q) == len(store.query(dataclasses.replace(q, limit=None)))
    assert store.count(RunQuery(model="llama")) == 10
    store.close()
