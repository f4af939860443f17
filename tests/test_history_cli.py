"""The history commands as a user runs them: history, show, export, import, compare, delete,
doctor (in-process through each command's parser, plus one real `llmbench` process)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import orjson
import pytest
from store_helpers import run

from llmbench_tui.commands import compare, delete, doctor, export, history, import_, show
from llmbench_tui.store import Store


def cli(module, argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = module.main(module.build_parser("llmbench x").parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path):
    store = Store(tmp_path / "history.json")
    runs = []
    speeds = [("qwen", 50.0), ("qwen", 51.0), ("qwen", 49.0)]
    speeds += [("llama", 30.0), ("llama", 31.0), ("llama", 29.5)]
    for i, (model, tok) in enumerate(speeds):
        rec = run(
            id=f"{model}{i:02d}" + "0" * 20,
            model=model,
            session_id=f"sess-{model}",
            started_at=f"2025-03-0{i + 1}T10:00:00+00:00",
            timings={"decode_tok_s": tok, "ttft_s": 0.1 + i / 100},
            response="\x1b[2J\x1b]0;pwned\x07 hello" if i == 0 else "plain answer",
        )
        store.add_run(rec, {"arrivals_s": [0.1, 0.2, 0.3]})
        runs.append(rec)
    store.close()
    return tmp_path, runs


def test_history_table_filters_and_json(data, capsys):
    d, runs = data
    code, out, _ = cli(history, ["--data-dir", str(d)], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["time", "id", "model"]
    assert lines[2].split()[2:4] == [runs[5]["id"][:8], "llama"]  # newest first
    assert len(lines) == 2 + 6
    code, out, _ = cli(history, ["--data-dir", str(d), "--model", "QWEN", "--json"], capsys)
    assert [r["model"] for r in json.loads(out)] == ["qwen"] * 3
    code, out, _ = cli(
        history, ["--data-dir", str(d), "--sort=-timings.decode_tok_s", "--limit", "2"], capsys
    )
    assert [line.split()[2] for line in out.splitlines()[2:4]] == [
        runs[1]["id"][:8],
        runs[0]["id"][:8],
    ]
    assert "2 runs shown (6 stored)" in out
    code, out, _ = cli(history, ["--data-dir", str(d), "--search", "HELLO"], capsys)
    assert "\x1b" not in out and runs[0]["id"][:8] in out and len(out.splitlines()) == 4
    code, _, err = cli(history, ["--data-dir", str(d), "--since", "soon"], capsys)
    assert code == 1 and "not a date" in err and "Traceback" not in err


def test_show_prefix_and_hostile_output(data, capsys):
    d, runs = data
    code, out, _ = cli(show, ["qwen00", "--data-dir", str(d)], capsys)
    assert code == 0 and runs[0]["id"] in out
    assert "\x1b" not in out and "\\x1b[2J" in out and "\x07" not in out
    assert "decode_tok_s: 50" in out and "series stored: arrivals_s (3)" in out
    code, out, _ = cli(show, ["qwen00", "--json", "--data-dir", str(d)], capsys)
    assert json.loads(out)["series"] == {"arrivals_s": [0.1, 0.2, 0.3]}
    code, _, err = cli(show, ["qwen0", "--data-dir", str(d)], capsys)
    assert code == 1 and "matches 3 runs" in err


def test_export_then_import_twice(data, capsys, tmp_path_factory):
    d, runs = data
    out_dir = tmp_path_factory.mktemp("exports")
    for fmt in ("json", "jsonl", "csv", "md"):
        path = out_dir / f"runs.{fmt}"
        code, out, _ = cli(
            export, ["--format", fmt, "--out", str(path), "--data-dir", str(d), "--model", "llama"],
            capsys,
        )  # fmt: skip
        assert code == 0 and "exported 3 runs" in out and path.stat().st_size > 0
    other = tmp_path_factory.mktemp("other")
    code, out, _ = cli(import_, [str(out_dir / "runs.jsonl"), "--data-dir", str(other)], capsys)
    assert (code, out.strip()) == (0, "added 3, skipped 0 already present")
    code, out, _ = cli(import_, [str(out_dir / "runs.json"), "--data-dir", str(other)], capsys)
    assert out.strip() == "added 0, skipped 3 already present"
    code, out, _ = cli(import_, [str(d / "history.json"), "--data-dir", str(other)], capsys)
    assert out.strip() == "added 3, skipped 3 already present"
    code, out, _ = cli(import_, [str(d / "history.json"), "--data-dir", str(other)], capsys)
    assert out.strip() == "added 0, skipped 6 already present"
    assert Store(other / "history.json").series(runs[0]["id"]) == {"arrivals_s": [0.1, 0.2, 0.3]}
    code, _, err = cli(import_, [str(out_dir / "runs.md"), "--data-dir", str(other)], capsys)
    assert code == 1 and "runs.md" in err


def test_compare_sessions_models_and_runs(data, capsys):
    d, _ = data
    code, out, _ = cli(compare, ["model:qwen", "model:llama", "--data-dir", str(d)], capsys)
    assert code == 0 and "A = model qwen (3 runs)" in out
    row = next(line for line in out.splitlines() if "timings.decode_tok_s" in line)
    assert "-39.7%" in row and "worse (p=" in row
    code, out, _ = cli(compare, ["sess-qwen", "sess-llama", "--json", "--data-dir", str(d)], capsys)
    rows = {(r["group"], r["figure"]): r for r in json.loads(out)}
    assert rows[("qwen / haiku", "timings.decode_tok_s")]["n_a"] == 3
    assert rows[("llama / haiku", "timings.decode_tok_s")]["n_b"] == 3
    code, out, _ = cli(compare, ["qwen00", "qwen01", "--data-dir", str(d)], capsys)
    assert "n<2, can't tell" in out
    code, _, err = cli(compare, ["nothing", "qwen01", "--data-dir", str(d)], capsys)
    assert code == 1 and "neither a run id, a session id nor model:NAME" in err


def test_delete_asks_first(data, capsys, monkeypatch):
    d, _ = data
    code, out, _ = cli(delete, ["qwen00", "--data-dir", str(d)], capsys, "n\n", monkeypatch)
    assert code == 1 and "nothing deleted" in out and Store(d / "history.json").count() == 6
    code, out, _ = cli(
        delete, ["qwen00", "llama05", "--data-dir", str(d)], capsys, "y\n", monkeypatch
    )
    assert code == 0 and "deleted 2 runs" in out and Store(d / "history.json").count() == 4
    code, out, _ = cli(delete, ["qwen01", "--yes", "--data-dir", str(d)], capsys)
    assert "deleted 1 runs" in out and Store(d / "history.json").count() == 3


def test_doctor_salvages_a_truncated_file(data, capsys):
    d, runs = data
    path = d / "history.json"
    good = path.read_bytes()
    cut = good[: good.index(runs[4]["id"].encode(), good.index(b'"runs"')) + 40]  # inside run 5
    path.write_bytes(cut)
    code, _, err = cli(history, ["--data-dir", str(d)], capsys)
    assert code == 1 and "doctor --data-dir" in err
    code, out, _ = cli(doctor, ["--data-dir", str(d)], capsys)
    assert code == 0 and "recovered 4 runs" in out and "healthy: 4 runs" in out
    kept = [p for p in d.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == cut
    assert {r["id"] for r in Store(path).query()} == {r["id"] for r in runs[:4]}
    code, out, _ = cli(doctor, ["--data-dir", str(d), "--prune-series", "0"], capsys)
    assert "dropped 6 telemetry series" in out and Store(path).count() == 4


def test_real_llmbench_process_dispatches(data):
    d, _ = data
    env = dict(os.environ, NO_COLOR="1")
    done = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "history", "--data-dir", str(d), "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(orjson.loads(done.stdout)) == 6
