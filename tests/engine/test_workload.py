"""Size grids: parsing, cells, exact prompt fitting and calibration (pure parts)."""

from __future__ import annotations

import random

import pytest
from support.ollama_server import count_tokens

from llmbench_tui.engine.synthetic_prompts import Built, WordStream, calibrate, fit_exact
from llmbench_tui.engine.workload import Workload, grid_options, make_cells, record_fields
from llmbench_tui.schema import Options
from llmbench_tui.workload_syntax import Cell, WorkloadError, parse_levels, parse_values


def test_lists_and_llama_bench_ranges():
    assert parse_values("64,512,2048", "--pp", minimum=1) == [64, 512, 2048]
    assert parse_values("64-512*2", "--pp", minimum=1) == [64, 128, 256, 512]
    assert parse_values("0-4096+1024", "--depth", minimum=0) == [0, 1024, 2048, 3072, 4096]
    assert parse_values("1-3", "--tg", minimum=1) == [1, 2, 3]
    assert parse_values("64,64-128*2", "--pp", minimum=1) == [64, 128]  # duplicates once
    assert parse_values([64, "128-256*2"], "pp", minimum=1) == [64, 128, 256]  # suite lists
    assert parse_values(128, "tg", minimum=1) == [128]
    assert parse_levels("8,1,2-4") == [1, 2, 3, 4, 8]


@pytest.mark.parametrize(
    ("text", "flag", "minimum", "says"),
    [
        ("0", "--pp", 1, "--pp 0: must be >= 1"),
        ("64,abc", "--pp", 1, "--pp 'abc'"),
        ("512-64", "--pp", 1, "ends before it starts"),
        ("1-64*1", "--pp", 1, "mult >= 2"),
        ("", "--tg", 1, "--tg ''"),
    ],
)
def test_bad_values_name_the_value(text, flag, minimum, says):
    with pytest.raises(WorkloadError, match=None) as err:
        parse_values(text, flag, minimum=minimum)
    assert says in str(err.value)


def test_cells_labels_follow_llama_bench():
    cells = make_cells([64, 512], [128], [0, 4096])
    assert [c.test for c in cells] == [
        "pp64+tg128",
        "pp512+tg128",
        "pp64+tg128 @ d4096",
        "pp512+tg128 @ d4096",
    ]
    assert cells[3].prompt_id == "pp512+tg128@d4096"
    assert cells[3].context_needed == 4096 + 512 + 128


def test_context_check_names_the_value():
    wl = Workload(make_cells([512], [128], [0, 8192]))
    with pytest.raises(WorkloadError) as err:
        wl.check_context("embedded", 8192, None)
    assert "--depth 8192" in str(err.value) and "8192" in str(err.value)
    wl = Workload(make_cells([512], [128], [0]))
    wl.check_context("embedded", 8192, None)  # fits
    with pytest.raises(WorkloadError, match="num_ctx of 256"):
        wl.check_context("embedded", 8192, 256)
    wl.check_context("unknown", None, None)  # unknown context: the run itself will say


def test_grid_options_fit_the_largest_cell():
    wl = Workload(make_cells([512], [128], [4096]))
    assert grid_options(Options(), wl).num_ctx == 4864  # 4736 rounded up to 256
    assert grid_options(Options(num_ctx=8192), wl).num_ctx == 8192  # the user's choice stays
    assert grid_options(Options(), Workload(make_cells([16], [16], [0]))).num_ctx == 2048


def _counter(rule, calls):
    async def count(text: str) -> int:
        calls.append(text)
        return rule(text)

    return count


async def test_fit_exact_lands_on_the_count():
    # A tokenizer with BOS and words of one to three tokens (the test server's rule).
    calls: list[str] = []
    count = _counter(lambda t: 1 + count_tokens(t), calls)
    for target in (1 + 1, 17, 64, 512, 2048):
        fit = await fit_exact(count, target, WordStream(random.Random(target)))
        assert fit.exact and fit.count == target, target
    # A prefix (the depth part) is kept as it is.
    ctx = await fit_exact(count, 100, WordStream(random.Random(1)))
    total = await fit_exact(count, 164, WordStream(random.Random(2)), prefix=ctx.words)
    assert total.words[: len(ctx.words)] == ctx.words and total.count == 164


@pytest.mark.parametrize("target", [16, 64, 300, 1024, 4096])
async def test_calibration_converges_within_2_tokens_in_3_probes(target):
    calls: list[str] = []
    probe = _counter(count_tokens, calls)  # the Ollama test server's raw-prompt count
    fit = await calibrate(probe, target, WordStream(random.Random(target)))
    assert len(calls) <= 3 and fit.probes == len(calls)
    assert abs(fit.count - target) <= 2
    # Any order of the same words counts the same: runs send fresh orders.
    words = list(fit.words)
    random.Random(0).shuffle(words)
    assert count_tokens(" ".join(words)) == fit.count


def test_record_fields_flag_what_a_reader_must_see():
    cell = Cell(512, 128, 0)
    built = Built(raw=None, meta={"count_method": "calibrated", "prompt_tokens_fitted": 511,
                                  "exact_prompt": False})  # fmt: skip
    w = record_fields(cell, built, backend_kind="ollama", grid="g", prompt_reported=511,
                      output_tokens=22, cached_tokens=None, context_prime_s=None,
                      localscore=False)  # fmt: skip
    assert w["test"] == "pp512+tg128" and w["prompt_tokens_requested"] == 512
    assert w["exact_prompt"] is False and w["exact_output"] is False
    assert any("511 tokens, 512 were requested" in f for f in w["flags"])
    assert any("22 of 128 tokens generated: Ollama has no ignore_eos" in f for f in w["flags"])
    exact = Built(raw=None, meta={"count_method": "tokenizer", "prompt_tokens_fitted": 512,
                                  "exact_prompt": True})  # fmt: skip
    w = record_fields(cell, exact, backend_kind="openai", grid="g", prompt_reported=512,
                      output_tokens=128, cached_tokens=300, context_prime_s=None,
                      localscore=False)  # fmt: skip
    assert w["exact_prompt"] and w["exact_output"] and w["cached_tokens"] == 300
    assert any("inflated" in f for f in w["flags"])


def test_plan_from_a_suite_with_a_workload_table():
    from llmbench_tui.engine.runner import Plan
    from llmbench_tui.schema import Suite

    suite = Suite.model_validate({"models": ["embedded"], "concurrency": 2,
                                  "workload": {"pp": "64-128*2", "depth": [0, 256],
                                               "slo": ["ttft_s<=1"]}})  # fmt: skip
    plan = Plan.from_suite(suite)
    assert [c.test for c in plan.workload.cells] == [
        "pp64+tg128", "pp128+tg128", "pp64+tg128 @ d256", "pp128+tg128 @ d256"]  # fmt: skip
    assert plan.workload.levels == [2] and [s.text for s in plan.workload.slos] == ["ttft_s<=1"]
    assert plan.prompts[0].id == "pp64+tg128"
    assert plan.runs_per_model() == plan.warmup + 4 * 2 * plan.repetitions
    plain = Plan.from_suite(Suite.model_validate({"models": ["embedded"], "prompts": [
        {"id": "a", "text": "hi"}]}))  # fmt: skip
    assert plain.workload is None
