"""Open-loop load on the two llama.cpp backends: the in-process GGUF engine (one request at a
time, and the report says so) and an OpenAI-compatible server (``python -m llama_cpp.server``),
each with a small size grid so the prompts are exact."""

from __future__ import annotations

from llmbench_tui.commands.batch import workload_report
from llmbench_tui.engine.arrivals import Arrival, LoadSpec
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.workload import Workload, cell_prompt, make_cells
from llmbench_tui.schema import ModelSpec, Options


def grid_plan(model: str, load: LoadSpec) -> Plan:
    cells = make_cells([16], [4], [0])
    return Plan(
        models=[ModelSpec.parse(model)],
        prompts=[cell_prompt(c) for c in cells],
        options=Options(num_ctx=2048, temperature=0.0),
        repetitions=1,
        warmup=0,
        workload=Workload(cells, [1], [], load=load),
    )


async def test_gguf_open_loop_serialises_and_says_so():
    load = LoadSpec([4.0], Arrival("constant"), requests=3, seed=1, workers=4)
    plan = grid_plan("embedded", load)
    finished = await Engine(plan).run()
    assert [r.status for r in finished.records] == ["ok"] * 3, [r.error for r in finished.records]
    loads = sorted((r.load for r in finished.records), key=lambda x: x["index"])
    assert [x["scheduled_s"] for x in loads] == [0.0, 0.25, 0.5]
    assert {x["worker"] for x in loads} == {None}  # --workers does not apply in-process
    assert all(r.workload["exact_prompt"] for r in finished.records)
    text, _ = workload_report(plan, finished)
    assert any("runs one request at a time" in line for line in text)


async def test_openai_server_open_loop(llama_server):
    load = LoadSpec([2.0], Arrival("poisson"), requests=3, seed=4, workers=1)
    plan = grid_plan(f"openai:smollm@{llama_server}", load)
    finished = await Engine(plan).run()
    assert [r.status for r in finished.records] == ["ok"] * 3, [r.error for r in finished.records]
    for rec in finished.records:
        assert rec.load["sent_s"] >= rec.load["scheduled_s"] and rec.tokens.output
    text, _ = workload_report(plan, finished)
    assert any("open loop: poisson arrivals, 3 requests per rate" in line for line in text)
