"""Scoring in the engine: after a round's streams end, on a worker thread, only for ``ok`` runs;
and hostile answers (escapes, markup, 10 MB, nested-JSON bombs) scored without hanging."""

from __future__ import annotations

import json
import time

import pytest
from support.ollama_server import FakeModel

from llmbench_tui.commands import show
from llmbench_tui.engine import runner
from llmbench_tui.engine.report import footnotes, summary_table
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.quality import score_answer
from llmbench_tui.schema import ModelSpec, PromptSpec

CHECKS = [
    {"kind": "contains", "text": "blue"},
    {"kind": "regex", "pattern": r"\bsky\b", "weight": 3},
    {"kind": "python", "tests": "assert True"},  # not run without allow_code_exec
]


ANSWER = "The sky:\n```python\nsky = 'blue'\n```\n"


def code_model(server) -> str:
    server.add_model(FakeModel("code:1b", tokens=[ANSWER[:9], ANSWER[9:]]))
    return f"ollama:code:1b@{server.url}"


def plan(*specs: str, prompts: list[PromptSpec], **kw) -> Plan:
    kw.setdefault("repetitions", 1)
    kw.setdefault("warmup", 0)
    kw.setdefault("ttft_timeout_s", 20)
    kw.setdefault("stall_timeout_s", 20)
    return Plan(models=[ModelSpec.parse(s) for s in specs], prompts=prompts, **kw)


def no_time(quality) -> dict:
    return quality.model_dump(exclude={"scored_at"})


async def test_ok_runs_scored_after_the_round_failed_runs_not(ollama_server, monkeypatch):
    ollama_server.add_model(FakeModel("bad:1b", fault="error_midstream", fault_after=2))
    scored_while_streaming = []
    real = runner.score_answer

    def spy(answer, checks, **kw):
        scored_while_streaming.append(len(engine.streams))
        return real(answer, checks, **kw)

    monkeypatch.setattr(runner, "score_answer", spy)
    prompts = [PromptSpec(id="sky", text="Why blue?", checks=CHECKS),
               PromptSpec(id="plain", text="Hi")]
    engine = Engine(plan(code_model(ollama_server), f"ollama:bad:1b@{ollama_server.url}",
                         prompts=prompts, warmup=1, concurrency=2))
    fin = await engine.run()
    good = [r for r in fin.records if r.model == "code:1b"]
    # Warm-up (prompt "sky") and the two streams of "sky" are scored; "plain" has no checks.
    assert [(r.prompt_id, r.warmup, r.quality is not None) for r in good] == [
        ("sky", True, True), ("sky", False, True), ("sky", False, True),
        ("plain", False, False), ("plain", False, False)]
    assert scored_while_streaming == [0, 0, 0]  # never while a stream of the round runs
    quality = good[1].quality
    assert [(c.kind, c.passed, c.score) for c in quality.checks] == [
        ("contains", True, 1.0), ("regex", True, 1.0), ("python", None, None)]
    assert quality.checks[2].detail == (
        "compiles; tests not run: code execution not allowed (--allow-code-exec)")
    assert quality.score == 10.0  # the check not run is left out, not counted as passed
    assert no_time(quality) == no_time(score_answer(good[1].response, prompts[0].checks))
    bad = [r for r in fin.records if r.model == "bad:1b"]
    assert bad and all(r.status == "error" and r.quality is None for r in bad)
    # The summary: a score column, and the check that could not run in a note.
    rows = summary_table(fin.groups)
    assert rows[0][-1] == "score"
    sky = next(row for row in rows if row[1] == "sky" and "code:1b" in row[0])
    assert sky[-1] == "10.0 ± 0.0"
    assert any(note.endswith(" sky: check not run, left out of the score: python: compiles; "
                             "tests not run: code execution not allowed (--allow-code-exec)")
               for note in footnotes(fin.groups))


