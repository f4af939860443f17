"""Answer quality and run conditions on the dashboard (issues 13 and 10): the engine's events
replayed, a real session against the Ollama-protocol test server (real engine, real scoring,
real store), and a real telemetry hub whose last second was busy."""

from __future__ import annotations

from typing import Any

from support.ollama_server import FakeModel
from support.ui_pilot import dashboard, shown, wait_for
from textual.widgets import DataTable, Input, Static

from llmbench_tui.engine.events import RunFinished, RunStarted, SessionFinished, SessionStarted
from llmbench_tui.engine.stats import summarize
from llmbench_tui.schema import RunRecord
from llmbench_tui.telemetry.conditions import Busy
from llmbench_tui.telemetry.telemetry import TelemetryHub
from llmbench_tui.ui.widgets.results import ResultStrip
from llmbench_tui.ui.widgets.stream_pane import StreamPane

BUSY_WARNING = (
    "other processes used 85 % of the CPU during this run; its figures are not comparable"
)


def _record(spec: str, rid: str, **extra: Any) -> RunRecord:
    return RunRecord(
        id=rid, session_id="s1", started_at="2025-01-01T00:00:00Z", model=spec, model_spec=spec,
        backend="gguf", prompt_id="prompt", prompt="Why?", status="ok", response="Blue.",
        tokens={"prompt": 9, "output": 2, "source": "server"},
        timings={"ttft_s": 0.1, "decode_tok_s": 50.0, "e2e_s": 0.2, "chunks": 2}, **extra,
    )  # fmt: skip


async def test_pane_header_shows_score_warnings_and_threads_of_a_finished_run(make_app):
    """The engine's events carrying records with quality, warnings and conditions, replayed
    (the live figures of a real run are never the same twice; the real run is below)."""
    app = make_app([])
    async with app.run_test(size=(120, 36)) as pilot:
        dash = dashboard(app)
        dash.prepare_panes(["embedded", "other"], runs_per_model=2)
        await pilot.pause()
        dash.on_engine_event(SessionStarted(session_id="s1", total_runs=4, models=["embedded"]))
        records = []
        for i, (spec, score) in enumerate([("embedded", 8.0), ("embedded", 7.0),
                                           ("other", None), ("other", 4.0)]):  # fmt: skip
            extra: dict[str, Any] = {}
            if score is not None:
                extra["quality"] = {"score": score, "checks": []}
            if spec == "embedded" and i == 1:
                extra["warnings"] = [BUSY_WARNING + " [bold]\x1b[2J"]
                extra["efficiency"] = {"conditions": {"threads": 4, "busy": True}}
            rec = _record(spec, f"r{i}", **extra)
            dash.on_engine_event(RunStarted(run_id=rec.id, session_id="s1", model=spec,
                                            prompt_id="prompt", repetition=i % 2, warmup=False,
                                            cold=False, stream=0, index=i + 1, total_runs=4))
            dash.on_engine_event(RunFinished(record=rec, index=i + 1, total_runs=4))
            records.append(rec)
            if i == 2:  # a run without a score shows none, even after a scored one
                await pilot.pause(0.3)
                assert "score" not in pane(dash, "other").state.header().plain
        dash.on_engine_event(SessionFinished(session_id="s1", records=records, cancelled=False,
                                             stored=True, groups=summarize(records)))
        await pilot.pause(0.4)
        header = pane(dash, "embedded").state.header().plain
        assert header.startswith("● ok 2/2 ! warning  embedded  score 7.0/10\n")
        assert header.endswith("  4 threads")
        text = pane(dash, "embedded").log_widget.text
        assert f"! warning: {BUSY_WARNING} [bold]" in text and "\x1b" not in text
        assert "score 4.0/10" in pane(dash, "other").state.header().plain
        # The result strip: score per model over its scored counted runs.
        strip = dash.query_one(ResultStrip)
        assert strip.has_class("-scored")
        line = shown(strip.query_one("#score-line", Static))
        assert line == "score (0-10): embedded 7.5 ± 0.7 (n=2) · other 4.0 (n=1)"
        summary = strip.query_one("#summary-table", DataTable)
        assert "score" in [str(c.label) for c in summary.columns.values()]


def pane(dash, label: str) -> StreamPane:
    return next(p for p in dash.query(StreamPane) if p.state.label == label)


