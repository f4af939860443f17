"""A round's figures (issue 22): an aggregate has one value per round, never one per stream, and
the aggregate output throughput is given at every level, one stream included.

Seeded records check the statistics exactly (mean, sample stdev, 95 % CI over the rounds) in
every place that summarises them; real batches against the Ollama protocol test server check
that ``-c 4 -n 3`` says n=3 and that ``-c 1`` prints and exports the throughput.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from llmbench_tui.compare import values
from llmbench_tui.engine.report import footnotes
from llmbench_tui.engine.stats import figure_values, summarize, t_critical, throughput
from llmbench_tui.exporting import render
from llmbench_tui.ui.history.columns import Column
from llmbench_tui.ui.history.grouping import group_cell

ROUNDS = [40.0, 44.0, 38.0]  # aggregate tok/s of three rounds of four streams
SPANS = [3.2, 2.9, 3.4]  # each round's wall time, s
TOKENS = 32  # output tokens of every stream


def _records(streams: int = 4) -> list[dict]:
    out = []
    for rnd, (agg, span) in enumerate(zip(ROUNDS, SPANS, strict=True)):
        for stream in range(streams):
            out.append({
                "id": f"r{rnd}s{stream}", "session_id": "s1", "started_at": "2026-01-01T00:00:00Z",
                "model": "m", "model_spec": "ollama:m", "backend": "ollama",
                "host": "http://127.0.0.1:1", "prompt_id": "p", "prompt": "x", "status": "ok",
                "repetition": rnd, "concurrency": streams,
                "tokens": {"output": TOKENS},
                "timings": {"decode_tok_s": 10.0 + stream + rnd},
                "concurrent": {"streams": streams, "aggregate_tok_s": agg, "round_s": span,
                               "round": rnd},
            })  # fmt: skip
    return out


def test_an_aggregate_is_summarised_once_per_round():
    records = _records()
    (group,) = summarize(records)
    agg = group.figures["concurrent.aggregate_tok_s"]
    mean, sd = statistics.fmean(ROUNDS), statistics.stdev(ROUNDS)
    half = t_critical(2) * sd / math.sqrt(3)
    assert agg.n == 3 and group.n_ok == 12
    assert agg.mean == pytest.approx(mean) and agg.stdev == pytest.approx(sd)
    assert agg.ci95 == [pytest.approx(mean - half), pytest.approx(mean + half)]
    # A per-run figure is still one value per stream.
    assert group.figures["timings.decode_tok_s"].n == 12
    # Throughput: every stream's tokens over the sum of the rounds' wall times.
    assert group.throughput == {"tok_s": pytest.approx(12 * TOKENS / sum(SPANS)),
                                "output_tokens": 12 * TOKENS, "wall_s": pytest.approx(sum(SPANS)),
                                "rounds": 3}  # fmt: skip
    (line,) = [n for n in footnotes([group]) if "aggregate" in n]
    assert f"aggregate {mean:.1f} ± {sd:.1f} (n=3) tok/s over 4 streams" in line
    assert f"throughput {12 * TOKENS / sum(SPANS):.1f} tok/s (384 output tokens / " in line
    doc = json.loads(json.dumps(group.to_json()))
    assert doc["figures"]["concurrent.aggregate_tok_s"]["n"] == 3


def test_every_summary_counts_rounds_not_streams():
    records = _records()
    # compare (Welch, the gate) and the history groups take their values from the same rule.
    assert values(records, "concurrent.aggregate_tok_s") == ROUNDS
    assert len(values(records, "timings.decode_tok_s")) == 12
    column = Column("agg", "agg", "concurrent.aggregate_tok_s", str, numeric=True)
    shown = group_cell(records, column)
    assert shown.endswith("(n=3)"), shown
    # Two sessions' rounds with the same numbers are different rounds.
    other = [{**r, "session_id": "s2"} for r in records]
    assert len(figure_values(records + other, "concurrent.aggregate_tok_s")) == 6
    # A round with no time stored (an older record) gives no throughput rather than a wrong one.
    old = [{**r, "concurrent": None} for r in records]
    assert throughput(old) is None


def _batch(url: str, tmp_path, *flags: str) -> tuple[subprocess.CompletedProcess, str]:
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch",
         "-m", f"ollama:smollm-fake:135m@{url}", "--warmup", "0", "--json", f"{out}.json",
         "--csv", f"{out}.csv", "--markdown", f"{out}.md", *flags],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done, str(out)


def test_four_streams_three_rounds_report_n_3(ollama_server, tmp_path):
    done, out = _batch(ollama_server.url, tmp_path, "-c", "4", "-n", "3")
    (line,) = [ln for ln in done.stdout.splitlines() if ": aggregate " in ln]
    assert "(n=3) tok/s over 4 streams; throughput " in line and "over 3 rounds)" in line, line
    records = json.loads(Path(f"{out}.json").read_text())
    assert len(records) == 12
    rounds = {r["concurrent"]["round"]: r["concurrent"]["aggregate_tok_s"] for r in records}
    assert sorted(rounds) == [0, 1, 2] and all(v > 0 for v in rounds.values())


def test_one_stream_prints_and_exports_the_throughput(ollama_server, tmp_path):
    done, out = _batch(ollama_server.url, tmp_path, "-c", "1", "-n", "2")
    (line,) = [ln for ln in done.stdout.splitlines() if ": aggregate " in ln]
    assert "(n=2) tok/s over 1 stream; throughput " in line, line
    records = json.loads(Path(f"{out}.json").read_text())
    for record in records:
        conc = record["concurrent"]
        assert conc["streams"] == 1 and conc["round_s"] > 0
        # One stream: its own output tokens over its own first-send-to-last-token time.
        rate = record["tokens"]["output"] / conc["round_s"]
        assert conc["aggregate_tok_s"] == pytest.approx(rate)
    rows = list(csv.DictReader(io.StringIO(Path(f"{out}.csv").read_text())))
    assert [float(r["concurrent.aggregate_tok_s"]) for r in rows] == pytest.approx(
        [r["concurrent"]["aggregate_tok_s"] for r in records])
    markdown = Path(f"{out}.md").read_text()
    assert "tok/s over 1 stream; throughput " in markdown
    assert "| round tok/s |" in render(records, "md")
