"""Answer quality under ``llmbench --batch``, as a user runs it: the shipped fixtures end to end,
the score in the summary, the progress lines, the exports and ``llmbench show``.

The fast tests script the Ollama test server to answer with each fixture's expected output
(scoring 10/10 through the whole engine path); the slow one runs ``examples/quality.toml``
against the embedded SmolLM2 model, which scores what it scores: the record must hold exactly
what ``score_answer`` gives for its response.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.ollama_server import FakeModel, words
from support.paths import EXAMPLES

from llmbench_tui.quality import find_tsc, load_fixture, score_answer
from llmbench_tui.suite import load_suite

FIXTURES = ("vue-typing", "python-function", "json-extraction")
LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]


def run(args, tmp_path, **kw):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
           **kw.pop("env", {})}
    return subprocess.run([*LLMBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=kw.pop("timeout", 300), **kw)


def without_time(quality: dict) -> dict:
    return {k: v for k, v in quality.items() if k != "scored_at"}


def fixture_suite(tmp_path: Path, server_url: str) -> tuple[Path, list[FakeModel]]:
    """One fake model per fixture, answering that fixture's expected output to every prompt."""
    models = []
    for name in FIXTURES:
        expected = load_fixture(EXAMPLES / "fixtures" / name).expected
        model = f"{name.replace('-', '')}:1b"
        # Split in small pieces so the answer streams as many chunks, as a model's would.
        tokens = [t for line in expected.splitlines(keepends=True) for t in words(line)]
        assert "".join(tokens) == expected
        models.append(FakeModel(model, tokens=tokens, token_delay_s=0.0))
    lines = [f'models = [{", ".join(json.dumps(f"ollama:{m.name}@{server_url}") for m in models)}]',
             "repetitions = 2", "warmup = 1", "allow_code_exec = false",
             "[options]", "max_tokens = 4096"]
    for name in FIXTURES:
        lines += ["[[prompts]]", f'id = "{name}"', f'fixture = "{EXAMPLES / "fixtures" / name}"']
    path = tmp_path / "fixtures.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, models


@pytest.mark.skipif(not find_tsc()[0], reason="no tsc here (npm ci installs it)")
def test_fixtures_end_to_end_expected_answers_score_ten(ollama_server, tmp_path):
    path, models = fixture_suite(tmp_path, ollama_server.url)
    for model in models:
        ollama_server.add_model(model)
    out, csv_path, md = tmp_path / "runs.json", tmp_path / "runs.csv", tmp_path / "summary.md"
    p = run(["--batch", str(path), "--allow-code-exec", "--json", str(out), "--csv",
             str(csv_path), "--markdown", str(md)], tmp_path)
    assert p.returncode == 0, p.stderr
    records = json.loads(out.read_text())
    assert len(records) == 3 * (1 + 3 * 2)
    prompts = {p.id: p for p in load_suite(path).prompts}
    for record in records:
        quality = record["quality"]
        assert set(quality) == {"score", "checks", "scored_at", "judge"}
        assert quality["judge"] is None  # no judge check, no --judge
        assert quality["scored_at"].endswith("Z")
        assert all(set(c) == {"name", "kind", "passed", "score", "detail", "weight"}
                   for c in quality["checks"])
        # Exactly what score_answer gives for the stored response (allow_code_exec by flag).
        again = score_answer(record["response"], prompts[record["prompt_id"]].checks,
                             allow_code_exec=True)
        assert without_time(quality) == without_time(again.model_dump(mode="json"))
        # Each fixture's expected output scores 10/10 on its own prompt, warm-up included.
        if record["model"].split(":")[0] == record["prompt_id"].replace("-", ""):
            assert quality["score"] == 10.0, quality
            assert all(c["passed"] is True for c in quality["checks"]), quality
    names = {r["prompt_id"]: [c["name"] for c in r["quality"]["checks"]] for r in records}
    assert names == {
        "vue-typing": ["vue-structure", "tsc-strict"],
        "python-function": ["merge-intervals-tests", "keeps-signature"],
        "json-extraction": ["json", "json_schema:schema.json", "email-address", "iso-date"],
    }
    # Summary on stdout: a score column, mean ± stdev per model and prompt.
    header = p.stdout.splitlines()[0].split()
    assert header[-1] == "score"
    row = next(line for line in p.stdout.splitlines()
               if line.startswith("ollama:vuetyping:1b") and " vue-typing " in line)
    assert row.endswith("10.0 ± 0.0")
    # Progress lines carry the score.
    assert "vue-typing rep 1 ok" in p.stderr and " score 10.0" in p.stderr
    # CSV: the score and a compact checks column.
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    vue = next(r for r in rows if r["model"] == "vuetyping:1b" and r["prompt_id"] == "vue-typing")
    assert vue["quality.score"] == "10.0"
    assert vue["quality.checks"] == "vue-structure=1; tsc-strict=1"
    assert "quality.scored_at" in vue
    # The Markdown summary has the score column too.
    assert md.read_text().splitlines()[0].endswith("| score |")
    # `llmbench export --format md` (one row per run): a score column.
    e = run(["export", "--format", "md"], tmp_path)
    assert e.returncode == 0, e.stderr
    header = [c.strip() for c in e.stdout.splitlines()[0].strip("|").split("|")]
    assert header[header.index("out tokens") + 1 :].count("score") == 1
    # `llmbench show`: every check with its detail.
    wrong = next(r for r in records if r["model"] == "jsonextraction:1b"
                 and r["prompt_id"] == "python-function" and not r["warmup"])
    s = run(["show", wrong["id"][:10]], tmp_path)
    assert s.returncode == 0, s.stderr
    quality = wrong["quality"]
    assert f"quality: {quality['score']:.3g}/10  scored {quality['scored_at']}" in s.stdout
    for check in quality["checks"]:
        assert f"{check['name']} ({check['kind']}): {check['detail']}" in s.stdout
    assert "  FAIL    0.00  merge-intervals-tests (python): " in s.stdout


