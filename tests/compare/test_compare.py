"""Welch's t-test, the side-by-side comparison, the regression gate and the export writers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from support.store_helpers import run

from llmbench_tui.compare import (
    Side,
    compare_records,
    evaluate_gate,
    figure_path,
    group_key,
    parse_rule,
    ungated,
)
from llmbench_tui.engine.stats import welch
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
    b.append(run(model="m", cold=True, timings={"decode_tok_s": 5.0}))
    (diff,) = [d for d in compare_records(a, b) if d.figure == "timings.decode_tok_s"]
    assert (diff.n_a, diff.n_b) == (3, 3)  # warm-up, cold and failed runs excluded
    assert diff.mean_b == pytest.approx(40.0) and diff.stdev_b == pytest.approx(1.0)
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
    assert found[0].sentence == (
        "fast @ http://127.0.0.1:11434, prompt haiku: decode_tok_s 51 → 44.5 (-12.7%), "
        "crossing decode_tok_s<-10%"
    )
    assert evaluate_gate(cur, cur, rules) == []


def test_gate_leaves_cold_runs_out():
    """One cold run in the baseline, two now (a load each): the old code averaged them into TTFT
    (0.737 s -> 1.05 s, +43 %) and failed a gate on warm runs that did not change at all."""

    def session(warm_ttft, cold_ttft):
        runs = [run(model="m", timings={"ttft_s": t}) for t in warm_ttft]
        runs += [run(model="m", cold=True, timings={"ttft_s": t}) for t in cold_ttft]
        runs.append(run(model="m", warmup=True, timings={"ttft_s": 9.0}))
        return runs

    rules = [parse_rule("ttft_s>+20%")]
    base = session([0.10, 0.11], [2.0])
    assert evaluate_gate(session([0.10, 0.11], [2.0, 2.0]), base, rules) == []
    (slower,) = evaluate_gate(session([0.14, 0.15], [2.0]), base, rules)  # warm TTFT +38 %
    assert (slower.baseline, slower.current) == pytest.approx((0.105, 0.145))


def test_gate_judges_each_group_against_the_same_group():
    """Two prompts of one model, and two concurrency levels, are separate groups: prompt "long"
    losing 25 % is caught although the mean over both prompts only moved 7 %."""
    base = _reps("m", [50.0, 50.0], "short") + _reps("m", [20.0, 20.0], "long")
    base += _reps("m", [10.0, 10.0], "short", concurrency=4)
    cur = _reps("m", [50.0, 50.0], "short") + _reps("m", [15.0, 15.0], "long")
    cur += _reps("m", [10.0, 10.0], "short", concurrency=4)
    (v,) = evaluate_gate(cur, base, [parse_rule("decode_tok_s<-10%")])
    assert (v.prompt_id, v.concurrency, v.baseline, v.current) == ("long", 1, 20.0, 15.0)
    assert v.sentence.startswith("m @ http://127.0.0.1:11434, prompt long: decode_tok_s 20 → 15")
    # A slower c=4 group is judged against the baseline's c=4 runs, never the c=1 ones.
    cur4 = _reps("m", [8.0, 8.0], "short", concurrency=4)
    (v4,) = evaluate_gate(cur4, base, [parse_rule("decode_tok_s<-10%")])
    assert (v4.concurrency, v4.baseline, v4.current) == (4, 10.0, 8.0)
    assert ", concurrency 4: decode_tok_s 10 → 8 (-20.0%)" in v4.sentence
    # Another host or model spec is another group: not judged, and listed as such.
    elsewhere = _reps("m", [1.0, 1.0], "short", host="http://10.0.0.2:11434")
    assert evaluate_gate(elsewhere, base, [parse_rule("decode_tok_s<-10%")]) == []
    assert ungated(elsewhere + cur, base) == ["m, short, ollama, http://10.0.0.2:11434, c=1"]
    # An imported baseline may hold anything: an object where a name should be is just no match.
    odd = [dict(r, host={"x": 1}, model=["m"]) for r in base]
    assert evaluate_gate(cur, odd, [parse_rule("decode_tok_s<-10%")]) == []


def test_gate_sentence_is_inert():
    base = _reps("evil\x1b]52;c;cHduZWQ=\x07\nFAKE LINE", [50.0, 50.0], "p\x1b[2J")
    cur = _reps("evil\x1b]52;c;cHduZWQ=\x07\nFAKE LINE", [10.0, 10.0], "p\x1b[2J")
    (v,) = evaluate_gate(cur, base, [parse_rule("decode_tok_s<-10%")])
    assert "\x1b" not in v.sentence and "52;" not in v.sentence and "\n" not in v.sentence
    assert v.sentence.startswith("evil FAKE LINE @ http://127.0.0.1:11434, prompt p: ")


def test_compare_pairs_runs_of_the_same_group():
    """Sessions on two hosts are compared host against host, prompt by prompt; a field both sides
    share values of (the prompt) keeps its groups apart."""
    here = _reps("m", [50.0, 51.0], "short") + _reps("m", [20.0, 21.0], "long")
    there = _reps("m", [40.0, 41.0], "short", host="http://gpu:11434")
    there += _reps("m", [10.0, 11.0], "long", host="http://gpu:11434")
    key = group_key(Side("session", "a", here), Side("session", "b", there))
    diffs = {
        d.group: d for d in compare_records(here, there, key) if d.figure == "timings.decode_tok_s"
    }
    assert set(diffs) == {"m / short", "m / long"}
    assert diffs["m / long"].change_pct == pytest.approx((10.5 - 20.5) / 20.5 * 100)
    assert (diffs["m / short"].n_a, diffs["m / short"].n_b) == (2, 2)
    # Both sides ran both concurrency levels: they are paired level by level, and labelled.
    c4 = _reps("m", [9.0, 9.5], "short", concurrency=4)
    key = group_key(Side("session", "a", here + c4), Side("session", "b", here + c4))
    groups = {d.group for d in compare_records(here + c4, here + c4, key)}
    assert groups == {"m / short / c=1", "m / long / c=1", "m / short / c=4"}


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
