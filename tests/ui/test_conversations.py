"""Conversations, the judge and workload sessions in the UI, driven with Pilot: a real session
against the Ollama-protocol test server (turn separators, a skipped turn, "judging i/N", the
judge in the pane header, per-turn and judge tables), the history's ``J`` grading a stored run,
the run detail's turn chart and verdicts (hostile judge text inert), and the sweep / grid chart."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from support.ollama_server import FakeModel
from support.ui_pilot import wait_for
from textual.app import App
from textual.widgets import Input, Static

from llmbench_tui.conversations import ConversationSpec
from llmbench_tui.engine.judge_runs import JudgeConfig
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.schema import ModelSpec, PromptSpec
from llmbench_tui.store import Store
from llmbench_tui.ui.dashboard import Dashboard
from llmbench_tui.ui.history.app import HistoryApp
from llmbench_tui.ui.judge_dialog import JudgeSpecScreen
from llmbench_tui.ui.run_detail import RunDetailScreen
from llmbench_tui.ui.sweep_chart import SeriesChart
from llmbench_tui.ui.widgets.session_extras import SessionExtras
from llmbench_tui.ui.widgets.stream_pane import StreamPane

pytestmark = pytest.mark.slow

HOSTILE = '{"score": 6, "reason": "[bold]loud[/bold] \\u001b[31mred"}'
TRIP = {"id": "trip", "turns": ["Plan a day in Lisbon.", "Make it cheaper.", "For two."]}


def plain(renderable) -> str:
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def test_conversation_with_a_skipped_turn_and_a_judge_on_the_dashboard(
    make_app, ollama_server
) -> None:
    url = ollama_server.url
    ollama_server.add_model(FakeModel("flaky:1b", fault="error_midstream", fault_after=1,
                                      fault_on=[1], token_delay_s=0.001))
    ollama_server.add_model(FakeModel("talker:1b", replies=["Belem.", "Walk.", "Two."],
                                      token_delay_s=0.001))
    ollama_server.add_model(FakeModel("judge:7b", replies=[HOSTILE, '{"score": 8, "reason": "ok"}'],
                                      token_delay_s=0.001))
    judge = ModelSpec.parse(f"ollama:judge:7b@{url}")
    plan = Plan(models=[ModelSpec.parse(f"ollama:flaky:1b@{url}"),
                        ModelSpec.parse(f"ollama:talker:1b@{url}")],
                prompts=[], conversations=[ConversationSpec.model_validate(TRIP)],
                repetitions=1, warmup=0, ttft_timeout_s=10, stall_timeout_s=10,
                judge=JudgeConfig(spec=judge, repeats=2))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.screen
        assert isinstance(dash, Dashboard)
        seen: list[str] = []
        original = dash.on_engine_event

        def spy(event):
            original(event)
            seen.append(dash._progress)

        dash.on_engine_event = spy
        dash.start(plan)
        await wait_for(pilot, lambda: dash.last_finished is not None)
        await pilot.pause(0.3)
        panes = {p.state.label: p for p in dash.query(StreamPane)}
        flaky = "".join(panes[f"ollama:flaky:1b@{url}"].state.text)
        assert "── trip · turn 1/3 ──" in flaky and "── trip · turn 2/3 ──" in flaky
        assert "── trip · turn 3/3 · skipped ──" in flaky
        assert "[skipped] skipped: turn 2 of conversation 'trip'" in flaky
        talker = panes[f"ollama:talker:1b@{url}"].state
        assert "── trip · turn 3/3 ──" in "".join(talker.text)
        # The talker's 3 turns are judged (the flaky model's one ok turn too): 4 in all.
        assert "judging 1/4: " + f"ollama:flaky:1b@{url}" in seen
        assert any(s.startswith("judging 4/4") for s in seen)
        assert "judge 7.0 ± 1.4" in talker.header().plain
        # Under the summary: one per-turn table per model and the judge table.
        extras = dash.query_one(SessionExtras)
        assert extras.has_class("-shown")
        texts = [plain(s.content) for s in extras.query(Static)]
        assert any("conversation trip" in t and "1/1" in t and "0/1" in t for t in texts)
        assert any("judge (a model's opinion" in t and "ollama:judge:7b" in t for t in texts)

        # The run detail of talker's turn 2: TTFT and prompt tokens against the turn over the
        # conversation's 3 runs, and the judge's verdicts, hostile text inert.
        rec = next(r for r in dash.last_finished.records
                   if r.model == "talker:1b" and r.turn == 2).to_json()
        app.push_screen(RunDetailScreen(rec, None))
        await wait_for(pilot, lambda: app.screen.query("#chart-turns"))
        chart = app.screen.query_one("#chart-turns", SeriesChart)
        assert chart.series["TTFT s"][0] == [1.0, 2.0, 3.0]
        assert chart.right["prompt tokens"][0] == [1.0, 2.0, 3.0]
        verdicts = plain(app.screen.query_one("#judge-verdicts", Static).content)
        assert "[bold]loud[/bold]" in verdicts and "\x1b" not in verdicts
        assert "6" in verdicts and "8" in verdicts
        await pilot.press("j")
        assert app.screen.query_one("#detail-tabs").active == "tab-judge"


async def test_history_judges_the_marked_run(ollama_server, tmp_path) -> None:
    url = ollama_server.url
    ollama_server.add_model(FakeModel("judge:7b", replies=['{"score": 9, "reason": "good"}'],
                                      token_delay_s=0.001))
    store = Store(tmp_path / "history.json")
    try:
        plan = Plan(models=[ModelSpec.parse(f"ollama:smollm-fake:135m@{url}")],
                    prompts=[PromptSpec(id="capital", text="Capital of France?")],
                    repetitions=1, warmup=0, ttft_timeout_s=10, stall_timeout_s=10)
        fin = await Engine(plan, store=store).run()
        run_id = fin.records[0].id
        app = HistoryApp(store, tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.screen.query("DataTable")
                           and app.screen.current_record() is not None)
            await pilot.press("J")
            await wait_for(pilot, lambda: isinstance(app.screen, JudgeSpecScreen))
            assert app.screen.query_one("#judge-spec", Input).value == "embedded"
            app.screen.query_one("#judge-spec", Input).value = f"ollama:judge:7b@{url}"
            await pilot.press("enter")
            await wait_for(pilot, lambda: (store.get_run(run_id).get("quality") or {})
                           .get("judge") is not None)
            await wait_for(pilot, lambda: any("judged 1 run" in str(n.message)
                                              for n in app._notifications))
            messages = [str(n.message) for n in app._notifications]
            assert any("judged 1/1" in m and "judge 9.0" in m for m in messages)
            assert app.last_judge_spec == f"ollama:judge:7b@{url}"
        assert store.get_run(run_id)["quality"]["judge"]["mean"] == 9.0
    finally:
        store.close()


def _sweep_record(level: int, tokens: int, round_s: float, **extra) -> dict:
    return {"model_spec": "m", "backend": "ollama", "host": "h", "prompt_id": "p",
            "status": "ok", "concurrency": level, "concurrent": {"round": 0, "round_s": round_s},
            "tokens": {"output": tokens}, "timings": {"decode_tok_s": 10.0},
            "workload": {"test": "pp64+tg16", "pp": 64, "tg": 16, "depth": 0}, **extra}


def _grid_record(depth: int, rate: float) -> dict:
    return {"model_spec": "m\x1b[31m", "backend": "gguf", "host": None, "prompt_id": "cell",
            "status": "ok", "concurrency": 1, "tokens": {"output": 16, "prompt": 64},
            "timings": {"ttft_s": 0.5, "e2e_s": 1.0, "decode_tok_s": 20.0},
            "server": {"prompt_tok_s": rate, "decode_tok_s": 20.0},
            "workload": {"test": f"pp64 @ d{depth}", "pp": 64, "tg": 16, "depth": depth}}


class ExtrasApp(App):
    def compose(self):
        yield SessionExtras()


async def test_sweep_and_grid_charts_with_the_llamabench_table() -> None:
    sweep = [_sweep_record(1, 100, 10.0), _sweep_record(2, 200, 10.0),
             _sweep_record(2, 200, 10.0), _sweep_record(4, 400, 20.0)]
    sweep += [_sweep_record(4, 400, 20.0) for _ in range(3)]
    app = ExtrasApp()
    async with app.run_test(size=(100, 40)) as pilot:
        extras = app.query_one(SessionExtras)
        extras.show(sweep)
        await pilot.pause()
        chart = extras.query_one(SeriesChart)
        assert chart.title == "aggregate tok/s vs concurrency"
        assert chart.series["m p agg"] == ([1.0, 2.0, 4.0], [10.0, 40.0, 80.0])
        notes = plain(extras.query_one(".extras-notes", Static).content)
        assert "still growing at c=4" in notes

        extras.show([_grid_record(0, 500.0), _grid_record(512, 300.0)])
        await pilot.pause()
        chart = extras.query_one(SeriesChart)
        assert chart.title == "prompt tok/s vs depth"
        ((label, (xs, ys)),) = chart.series.items()
        assert "\x1b" not in label and xs == [0.0, 512.0] and ys == [500.0, 300.0]
        tables = "".join(plain(s.content) for s in extras.query(Static))
        assert "llama-bench" in tables and "pp64 @ d512" in tables and "\x1b" not in tables

        extras.show([])  # a plain session: hidden, the bar charts stay
        await pilot.pause()
        assert not extras.has_class("-shown")


async def _run_suite_file(pilot, path: Path) -> None:
    """F4, type the suite's path, Enter: as a user loads a suite."""
    await pilot.press("f4")
    await pilot.pause()
    field = pilot.app.screen.query_one("#suite-path", Input)
    field.value = str(path)
    await pilot.press("enter")


