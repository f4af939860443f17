"""The score as a figure: Welch in compare, relative and absolute gate rules, and the gate under
``--batch``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.ollama_server import FakeModel, words
from support.store_helpers import run as record

from llmbench_tui.compare import compare_records, evaluate_gate, figure_path, parse_rule

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]


def scored(model: str, scores: list[float | None], prompt: str = "fib", **kw) -> list[dict]:
    runs = []
    for score in scores:
        rec = record(model=model, prompt_id=prompt, timings={"decode_tok_s": 50.0}, **kw)
        rec["quality"] = {"score": score, "checks": [], "scored_at": "2025-03-01T10:00:00.000Z"}
        runs.append(rec)
    return runs


def test_score_is_a_figure():
    assert figure_path("score") == "quality.score"
    assert figure_path("quality.score") == "quality.score"


def test_welch_on_scores():
    a = scored("m", [8.0, 9.0, 8.5, 9.0])
    b = scored("m", [4.0, 5.0, 4.5, 5.0])
    (diff,) = [d for d in compare_records(a, b) if d.figure == "quality.score"]
    assert (diff.n_a, diff.n_b) == (4, 4)
    assert diff.mean_a == pytest.approx(8.625) and diff.mean_b == pytest.approx(4.625)
    assert diff.verdict == "real" and diff.better is False  # higher is better
    (same,) = [d for d in compare_records(a, scored("m", [9.0, 8.0, 8.5, 9.0]))
               if d.figure == "quality.score"]
    assert same.verdict == "noise"


def test_parse_relative_and_absolute_score_rules():
    rel = parse_rule("score<-10%")
    assert (rel.path, rel.op, rel.pct, rel.absolute) == ("quality.score", "<", -10.0, False)
    ab = parse_rule(" score < 7 ")
    assert (ab.text, ab.path, ab.op, ab.pct, ab.absolute) == ("score < 7", "quality.score", "<",
                                                               7.0, True)
    assert parse_rule("ttft_s>2.5").absolute and parse_rule("ttft_s>2.5").pct == 2.5
    # A sign without a percent is a typo of a relative rule, not a threshold.
    for bad in ("score<-7", "score<+7", "score<7%%", "score=7", "scor<7"):
        with pytest.raises(ValueError, match=r"score|scor"):
            parse_rule(bad)
    with pytest.raises(ValueError, match=r'FIGURE<VALUE or FIGURE>VALUE \(absolute, no sign\)'):
        parse_rule("score<-7")


def test_relative_score_gate():
    base = scored("m", [8.0, 9.0])
    cur = scored("m", [6.0, 7.0])  # 8.5 -> 6.5: -23.5 %
    (v,) = evaluate_gate(cur, base, [parse_rule("score<-10%")])
    assert (v.figure, v.baseline, v.current) == ("score", 8.5, 6.5)
    assert v.sentence == ("m @ http://127.0.0.1:11434, prompt fib: score 8.5 → 6.5 (-23.5%), "
                          "crossing score<-10%")
    assert evaluate_gate(cur, base, [parse_rule("score<-30%")]) == []


def test_absolute_score_gate_needs_no_baseline():
    cur = scored("m", [6.0, 7.0]) + scored("m", [9.0, 10.0], prompt="json")
    cur += scored("m", [1.0], warmup=True) + scored("m", [None], prompt="plain")
    (v,) = evaluate_gate(cur, [], [parse_rule("score<7")])  # the warm-up is not counted
    assert (v.prompt_id, v.baseline, v.current, v.change_pct) == ("fib", None, 6.5, None)
    assert v.sentence == "m @ http://127.0.0.1:11434, prompt fib: score mean 6.5, crossing score<7"
    assert evaluate_gate(cur, [], [parse_rule("score<6")]) == []
    (hi,) = evaluate_gate(cur, [], [parse_rule("score>9")])
    assert hi.prompt_id == "json"
    # With a baseline, both kinds are judged.
    found = evaluate_gate(cur, scored("m", [9.0, 9.0]), [parse_rule("score<-10%"),
                                                        parse_rule("score<7")])
    assert sorted((v.rule, v.prompt_id) for v in found) == [("score<-10%", "fib"),
                                                            ("score<7", "fib")]


def _batch(args, tmp_path):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([*LLMBENCH, "--batch", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_gate_on_scores_under_batch(ollama_server, tmp_path):
    model = ollama_server.add_model(FakeModel("coder:1b", tokens=words(
        "```python\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
        "    return a\n```\n"), token_delay_s=0.0))
    spec = f"ollama:coder:1b@{ollama_server.url}"
    suite = tmp_path / "fib.toml"
    suite.write_text(
        f'models = ["ollama:coder:1b@{ollama_server.url}"]\nrepetitions = 2\nwarmup = 0\n'
        'allow_code_exec = true\n[[prompts]]\nid = "fib"\ntext = "Write fib(n)."\n'
        '[[prompts.checks]]\nkind = "python"\ntests = "assert fib(10) == 55"\nweight = 3\n'
        '[[prompts.checks]]\nkind = "regex"\npattern = "def fib\\\\("\n'
    )
    good = _batch([str(suite), "--fail-if", "score<7"], tmp_path)
    assert good.returncode == 0, good.stderr
    assert "regression gate passed (1 rule)" in good.stderr
    session = good.stdout.split("session ")[1].split()[0]
    # The model gets worse: fib(10) is now wrong, the regex still holds -> 2.5/10.
    model.tokens = words("```python\ndef fib(n):\n    return n\n```\n")
    worse = _batch([str(suite), "--baseline", session, "--fail-if", "score<-10%",
                    "--fail-if", "score<7", "--json", str(tmp_path / "w.json")], tmp_path)
    assert worse.returncode == 3, worse.stderr
    assert [r["quality"]["score"] for r in json.loads((tmp_path / "w.json").read_text())] == [
        2.5, 2.5]
    lines = [line for line in worse.stderr.splitlines() if line.startswith("REGRESSION")]
    assert lines == [
        f"REGRESSION: {spec}, prompt fib: score mean 2.5, crossing score<7",
        f"REGRESSION: {spec}, prompt fib: score 10 → 2.5 (-75.0%), crossing score<-10%",
    ]
    # A relative rule still needs a baseline; an absolute one on a figure no run has is refused.
    p = _batch([str(suite), "--fail-if", "score<-10%"], tmp_path)
    assert p.returncode == 2 and "--fail-if needs --baseline SESSION_OR_FILE for 'score<-10%'" \
        in p.stderr
    p = _batch(["-m", f"ollama:coder:1b@{ollama_server.url}", "-p", "hi", "-n", "1",
                "--warmup", "0", "--fail-if", "score<7"], tmp_path)
    assert p.returncode == 2
    assert "no successful run of this session has the figure of score<7" in p.stderr
