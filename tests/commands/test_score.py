"""Stored scores: ``Store.update_quality``, ``llmbench score`` re-scoring with a suite's current
checks (the old block kept in ``quality_history``), and ``history --min-score`` / sorting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.store_helpers import run as record

from llmbench_tui.store import RunQuery, Store, StoreError

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]


def cli(args, tmp_path):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([*LLMBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def with_score(score, **kw):
    rec = record(**kw)
    if score is not None:
        rec["quality"] = {"score": score, "checks": [], "scored_at": "2025-03-01T10:00:00.000Z"}
    return rec


def test_update_quality_keeps_the_previous_block(tmp_path):
    store = Store(tmp_path / "history.json")
    rec = with_score(4.0)
    store.add_run(rec)
    new = {"score": 8.0, "checks": [], "scored_at": "2025-03-02T10:00:00.000Z"}
    updated = store.update_quality(rec["id"], new)
    assert updated["quality"] == new
    assert updated["quality_history"] == [rec["quality"]]
    newer = dict(new, score=9.0, scored_at="2025-03-03T10:00:00.000Z")
    store.update_quality(rec["id"], newer)
    store.close()
    # Durable, and visible to another process's store.
    again = Store(tmp_path / "history.json").get_run(rec["id"])
    assert again["quality"] == newer
    assert [q["scored_at"] for q in again["quality_history"]] == [
        "2025-03-01T10:00:00.000Z", "2025-03-02T10:00:00.000Z"]
    assert {k: v for k, v in again.items() if not k.startswith("quality")} == {
        k: v for k, v in rec.items() if not k.startswith("quality")}
    with pytest.raises(StoreError, match="no run with id 'nope'"):
        Store(tmp_path / "history.json").update_quality("nope", new)


def test_min_score_filter_and_sort(tmp_path):
    store = Store(tmp_path / "history.json")
    runs = [with_score(s) for s in (9.5, 3.0, None, 7.0, 0.0)]
    store.add_runs(runs)
    q = store.query(RunQuery(min_score=7, sort="-quality.score"))
    assert [r["quality"]["score"] for r in q] == [9.5, 7.0]
    assert store.count(RunQuery(min_score=0)) == 4  # unscored runs are left out
    ordered = store.query(RunQuery(sort="quality.score"))
    assert [(r.get("quality") or {}).get("score") for r in ordered] == [0.0, 3.0, 7.0, 9.5, None]
    store.close()


def test_history_cli_min_score_and_score_column(tmp_path):
    store = Store(tmp_path / "data" / "history.json")
    store.add_runs([with_score(s, model=f"m{i}") for i, s in enumerate((9.5, 3.0, None))])
    store.close()
    p = cli(["history", "--min-score", "5", "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert [r["model"] for r in json.loads(p.stdout)] == ["m0"]
    p = cli(["history", "--sort=-quality.score"], tmp_path)
    lines = p.stdout.splitlines()
    assert lines[0].split()[-1] == "score"
    assert [line.split()[-1] for line in lines[2:5]] == ["9.5", "3", "-"]
    p = cli(["export", "--format", "jsonl", "--min-score", "3"], tmp_path)
    assert len(p.stdout.splitlines()) == 2


SUITE = """\
models = ["embedded"]
[[prompts]]
id = "haiku"
text = "Write a haiku about the sea."
[[prompts.checks]]
kind = "contains"
text = "{word}"
"""


def test_llmbench_score_rescores_with_the_current_checks(tmp_path):
    store = Store(tmp_path / "data" / "history.json")
    mine = [with_score(0.0, session_id="sess-1", response="Waves fold on the sand",
                       repetition=i) for i in range(2)]
    other = with_score(5.0, session_id="sess-1", prompt_id="gone")
    failed = with_score(None, session_id="sess-1", status="error", response="Waves")
    elsewhere = with_score(1.0, session_id="sess-2")
    store.add_runs([*mine, other, failed, elsewhere])
    store.close()
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(word="sand"))
    p = cli(["score", "sess-1", "--suite", str(suite)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        f"{r['id'][:8]} qwen2.5:7b haiku rep {i + 1}: 0 -> 10" for i, r in enumerate(mine)]
    assert "1 run of prompt 'gone' left alone: no such prompt with checks in the suite" in p.stderr
    assert "1 run left alone: not ok (error, timeout or cancelled)" in p.stderr
    assert "re-scored 2 of 4 runs" in p.stderr
    store = Store(tmp_path / "data" / "history.json")
    first = store.get_run(mine[0]["id"])
    assert first["quality"]["score"] == 10.0
    assert first["quality"]["checks"] == [{"name": "contains:sand", "kind": "contains",
                                           "passed": True, "score": 1.0,
                                           "detail": "'sand' found at line 1",
                                           "weight": 1.0}]
    assert first["quality_history"] == [mine[0]["quality"]]
    assert store.get_run(other["id"])["quality"] == other["quality"]  # left alone
    assert "quality_history" not in store.get_run(elsewhere["id"])
    store.close()
    # The checks change; one run re-scored by its id prefix: the history grows.
    suite.write_text(SUITE.format(word="moon"))
    p = cli(["score", mine[0]["id"][:12], "--suite", str(suite), "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    (out,) = json.loads(p.stdout)
    assert out["id"] == mine[0]["id"] and out["quality"]["score"] == 0.0
    again = Store(tmp_path / "data" / "history.json").get_run(mine[0]["id"])
    assert [q["score"] for q in again["quality_history"]] == [0.0, 10.0]
    assert again["quality"]["checks"][0]["detail"] == "'moon' not found"
    # `llmbench show` lists the checks and the earlier scores.
    s = cli(["show", mine[0]["id"]], tmp_path)
    assert "  FAIL    0.00  contains:moon (contains): 'moon' not found" in s.stdout
    assert "  earlier: 0/10 scored 2025-03-01T10:00:00.000Z" in s.stdout


def test_llmbench_score_errors(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(word="sand").replace('kind = "contains"', 'kind = "contain"'))
    p = cli(["score", "x", "--suite", str(suite)], tmp_path)
    assert p.returncode == 2 and f"{suite}:6: field 'prompts.0.checks.0.kind'" in p.stderr
    suite.write_text(SUITE.format(word="sand"))
    Store(tmp_path / "data" / "history.json").close()
    p = cli(["score", "nothing", "--suite", str(suite)], tmp_path)
    assert p.returncode == 1
    assert "'nothing' is neither a run id nor a session id" in p.stderr