async def test_a_localscore_suite_from_the_dashboard_is_fitted_to_the_model(
    make_app, ollama_server, tmp_path: Path
) -> None:
    """F4 with a LocalScore suite runs the shapes that fit the model's context (as --batch
    does), ends with the LocalScore-formula lines, and a grid beyond the context is refused
    naming the value before anything runs."""
    url = ollama_server.url
    ollama_server.add_model(FakeModel("short:1b", context_length=1100, token_delay_s=0.0005))
    suite = tmp_path / "localscore.toml"
    suite.write_text(f'models = ["ollama:short:1b@{url}"]\nrepetitions = 1\nwarmup = 0\n'
                     "[workload]\nlocalscore = true\n")  # fmt: skip
    too_big = tmp_path / "too-big.toml"
    too_big.write_text(f'models = ["ollama:short:1b@{url}"]\n[workload]\npp = [4096]\ntg = [8]\n')
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.screen
        assert isinstance(dash, Dashboard)
        await _run_suite_file(pilot, too_big)
        await wait_for(pilot, lambda: any("4096" in str(n.message) for n in app._notifications))
        assert dash.engine is None and dash.last_finished is None
        assert "context" in next(str(n.message) for n in app._notifications if "4096" in
                                 str(n.message))  # fmt: skip

        await _run_suite_file(pilot, suite)
        await wait_for(pilot, lambda: dash.last_finished is not None)
        await pilot.pause(0.3)
        # pp1024+tg16 and pp64+tg1024 fit 1100 tokens; the other seven shapes do not.
        prompts = sorted({r.prompt_id for r in dash.last_finished.records})
        assert prompts == ["pp1024+tg16", "pp64+tg1024"]
        assert all(r.workload["localscore"] for r in dash.last_finished.records)
        extras = "\n".join(plain(s.content) for s in dash.query_one(SessionExtras).query(Static))
        assert f"LocalScore-formula score: ollama:short:1b@{url}" in extras
        assert "not comparable with LocalScore's published scores" in extras
        assert extras.count("LocalScore: pp") == 7 and "needs 4352 tokens of context" in extras
