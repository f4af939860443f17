"""Size grids in-process on the embedded SmolLM2: every cell's prompt is exactly pp (+ depth)
tokens of the GGUF's own vocabulary, exactly tg tokens come back, the depth is primed apart, and
the prefix-cache mode reuses the cache on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from llmbench_tui.engine.report import llamabench_results
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.workload import Workload, cell_prompt, grid_options, make_cells
from llmbench_tui.schema import ModelSpec, Options

pytestmark = pytest.mark.slow


def grid_plan(workload: Workload, **kw) -> Plan:
    kw.setdefault("repetitions", 1)
    kw.setdefault("warmup", 0)
    return Plan(
        models=[ModelSpec.parse("embedded")],
        prompts=[cell_prompt(c) for c in workload.cells],
        options=grid_options(Options(temperature=0.0, seed=1), workload),
        workload=workload,
        **kw,
    )


async def test_every_cell_has_exactly_the_requested_tokens():
    workload = Workload(make_cells([16, 100, 333], [1, 9], [0, 77]))
    fin = await Engine(grid_plan(workload)).run()
    assert len(fin.records) == 12
    for rec in fin.records:
        assert rec.status == "ok", rec.error
        w = rec.workload
        # The stored prompt count is the engine's own, and exactly pp + depth.
        assert rec.tokens.prompt == w["pp"] + w["depth"] == w["prompt_tokens_requested"]
        assert w["prompt_tokens_reported"] == w["prompt_tokens_fitted"] == rec.tokens.prompt
        assert w["exact_prompt"] is True and w["count_method"] == "tokenizer"
        # Exactly tg tokens: end-of-sequence does not stop a grid run.
        assert rec.tokens.output == w["tg"] and w["exact_output"] is True
        # The depth was evaluated before timing: llama.cpp's prefill counter saw pp tokens.
        assert rec.server.prompt_eval_count == w["pp"]
        assert (w["context_prime_s"] is not None) == bool(w["depth"])
        assert rec.options["prompt_format"].startswith("raw")
        assert not w["flags"], w["flags"]
    rows = {(e["test"]) for e in llamabench_results([r.to_json() for r in fin.records])}
    assert {"pp333", "tg9 @ d333", "pp333+tg9", "pp333 @ d77", "tg9 @ d410"} <= rows


async def test_prefix_cache_mode_reports_the_reuse_apart():
    workload = Workload(make_cells([200], [4], [0]), prefix_cache=True)
    fin = await Engine(grid_plan(workload, repetitions=2)).run()
    first = [r for r in fin.records if r.workload["cache_role"] == "first"]
    repeat = [r for r in fin.records if r.workload["cache_role"] == "repeat"]
    assert len(first) == len(repeat) == 2
    assert {r.prompt_id for r in repeat} == {"pp200+tg4+cache"}
    for a, b in zip(first, repeat, strict=True):
        assert a.tokens.prompt == b.tokens.prompt == 200
        assert a.server.prompt_eval_count == 200
        assert b.server.prompt_eval_count < 10  # the prompt came from the cache
    groups = {g.prompt_id for g in fin.groups}
    assert groups == {"pp200+tg4", "pp200+tg4+cache"}


def test_batch_localscore_refuses_grids_and_depth_beyond_context(tmp_path):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data")}
    base = [sys.executable, "-m", "llmbench_tui.cli", "--batch", "--no-store"]
    p = subprocess.run([*base, "--pp", "512", "--depth", "8000"], capture_output=True,
                       text=True, env=env, timeout=120)  # fmt: skip
    assert p.returncode == 2 and "--depth 8000" in p.stderr and "8192" in p.stderr
    p = subprocess.run([*base, "--localscore", "--pp", "64"], capture_output=True, text=True,
                       env=env, timeout=120)  # fmt: skip
    assert p.returncode == 2 and "--localscore runs LocalScore's own nine shapes" in p.stderr


def test_batch_grid_on_the_embedded_model(tmp_path):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "runs.json"
    p = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", "--pp", "64,128", "--tg", "8",
         "--depth", "0,64", "-n", "2", "--warmup", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    for test in ("pp64", "pp128 @ d64", "tg8 @ d192", "pp64+tg8 @ d64"):
        assert f" {test} " in p.stdout, test
    records = json.loads(out.read_text())
    measured = [r for r in records if not r["warmup"]]
    assert len(measured) == 8
    assert all(r["tokens"]["prompt"] == r["workload"]["pp"] + r["workload"]["depth"]
               for r in records)  # fmt: skip
    grids = {r["workload"]["grid"] for r in records}
    assert len(grids) == 1  # the history groups the runs of one grid by this id
