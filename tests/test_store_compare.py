"""Welch's t-test, the side-by-side comparison, the regression gate and the export writers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from store_helpers import run

from llmbench_tui.compare import (
    compare_records,
    evaluate_gate,
    figure_path,
    parse_rule,
    welch,
)
from llmbench_tui.exporting import ExportError, read_records, render, write_export

# Wikipedia "Welch's t-test", example 1: t = -2.46, df = 24.9, p = 0.021.
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
B1 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def test_welch_matches_reference_values():
    assert welch(A1, B1) == pytest.approx(0.021, abs=0.001)
    assert welch([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert welch([1.0], [2.0, 3.0]) is None
    assert welch([5.0, 5.0], [5.0, 5.0]) == 1.0
    assert welch([5.0, 5.0], [6.0, 6.0]) == 0.0


def _reps(model, values, prompt="haiku", **kw):
    return [run(model=model, prompt_id=prompt, timings={"decode_tok_s": v}, **kw) for v in values]


def test_compare_tells_real_differences_from_noise():
    warm = run(model="m", warmup=True, timings={"decode_tok_s": 1.0})
    a = [*_reps("m", [50.0, 51.0, 49.0]), warm]
    b = [*_reps("m", [40.0, 41.0, 39.0]), run(model="m", status="error")]
    (diff,) = [d for d in compare_records(a, b) if d.figure == "timings.decode_tok_s"]
    assert (diff.n_a, diff.n_b) == (3, 3)  # warm-up and failed runs excluded
    assert diff.change_pct == pytest.approx(-20.0)
    assert diff.verdict == "real" and diff.better is False
    noisy = _reps("m", [40.0, 60.0, 50.0])
    (same,) = [d for d in compare_records(a, noisy) if d.figure == "timings.decode_tok_s"]
    assert same.verdict == "noise"
    (single,) = [d for d in compare_records(a[:1], b[:1]) if d.figure == "timings.decode_tok_s"]
    assert single.verdict == "n<2"


def test_rules_and_gate():
    assert figure_path("decode_tok_s") == "timings.decode_tok_s"
    assert figure_path("server.decode_tok_s") == "server.decode_tok_s"
    assert figure_path("load_s") == "server.load_s"
    rule = parse_rule("decode_tok_s<-10%")
    assert (rule.path, rule.op, rule.pct) == ("timings.decode_tok_s", "<", -10.0)
    for bad in ("decode_tok_s<-10", "speed<-10%", "decode_tok_s=5%"):
        with pytest.raises(ValueError, match=r"decode_tok_s|unknown figure"):
            parse_rule(bad)
    base = _reps("fast", [50.0, 52.0]) + _reps("slow", [20.0, 20.0])
    base += [
        run(model="fast", timings={"ttft_s": 0.10}),
        run(model="slow", timings={"ttft_s": 0.2}),
    ]
    cur = _reps("fast", [44.0, 45.0]) + _reps("slow", [19.0, 19.5])
    cur += [
        run(model="fast", timings={"ttft_s": 0.13}),
        run(model="slow", timings={"ttft_s": 0.21}),
    ]
    rules = [parse_rule("decode_tok_s<-10%"), parse_rule("ttft_s>+20%")]
    found = evaluate_gate(cur, base, rules)
    assert [(v.model, v.figure) for v in found] == [("fast", "decode_tok_s"), ("fast", "ttft_s")]
    assert found[0].change_pct == pytest.approx((44.5 - 51.0) / 51.0 * 100)
    assert found[0].baseline == 51.0 and found[0].current == 44.5
    assert "fast: decode_tok_s changed -12.7%" in found[0].sentence
    assert "decode_tok_s<-10%" in found[0].sentence
    assert evaluate_gate(cur, cur, rules) == []


def test_exports_round_trip(tmp_path):
    records = [
        run(timings={"ttft_s": 0.1}, response="a | b\nc", environment={"os": {"name": "linux"}}),
        run(server={"decode_tok_s": 60.0}, tags=["x", "y"]),
    ]
    for fmt in ("json", "jsonl"):
        path = tmp_path / f"out.{fmt}"
        write_export(records, fmt, path)
        assert read_records(path)[0] == records
    rows = list(csv.DictReader(io.StringIO(render(records, "csv"))))
    assert rows[0]["timings.ttft_s"] == "0.1" and rows[1]["server.decode_tok_s"] == "60.0"
    assert json.loads(rows[0]["environment"]) == {"os": {"name": "linux"}}
    assert json.loads(rows[1]["tags"]) == ["x", "y"]
    assert list(rows[0])[:3] == ["id", "session_id", "started_at"]
    md = render(records, "md").splitlines()
    assert md[0].startswith("| started | id | model") and len(md) == 4
    assert all(line.count(" | ") == md[0].count(" | ") for line in md[2:])  # pipes escaped
    stream = io.StringIO()
    write_export(records, "jsonl", stream)
    assert len(stream.getvalue().splitlines()) == 2
    with pytest.raises(ExportError, match="unknown export format"):
        render(records, "xml")
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(ExportError, match="line 2 is not valid JSON"):
        read_records(tmp_path / "bad.jsonl")
