"""Cold runs are never averaged with warm ones, wherever a mean is shown.

A cold run's TTFT includes the model load (seconds, against milliseconds warm), so one cold run
averaged in would move every TTFT mean. Each test seeds the same warm runs plus cold (and
warm-up and failed) runs into one place a mean is shown, and checks that only the warm,
successful runs made the figure. The single rule lives in ``engine.stats.counts_in_figures``.
"""

from __future__ import annotations

import pytest
from support.store_helpers import run

from llmbench_tui.compare import compare_records, evaluate_gate, parse_rule
from llmbench_tui.engine.stats import counted, counts_in_figures, summarize
from llmbench_tui.ui.history.columns import COLUMNS
from llmbench_tui.ui.history.grouping import group_cell, group_runs
from llmbench_tui.ui.trends import trend_points

WARM_TTFT = (0.10, 0.20, 0.30)  # mean 0.2


def _seeded(ttft_scale: float = 1.0) -> list[dict]:
    """Three warm runs, plus a cold run, a warm-up and a failed run with absurd TTFTs."""
    warm = [
        run(timings={"ttft_s": t * ttft_scale}, started_at=f"2025-03-01T10:0{i}:00+00:00")
        for i, t in enumerate(WARM_TTFT)
    ]
    noise = [
        run(cold=True, timings={"ttft_s": 9.0}, started_at="2025-03-01T09:00:00+00:00"),
        run(warmup=True, timings={"ttft_s": 7.0}, started_at="2025-03-01T09:01:00+00:00"),
        run(status="error", error="boom", timings={"ttft_s": 5.0}),
    ]
    return noise + warm


def test_the_rule() -> None:
    records = _seeded()
    assert [counts_in_figures(r) for r in records] == [False, False, False, True, True, True]
    assert len(counted(records)) == 3


def test_summary_keeps_cold_runs_in_their_own_group() -> None:
    groups = summarize(_seeded())
    warm = next(g for g in groups if not g.cold)
    cold = next(g for g in groups if g.cold)
    assert warm.figures["timings.ttft_s"].mean == pytest.approx(0.2)
    assert warm.figures["timings.ttft_s"].n == 3
    assert cold.figures["timings.ttft_s"].mean == pytest.approx(9.0)


def test_history_group_cells_leave_cold_runs_out() -> None:
    (group,) = group_runs(_seeded(), "model")
    ttft = next(c for c in COLUMNS if c.key == "ttft")
    cell = group_cell(group.records, ttft)
    assert cell == "0.200 ± 0.100 (n=3)"  # the cold 9.0 averaged in would read 2.4 (n=4)


def test_compare_leaves_cold_runs_out() -> None:
    (diff,) = [d for d in compare_records(_seeded(), _seeded(2.0)) if d.figure == "timings.ttft_s"]
    assert (diff.n_a, diff.n_b) == (3, 3)
    assert diff.mean_a == pytest.approx(0.2)
    assert diff.mean_b == pytest.approx(0.4)


def test_trends_plot_only_counted_runs() -> None:
    _, values = trend_points(_seeded(), "timings.ttft_s")
    assert values == list(WARM_TTFT)


def test_gate_compares_warm_means_only() -> None:
    rule = parse_rule("ttft_s>+20%")
    # Same warm runs on both sides: a cold run on one side must not look like a regression.
    baseline = [r for r in _seeded() if not r.get("cold")]
    assert evaluate_gate(_seeded(), baseline, [rule]) == []
    (violation,) = evaluate_gate(_seeded(2.0), baseline, [rule])
    assert violation.baseline == pytest.approx(0.2)
    assert violation.current == pytest.approx(0.4)
