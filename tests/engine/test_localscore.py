"""The LocalScore-formula score: shapes, skipping what does not fit, the formula itself."""

from __future__ import annotations

import pytest

from llmbench_tui.engine.localscore import FORMULA, SHAPES, score, shapes


def test_the_nine_shapes_are_localscores():
    assert [(pp, tg) for pp, tg, _ in SHAPES] == [
        (1024, 16), (4096, 256), (2048, 256), (2048, 768), (1024, 1024),
        (1280, 3072), (384, 1152), (64, 1024), (16, 1536),
    ]  # fmt: skip
    cells, skipped = shapes(8192)  # SmolLM2-135M's context: every shape fits
    assert len(cells) == 9 and not skipped
    cells, skipped = shapes(4096)
    assert len(cells) == 7
    assert skipped == [
        "pp4096+tg256 skipped: needs 4352 tokens of context, the model has 4096",
        "pp1280+tg3072 skipped: needs 4352 tokens of context, the model has 4096",
    ]


def run(pp, tg, prompt_rate, gen_rate, ttft_s, energy=None, server=True):
    return {"model": "m", "model_spec": "embedded", "status": "ok", "warmup": False,
            "cold": False, "tokens": {"output": tg},
            "workload": {"localscore": True, "test": f"pp{pp}+tg{tg}", "pp": pp, "tg": tg},
            "server": {"prompt_tok_s": prompt_rate, "decode_tok_s": gen_rate} if server else None,
            "timings": {"ttft_s": ttft_s, "decode_tok_s": 45.0 if gen_rate is None else gen_rate},
            "efficiency": {"energy_j": energy} if energy else None}


def test_formula_averages_then_takes_the_geometric_mean():
    recs = [run(pp, tg, 1000.0, 50.0, 0.5, energy=tg / 2) for pp, tg, _ in SHAPES]
    recs.append(run(16, 1536, 3000.0, 150.0, 1.5, energy=768) | {"warmup": True})  # ignored
    (res,) = score(recs)
    assert res.formula == FORMULA and res.comparable and len(res.shapes_run) == 9
    assert (res.prompt_tok_s, res.gen_tok_s, res.ttft_ms) == (1000.0, 50.0, 500.0)
    assert res.score == pytest.approx(10 * (1000 * 50 * 1000 / 500) ** (1 / 3))
    assert res.tokens_per_j == pytest.approx(2.0)
    assert "LocalScore formula" in res.sentence() and "tokens/J" in res.sentence()


def test_fewer_shapes_are_labelled_not_comparable_and_client_figures_fill_in():
    recs = [run(1024, 16, None, None, 0.25, server=False)]
    (res,) = score(recs, ["pp4096+tg256 skipped: ..."])
    assert res.prompt_tok_s == pytest.approx(1024 / 0.25)  # pp / TTFT without a server figure
    assert not res.comparable and "not comparable" in res.sentence()
    assert res.tokens_per_j is None and res.shapes_skipped