async def test_a_scored_suite_run_shows_its_score_in_the_pane(make_app, ollama_server, tmp_path):
    """Real engine, real scoring and a real store: a suite whose prompt has checks, loaded with
    F4 against the Ollama-protocol test server; the answer has "blue" but not "green"."""

    ollama_server.add_model(FakeModel("scored:1b"))
    spec = f"ollama:scored:1b@{ollama_server.url}"
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'name = "scored"\nmodels = ["{spec}"]\nrepetitions = 2\nwarmup = 0\n'
        '[[prompts]]\nid = "sky"\ntext = "Why is the sky blue?"\n'
        '[[prompts.checks]]\nkind = "contains"\ntext = "blue"\n'
        '[[prompts.checks]]\nkind = "contains"\ntext = "green"\n',
        encoding="utf-8",
    )
    app = make_app([])
    async with app.run_test(size=(120, 36)) as pilot:
        dash = dashboard(app)
        await pilot.press("f4")
        await pilot.pause()
        box = app.screen.query_one("#suite-path", Input)
        box.value = str(suite)
        box.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: dash.last_finished is not None, 60)
        await pilot.pause(0.3)
        records = dash.last_finished.records
        assert [r.quality.score for r in records] == [5.0, 5.0]
        assert "score 5.0/10" in pane(dash, spec).state.header().plain
        line = shown(dash.query_one("#score-line", Static))
        assert line.startswith("score (0-10): ") and "5.0 ± 0.0 (n=2)" in line
        stored = app.store.get_run(records[0].id)
        assert stored["quality"]["score"] == 5.0


class BusyHub(TelemetryHub):
    """The real hub and sampler, whose last second was busy with other work (a compiler)."""

    def recent_busy(self, seconds: float = 1.0) -> Busy:
        compiler = {"pid": 1, "name": "cc1plus [bold]\x1b[2J", "cpu_pct": 170.0}
        return Busy(other_cpu_pct=85.0, cpu_pct=97.0, ours_cpu_pct=2.0, cpus=2, seconds=1.0,
                    load_avg=(3.5, 2.0, 1.0), top=[compiler])  # fmt: skip


async def test_a_busy_machine_is_warned_about_and_recorded_with_the_session(
    make_app, ollama_server, tmp_path
):
    from textual.widgets._toast import Toast

    ollama_server.add_model(FakeModel("quick:1b"))
    spec = f"ollama:quick:1b@{ollama_server.url}"
    app = make_app([spec])
    app.hub = BusyHub(interval_s=0.25, data_dir=tmp_path / "data")
    app.hub.start()
    try:
        async with app.run_test(size=(120, 36), notifications=True) as pilot:
            dash = dashboard(app)
            await wait_for(pilot, lambda: dash.query_one("#picker").sources, 30)
            dash.query_one("#prompt").text = "Hi."
            await pilot.press("f5")
            await wait_for(pilot, lambda: dash.last_finished is not None, 60)
            toasts = [t._notification for t in app.screen.query(Toast)]
            busy = next(n for n in toasts if n.title == "machine busy")
            assert busy.message.startswith("the machine is not idle: other processes used 85 % "
                                           "of the CPU (cc1plus [bold] 170 %)")  # fmt: skip
            assert "may not be comparable" in busy.message and not busy.markup
            assert busy.severity == "warning" and "\x1b" not in busy.message
            session = app.store.get_session(dash.last_finished.session_id)
            conditions = session["environment"]["conditions"]
            assert conditions["other_cpu_pct"] == 85.0 and conditions["idle"] is False
            assert app.hub.pre_session is None  # taken by the session
    finally:
        app.hub.stop()


async def test_an_idle_machine_gets_no_warning(make_app, tmp_path):
    class IdleHub(TelemetryHub):
        def recent_busy(self, seconds: float = 1.0) -> Busy:
            return Busy(other_cpu_pct=2.0, cpu_pct=5.0, ours_cpu_pct=3.0, cpus=2, seconds=1.0)

    app = make_app([])
    app.hub = IdleHub(interval_s=0.25, data_dir=tmp_path / "data")
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        dash = dashboard(app)
        busy = dash.warn_if_busy()
        await pilot.pause()
        assert busy is not None and busy.idle
        assert app.hub.pre_session is busy  # stored with the session all the same
        from textual.widgets._toast import Toast

        assert not [t for t in app.screen.query(Toast) if t._notification.title == "machine busy"]
