"""The history commands as a user runs them: history, show, export, import, compare, delete,
doctor (in-process through each command's parser, plus one real `llmbench` process)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import orjson
import pytest
from support.store_helpers import run

from llmbench_tui.commands import compare, delete, doctor, export, history, import_, show
from llmbench_tui.formatting import local_time
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
    assert "\x1b" not in out and "[2J" not in out and "pwned" not in out and "\x07" not in out
    assert "response:\n hello" in out
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
    # One model a side: the model is what is compared, runs are paired by prompt.
    row = rows[("haiku", "timings.decode_tok_s")]
    assert (row["n_a"], row["n_b"]) == (3, 3) and row["verdict"] == "real"
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


ESC_BITS = ("\x1b", "\x9b", "\x07", "[2J", "]52;", "cHduZWQ=", "]0;")


def _hostile(i: int, **fields):
    """An imported record: every text field carries a screen clear and an OSC 52 clipboard write."""
    evil = "\x1b[2J\x1b]52;c;cHduZWQ=\x07\x9b2J\x1b]0;title\x07"
    record = {
        "id": f"{evil}run{i}", "session_id": f"s{evil}", "started_at": "2025-03-01T10:00:00",
        "model": f"m{evil}", "backend": f"ollama{evil}", "host": f"h{evil}",
        "prompt_id": f"p{evil}", "prompt": f"prompt{evil}", "status": f"error{evil}",
        "error": f"boom{evil}", "response": f"resp{evil}\nline2",
        "timings": {"decode_tok_s": 40.0 + i, f"x{evil}": 1.0}, "tags": [f"t{evil}"],
    }  # fmt: skip
    record.update(fields)
    return record


def test_imported_escape_sequences_never_reach_the_terminal(tmp_path, capsys):
    """`llmbench import` takes arbitrary JSON: no field of it may drive the terminal."""
    runs = [_hostile(0), _hostile(1, status="ok"), _hostile(2, status="ok")]
    src = tmp_path / "evil.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in runs))
    d = str(tmp_path / "data")
    code, out, _ = cli(import_, [str(src), "--data-dir", d], capsys)
    assert (code, out.strip()) == (0, "added 3, skipped 0 already present")
    outputs = {
        "show": cli(show, [runs[0]["id"], "--data-dir", d], capsys),
        "history": cli(history, ["--data-dir", d], capsys),
        "compare": cli(compare, [runs[1]["id"], runs[2]["id"], "--data-dir", d], capsys),
        "export md": cli(export, ["--format", "md", "--data-dir", d], capsys),
        "export csv": cli(export, ["--format", "csv", "--data-dir", d], capsys),
    }
    for name, (code, out, err) in outputs.items():
        assert code == 0, (name, err)
        for bit in ESC_BITS:
            assert bit not in out + err, (name, bit)
    show_out = outputs["show"][1]
    assert "run run0" in show_out and "status error" in show_out and "error: boom" in show_out
    assert "response:\nresp\nline2" in show_out and "model m " in show_out
    assert "run1" in outputs["history"][1] and "error" in outputs["history"][1]
    assert "A = run run1 (1 runs)" in outputs["compare"][1]
    assert "timings.x" in outputs["compare"][1] and "timings.decode_tok_s" in outputs["compare"][1]
    assert "| run0 | m |" in outputs["export md"][1]
    # An error quoting stored ids (cut mid-sequence here) is cleaned too; the prefix the user
    # typed is quoted as repr, i.e. as the inert text "\\x1b[2J".
    code, _, err = cli(show, ["\x1b[2J", "--data-dir", d], capsys)
    assert code == 1 and "matches 3 runs" in err
    assert "\x1b" not in err and "\x9b" not in err and "]52" not in err
    # JSON stays lossless yet inert: ESC, C1 and bidi characters are written as \\u escapes.
    for argv in ([], ["--format", "json"]):
        code, out, _ = cli(export, [*argv, "--data-dir", d], capsys)
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
        text = out if argv else "[" + ",".join(out.splitlines()) + "]"
        assert sorted(r["id"] for r in json.loads(text)) == sorted(r["id"] for r in runs)
    for module, argv in ((show, [runs[0]["id"]]), (history, []), (compare, [*runs[1:2], runs[2]])):
        argv = [a["id"] if isinstance(a, dict) else a for a in argv]
        code, out, _ = cli(module, [*argv, "--json", "--data-dir", d], capsys)
        assert code == 0 and "\x1b" not in out and "\x9b" not in out and json.loads(out)
    code, out, _ = cli(show, [runs[0]["id"], "--json", "--data-dir", d], capsys)
    assert json.loads(out)["response"] == runs[0]["response"]


def test_naive_timestamps_are_utc(monkeypatch):
    """Records are written in UTC; a naive timestamp (an old or imported record) is UTC too."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30, no daylight saving
    time.tzset()
    try:
        assert local_time("2025-03-01T10:00:00") == "2025-03-01 15:30"
        assert local_time("2025-03-01T10:00:00Z") == "2025-03-01 15:30"
        assert local_time("2025-03-01T10:00:00+01:00") == "2025-03-01 14:30"
        assert local_time("2025-03-01T10:00:00", short=True) == "03-01 15:30"
        assert local_time("soon\x1b[2J") == "soon"
        assert local_time("") == "-"
    finally:
        monkeypatch.undo()
        time.tzset()