def test_checks_not_run_are_said_so_under_the_summary(ollama_server, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(
        f'models = ["ollama:smollm-fake:135m@{ollama_server.url}"]\nrepetitions = 1\n'
        'warmup = 0\n[[prompts]]\nid = "sky"\ntext = "Why blue?"\n'
        '[[prompts.checks]]\nkind = "contains"\ntext = "blue"\n'
        '[[prompts.checks]]\nkind = "typescript"\n'
    )
    p = run(["--batch", str(suite), "--no-store"], tmp_path,
            env={"LLMBENCH_TSC": str(tmp_path / "no-tsc-here")})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[2].endswith("10.0")  # n=1: no spread; tsc left out
    assert "sky: check not run, left out of the score: typescript: " in p.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)  # minutes on a loaded 2-core machine, seconds on a free one
def test_shipped_quality_suite_against_the_embedded_model(tmp_path):
    """examples/quality.toml end to end on the embedded SmolLM2: every run scored, every
    record's quality exactly what score_answer gives for its response."""
    out, csv_path = tmp_path / "runs.json", tmp_path / "runs.csv"
    p = run(["--batch", str(EXAMPLES / "quality.toml"), "--allow-code-exec", "-n", "1",
             "--max-tokens", "48", "--json", str(out), "--csv", str(csv_path)], tmp_path,
            timeout=1150)
    assert p.returncode == 0, p.stderr
    records = json.loads(out.read_text())
    assert [(r["prompt_id"], r["warmup"]) for r in records] == [
        ("vue-typing", True), ("vue-typing", False), ("python-function", False),
        ("json-extraction", False), ("fib", False)]
    prompts = {p.id: p for p in load_suite(EXAMPLES / "quality.toml").prompts}
    for record in records:
        assert record["status"] == "ok" and record["backend"] == "gguf"
        again = score_answer(record["response"], prompts[record["prompt_id"]].checks,
                             allow_code_exec=True)
        assert without_time(record["quality"]) == without_time(again.model_dump(mode="json"))
    assert p.stdout.splitlines()[0].split()[-1] == "score"
    # One summary row per prompt: "embedded  PROMPT  ok/n ..." (warnings under the table start
    # "embedded:", the aggregate-throughput lines "embedded  PROMPT: aggregate ...").
    rows = [line for line in p.stdout.splitlines() if re.match(r"embedded\s+\S+\s+\d+/\d+ ", line)]
    assert len(rows) == 4, rows
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert all(r["quality.checks"] for r in rows)
    h = run(["history", "--json", "--sort=-quality.score"], tmp_path)
    scores = [r["quality"]["score"] for r in json.loads(h.stdout)]
    assert scores == sorted(scores, key=lambda s: -1 if s is None else s, reverse=True)
