"""Statistics across repetitions (README Metrics), checked against hand-computed values."""

import math

import pytest

from llmbench_tui.engine.stats import describe, summarize, t_critical
from llmbench_tui.schema import get_path


def test_describe_matches_hand_computation():
    s = describe([10.0, 12.0, 14.0])
    assert s.n == 3 and s.mean == pytest.approx(12.0) and s.median == 12.0
    assert s.stdev == pytest.approx(2.0)  # sample stdev (n-1)
    half = 4.303 * 2.0 / math.sqrt(3)
    assert s.ci95 == [pytest.approx(12.0 - half), pytest.approx(12.0 + half)]
    assert s.p95 == pytest.approx(13.8)


def test_single_value_has_no_spread():
    s = describe([5.0])
    assert s.stdev is None and s.ci95 == [None, None] and s.n == 1


def test_outlier_flagged_not_dropped():
    values = [10.0, 10.5, 9.5, 10.2, 9.8, 30.0]
    s = describe(values)
    assert s.outliers == [30.0]
    assert s.mean == pytest.approx(sum(values) / 6)


def test_t_critical_table():
    assert t_critical(1) == pytest.approx(12.706)
    assert t_critical(35) == pytest.approx(2.042)  # conservative: df 30
    assert t_critical(1000) == pytest.approx(1.960)


def _rec(**kw):
    base = {"model": "m", "model_spec": "ollama:m", "backend": "ollama", "host": "h",
            "prompt_id": "p", "options": {}, "status": "ok", "warmup": False, "cold": False,
            "concurrency": 1, "error": None, "timings": {"ttft_s": 0.1, "decode_tok_s": 50.0}}
    base.update(kw)
    return base


def test_summarize_excludes_warmup_and_failures_and_splits_cold():
    recs = [
        _rec(timings={"ttft_s": 0.1, "decode_tok_s": 40.0}),
        _rec(timings={"ttft_s": 0.3, "decode_tok_s": 60.0}),
        _rec(warmup=True, timings={"ttft_s": 9.0, "decode_tok_s": 1.0}),
        _rec(status="timeout", error="no first token within 1 s (TTFT timeout)", timings={}),
        _rec(cold=True, timings={"ttft_s": 2.0, "decode_tok_s": 50.0}),
    ]
    groups = summarize(recs)
    warm = next(g for g in groups if not g.cold)
    cold = next(g for g in groups if g.cold)
    assert warm.n_runs == 3 and warm.n_ok == 2
    assert warm.figures["timings.decode_tok_s"].mean == pytest.approx(50.0)
    assert warm.figures["timings.ttft_s"].mean == pytest.approx(0.2)
    assert warm.errors == ["no first token within 1 s (TTFT timeout)"]
    assert cold.figures["timings.ttft_s"].mean == pytest.approx(2.0)


def test_get_path():
    assert get_path({"a": {"b": 3}}, "a.b") == 3
    assert get_path({"a": None}, "a.b") is None