async def test_allow_code_exec_runs_the_tests(ollama_server):
    prompts = [PromptSpec(id="sky", text="Why blue?", checks=CHECKS)]
    fin = await Engine(plan(code_model(ollama_server), prompts=prompts,
                            allow_code_exec=True)).run()
    (rec,) = fin.records
    python = rec.quality.checks[2]
    assert (python.passed, python.score) == (True, 1.0)
    assert rec.quality.score == 10.0
    # Prose does not compile, tests or not.
    fin = await Engine(plan(f"ollama:smollm-fake:135m@{ollama_server.url}", prompts=prompts,
                            allow_code_exec=True)).run()
    python = fin.records[0].quality.checks[2]
    assert (python.passed, python.score) == (False, 0.0)
    assert python.detail.startswith("SyntaxError")
    assert fin.records[0].quality.score == pytest.approx(10 * 4 / 5)


async def test_a_scorer_failure_never_loses_the_run(ollama_server, monkeypatch):
    def broken(*args, **kw):
        raise KeyError("scorer bug")

    monkeypatch.setattr(runner, "score_answer", broken)
    prompts = [PromptSpec(id="sky", text="Why blue?", checks=CHECKS)]
    fin = await Engine(plan(f"ollama:smollm-fake:135m@{ollama_server.url}",
                            prompts=prompts)).run()
    (rec,) = fin.records
    assert rec.status == "ok" and rec.quality is None and rec.response


HOSTILE_CHECKS = [
    {"kind": "contains", "text": "needle"},
    {"kind": "not_contains", "text": "[bold]"},
    {"kind": "regex", "pattern": r"(a+)+$"},
    {"kind": "exact", "text": "x"},
    {"kind": "json"},
    {"kind": "json_schema", "schema": {"type": "object"}},
    {"kind": "length", "max_words": 10},
    {"kind": "python", "tests": "assert True"},
    {"kind": "typescript"},
    {"kind": "structure", "rules": [{"name": "fn", "pattern": "def "},
                                   {"name": "no-esc", "pattern": "\x1b", "must": False}]},
]

ESCAPES = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b]0;pwned\x07[bold red]markup[/] [link=http://x]l[/link]"


@pytest.mark.parametrize(
    "name, tokens",
    [
        ("escapes:1b", [ESCAPES, "\n```python\ndef f(:\n    '\x1b[31m'\n```\n", "\x9b2J\u202e"]),
        ("bomb:1b", ["```json\n", "[" * 200_000, "\n```\n"]),
        ("huge:1b", ["a" * 20_000] * 500 + ["!"]),  # 10 MB, with a backtracking bait
    ],
)
async def test_hostile_answers_scored_without_hanging(ollama_server, name, tokens):
    ollama_server.add_model(FakeModel(name, tokens=tokens, token_delay_s=0.0))
    prompts = [PromptSpec(id="h", text="anything", checks=HOSTILE_CHECKS)]
    started = time.monotonic()
    fin = await Engine(plan(f"ollama:{name}@{ollama_server.url}", prompts=prompts,
                            allow_code_exec=True)).run()
    elapsed = time.monotonic() - started
    (rec,) = fin.records
    assert rec.status == "ok", rec.error
    assert rec.response == "".join(tokens)
    quality = rec.quality
    assert quality is not None and len(quality.checks) == len(HOSTILE_CHECKS)
    assert quality.score is not None and 0.0 <= quality.score <= 10.0
    for check in quality.checks:
        assert check.detail and len(check.detail) <= 200
        assert not any(ch in check.detail for ch in "\x1b\x07\x9b\n\r\u202e"), check
    # What a terminal would show: the record rendered by `llmbench show` is inert too.
    shown = show.render(json.loads(json.dumps(rec.to_json())), None)
    quality_lines = shown[shown.index("quality:"):shown.index("response:")]
    assert not any(ch in quality_lines for ch in "\x1b\x07\x9b\u202e")
    assert elapsed < 120, f"scoring took {elapsed:.0f} s"
