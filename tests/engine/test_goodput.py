"""SLOs, goodput per concurrency level and the knee of a sweep (pure functions)."""

from __future__ import annotations

import pytest

from llmbench_tui.engine.goodput import judge, knee, levels, sweep_table
from llmbench_tui.workload_syntax import WorkloadError, parse_slo


def test_parse_slo_forms_and_refusals():
    s = parse_slo("ttft_s<=0.5")
    assert (s.metric, s.op, s.value, s.text) == ("ttft_s", "<=", 0.5, "ttft_s<=0.5")
    assert parse_slo(" itl_p90_s < 0.05 ").path == "timings.itl_p90_s"
    assert parse_slo("timings.decode_tok_s>=20").metric == "decode_tok_s"
    with pytest.raises(WorkloadError, match="unknown metric 'tfft_s'"):
        parse_slo("tfft_s<=0.5")
    with pytest.raises(WorkloadError, match=r"'ttft_s=0\.5'"):
        parse_slo("ttft_s=0.5")


def rec(level, rep, ttft, itl90, tokens=10, status="ok", round_s=1.0, model="m", prompt="p"):
    return {"model": model, "model_spec": model, "backend": "ollama", "host": None,
            "prompt_id": prompt, "status": status, "warmup": False, "cold": False,
            "concurrency": level, "repetition": rep, "tokens": {"output": tokens},
            "timings": {"ttft_s": ttft, "itl_p90_s": itl90, "decode_tok_s": 50.0},
            "concurrent": {"streams": level, "round": rep, "round_s": round_s}}


def test_judge_missing_figures_and_failures_miss():
    slos = [parse_slo("ttft_s<=0.5"), parse_slo("itl_p90_s<=0.05")]
    assert judge(rec(1, 0, 0.2, 0.01), slos) == {"rules": ["ttft_s<=0.5", "itl_p90_s<=0.05"],
                                                 "met": True, "missed": []}
    assert judge(rec(1, 0, 0.9, 0.01), slos)["missed"] == ["ttft_s<=0.5"]
    assert judge(rec(1, 0, None, 0.01), slos)["missed"] == ["ttft_s<=0.5"]
    assert judge(rec(1, 0, 0.1, 0.01, status="timeout"), slos)["missed"] == ["status timeout"]


def test_levels_aggregate_goodput_and_knee():
    slos = [parse_slo("ttft_s<=0.5")]
    recs = [rec(1, r, 0.1, 0.01, round_s=1.0) for r in range(2)]  # 10 tok/s
    recs += [rec(2, r, 0.2 + 0.4 * s, 0.01, round_s=1.0) for r in range(2) for s in range(2)]
    recs += [rec(4, r, 0.3 + 0.2 * s, 0.02, round_s=1.8) for r in range(2) for s in range(4)]
    recs.append({**rec(4, 0, 0.1, 0.01), "warmup": True})  # never counted
    lv = levels(recs, slos)
    assert [x.level for x in lv] == [1, 2, 4]
    one, two, four = lv
    assert one.aggregate_tok_s == pytest.approx(10.0) and one.slo_met_share == 1.0
    assert two.aggregate_tok_s == pytest.approx(20.0)
    assert two.slo_met_share == 0.5 and two.goodput_tok_s == pytest.approx(10.0)
    assert four.aggregate_tok_s == pytest.approx(80 / 3.6)  # +11 %: still growing
    assert four.slo_met_share == 0.5  # 0.3, 0.5 meet; 0.7, 0.9 miss
    assert four.ttft_s["p50"] == pytest.approx(0.6) and four.rounds == 2
    k = knee(lv)
    assert k.level is None and "still growing at c=4" in k.sentence
    # +11 % from 2 to 4 is growth; cut the gain below 10 % and the knee is at c=2.
    slow = [r | {"concurrent": {**r["concurrent"], "round_s": 2.0}} if r["concurrency"] == 4
            else r for r in recs]
    k = knee(levels(slow, slos))
    assert k.level == 2 and "stops growing at c=2" in k.sentence
    assert "c=4 adds +0% (< 10%)" in k.sentence
    rows = sweep_table(lv, slos)
    assert rows[0][2] == "c" and rows[2][8] == "50 %"


def test_failed_runs_count_against_the_share():
    recs = [rec(2, 0, 0.1, 0.01), rec(2, 0, None, None, status="error", tokens=None)]
    (lv,) = levels(recs, [parse_slo("ttft_s<=1")])
    assert lv.n_runs == 2 and lv.n_ok == 1 and lv.slo_met_share == 0.5
