"""The open-loop rate sweep in the dashboard's result strip: latency against throughput, one point
per offered rate, with the saturation sentence and a client-bound level named (a real session
against the Ollama-protocol test server, shown in ``SessionExtras``)."""

from __future__ import annotations

import io

from rich.console import Console
from support.ollama_server import FakeModel
from textual.app import App
from textual.widgets import Static

from llmbench_tui.engine.arrivals import Arrival, LoadSpec
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.workload import Workload
from llmbench_tui.schema import ModelSpec, Options, PromptSpec
from llmbench_tui.ui.sweep_chart import SeriesChart
from llmbench_tui.ui.widgets.session_extras import SessionExtras


def plain(renderable) -> str:
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


class ExtrasApp(App):
    def compose(self):
        yield SessionExtras()


async def test_rate_sweep_chart_names_saturation_and_the_client_bound_level(ollama_server):
    # 3,000 tokens per answer at once: the 60 req/s level starves the one client process.
    ollama_server.add_model(FakeModel("flood:1m", tokens=[f"t{i} " for i in range(3000)],
                                      token_delay_s=0.0))  # fmt: skip
    load = LoadSpec([2.0, 60.0], Arrival("constant"), requests=12, seed=2, workers=1)
    plan = Plan(
        models=[ModelSpec.parse(f"ollama:flood:1m@{ollama_server.url}")],
        prompts=[PromptSpec(id="p", text="go")],
        options=Options(max_tokens=4000),
        repetitions=1,
        warmup=0,
        workload=Workload([], [1], [], load=load),
    )
    finished = await Engine(plan).run()
    app = ExtrasApp()
    async with app.run_test(size=(120, 40)) as pilot:
        extras = app.query_one(SessionExtras)
        extras.show(finished.records, plan)
        await pilot.pause()
        chart = extras.query_one(SeriesChart)
        assert chart.title.startswith("latency p50 s vs output tok/s")
        ((label, (xs, ys)),) = chart.series.items()
        assert "flood:1m" in label and len(xs) == len(ys) == 2
        notes = plain(extras.query_one(".extras-notes", Static).content)
        assert "req/s" in notes and ("saturat" in notes)
        assert "CLIENT-BOUND" in notes and "at 60 req/s" in notes
        assert "the load generator, not the server, limited these figures" in notes
