"""The dashboard driven as a user would, with Pilot: real inference (the embedded SmolLM2 and the
Ollama-protocol test server), the real engine, a real store in a temporary data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.ollama_server import FakeModel, OllamaTestServer
from support.ui_pilot import dashboard, screen_text, wait_for
from textual.widgets import Input, SelectionList, TabbedContent

from llmbench_tui.store import RunQuery
from llmbench_tui.ui.dashboard import Dashboard
from llmbench_tui.ui.widgets.dialogs import KeyHelp
from llmbench_tui.ui.widgets.model_picker import ModelPicker
from llmbench_tui.ui.widgets.stream_pane import StreamPane

pytestmark = pytest.mark.slow

SIZE = (120, 36)


async def type_prompt_and_run(pilot, text: str, max_tokens: int = 12) -> Dashboard:
    dash = dashboard(pilot.app)
    await wait_for(pilot, lambda: dash.query_one(ModelPicker).sources)  # discovery done
    dash.query_one("#prompt").focus()
    await pilot.press(*text)
    dash.query_one("#opt-max_tokens", Input).value = str(max_tokens)
    await pilot.press("f5")
    await wait_for(pilot, lambda: dash.running or dash.last_finished is not None, 10)
    return dash


def pane_for(dash: Dashboard, label: str) -> StreamPane:
    return next(p for p in dash.query(StreamPane) if p.state.label == label)


async def test_two_models_stream_side_by_side_and_both_runs_are_stored(make_app) -> None:
    with OllamaTestServer([FakeModel("fake:1b", token_delay_s=0.01)]) as server:
        ollama = f"ollama:fake:1b@{server.url}"
        app = make_app(["embedded", ollama])
        async with app.run_test(size=SIZE) as pilot:
            dash = await type_prompt_and_run(pilot, "Say hello.")
            assert len(dash.query(StreamPane)) == 2
            await wait_for(pilot, lambda: dash.last_finished is not None)
            await pilot.pause(0.2)
            records = dash.last_finished.records
            assert [r.status for r in records] == ["ok", "ok"]
            assert {r.model_spec for r in records} == {"embedded", ollama}
            for rec in records:
                pane = pane_for(dash, rec.model_spec)
                assert rec.response.strip()[:20] in pane.log_widget.text
                assert pane.state.status == "ok"
                assert pane.state.tokens == rec.tokens.output
            assert dash.query_one(".side-by-side")  # 120 columns: panes side by side
            stored = app.store.query(RunQuery(session_id=dash.last_finished.session_id))
            assert len(stored) == 2
            assert {r["prompt"] for r in stored} == {"Say hello."}
            assert app.settings.recent_prompts[0] == "Say hello."
            assert dash.query_one("#results").has_class("-shown")


async def test_a_second_session_replaces_the_panes(make_app) -> None:
    """Found by hand in tmux: the second F5 crashed on duplicate pane ids."""
    with OllamaTestServer([FakeModel("fake:1b", token_delay_s=0.002)]) as server:
        spec = f"ollama:fake:1b@{server.url}"
        app = make_app([spec])
        async with app.run_test(size=SIZE) as pilot:
            dash = await type_prompt_and_run(pilot, "One.")
            await wait_for(pilot, lambda: dash.last_finished is not None, 30)
            first = dash.last_finished.session_id
            await pilot.press("f5")
            await wait_for(pilot, lambda: dash.last_finished is not None
                           and dash.last_finished.session_id != first, 30)
            await pilot.pause(0.2)
            assert len(dash.query(StreamPane)) == 1
            assert app.store.count() == 2
            assert pane_for(dash, spec).state.status == "ok"


async def test_escape_cancels_and_the_partial_answer_is_stored(make_app) -> None:
    words = [f" word{i}" for i in range(200)]
    with OllamaTestServer([FakeModel("slow:1b", tokens=words, token_delay_s=0.05)]) as server:
        spec = f"ollama:slow:1b@{server.url}"
        app = make_app([spec])
        async with app.run_test(size=SIZE) as pilot:
            dash = await type_prompt_and_run(pilot, "Count.", max_tokens=500)
            await wait_for(pilot, lambda: pane_for(dash, spec).state.tokens >= 5, 30)
            await pilot.press("escape")
            await wait_for(pilot, lambda: dash.last_finished is not None, 30)
            (rec,) = dash.last_finished.records
            assert dash.last_finished.cancelled
            assert rec.status == "cancelled"
            assert rec.response.startswith(" word0 word1")
            assert 0 < len(rec.response.split()) < 200
            stored = app.store.get_run(rec.id)
            assert stored["status"] == "cancelled" and stored["response"] == rec.response
            await pilot.pause(0.2)
            assert "cancelled" in pane_for(dash, spec).log_widget.text
            # Still responsive: the key help opens and closes.
            await pilot.press("f1")
            assert isinstance(app.screen, KeyHelp)
            await pilot.press("escape")
            assert isinstance(app.screen, Dashboard)


async def test_server_down_shows_the_sentence_in_the_pane(make_app, dead_url: str) -> None:
    with OllamaTestServer([FakeModel("ok:1b")]) as server:
        good, bad = f"ollama:ok:1b@{server.url}", f"ollama:gone:1b@{dead_url}"
        app = make_app([bad, good])
        async with app.run_test(size=SIZE) as pilot:
            dash = await type_prompt_and_run(pilot, "Hi.")
            await wait_for(pilot, lambda: dash.last_finished is not None, 60)
            await pilot.pause(0.2)
            by_spec = {r.model_spec: r for r in dash.last_finished.records}
            assert by_spec[bad].status == "error" and by_spec[good].status == "ok"
            sentence = by_spec[bad].error
            assert "127.0.0.1" in sentence
            pane = pane_for(dash, bad)
            assert sentence in pane.log_widget.text.replace("\n", "")
            assert pane.state.status == "error"
            assert by_spec[good].response.strip()[:15] in pane_for(dash, good).log_widget.text


async def test_hostile_output_is_shown_inert(make_app) -> None:
    tokens = ["[bold red]x[/] ", "[link=http://evil]click[/link] ", "\x1b[2J", "\x07",
              "\x1b]52;c;aGk=\x07", "\x1b[31m", "done"]
    with OllamaTestServer([FakeModel("evil:1b", tokens=tokens)]) as server:
        spec = f"ollama:evil:1b@{server.url}"
        app = make_app([spec])
        async with app.run_test(size=SIZE) as pilot:
            dash = await type_prompt_and_run(pilot, "Be evil.")
            await wait_for(pilot, lambda: dash.last_finished is not None, 30)
            await pilot.pause(0.2)
            (rec,) = dash.last_finished.records
            assert "\x1b[2J" in rec.response  # stored exactly as received
            log = pane_for(dash, spec).log_widget
            assert "[bold red]x[/] [link=http://evil]click[/link] done" in log.text
            drawn = "".join(log.render_line(y).text for y in range(log.size.height))
            assert "[bold red]x[/]" in drawn and "\x1b" not in drawn and "\x07" not in drawn
            # Nothing took over the screen: the rest of the dashboard still draws.
            assert "llmbench" in str(dash.query_one("#status-line").render())


async def test_narrow_terminal_uses_tabs_and_zoom_puts_panes_side_by_side(make_app) -> None:
    long = "a-model-with-a-long-name-that-widens-its-header:1b"  # wider than half the screen
    with OllamaTestServer([FakeModel(long), FakeModel("b:1b")]) as server:
        specs = [f"ollama:{long}@{server.url}", f"ollama:b:1b@{server.url}"]
        app = make_app(specs)
        async with app.run_test(size=(80, 24)) as pilot:
            dash = await type_prompt_and_run(pilot, "Hi.")
            await wait_for(pilot, lambda: dash.last_finished is not None, 30)
            await pilot.pause(0.1)
            assert len(dash.query(TabbedContent)) == 1
            texts = [p.log_widget.text for p in dash.query(StreamPane)]
            dash.query_one("#run-button").focus()  # leave the editor for letter keys
            await pilot.press("z")  # zoom: the setup column hides, output gets 80 columns
            await wait_for(pilot, lambda: bool(dash.query(".side-by-side")), 5)
            await pilot.pause(0.2)
            panes = list(dash.query(StreamPane))
            assert [p.log_widget.text for p in panes] == texts
            # Each pane takes its share of the 80 columns and its text is wrapped to it (found
            # in tmux: a stale CSS id left panes as wide as their text, cut at the edge).
            for pane in panes:
                log = pane.log_widget
                assert pane.size.width <= 41
                assert max(len(line.rstrip()) for line in log.visual_lines) <= log.size.width


async def test_model_picker_filters_and_shows_unreachable_sources(make_app, dead_url) -> None:
    with OllamaTestServer([FakeModel("alpha:1b"), FakeModel("beta:2b")]) as server:
        app = make_app([], ollama_host=server.url)
        app_env_dead = dead_url
        async with app.run_test(size=SIZE) as pilot:
            dash = dashboard(app)
            picker = dash.query_one(ModelPicker)
            await wait_for(pilot, lambda: picker.sources, 30)
            listing = picker.query_one(SelectionList)
            prompts = [listing.get_option_at_index(i).prompt.plain
                       for i in range(listing.option_count)]
            assert any(p.startswith("embedded") for p in prompts)
            assert any(p.startswith("alpha:1b") for p in prompts)
            # The list has focus at start; Space, Down, Space ticks the first two rows.
            assert app.focused is listing
            await pilot.press("space", "down", "space")
            assert picker.chosen == [listing.get_option_at_index(0).value,
                                     listing.get_option_at_index(1).value]
            await pilot.press("up", "space", "down", "space")  # untick both again
            assert picker.chosen == []
            await pilot.press("slash", *"beta")  # "/" jumps to the filter box
            shown = [listing.get_option_at_index(i).prompt.plain
                     for i in range(listing.option_count)]
            assert len(shown) == 1 and shown[0].startswith("beta:2b")
            await pilot.press("enter", "space")  # into the list, tick the one row
            assert picker.chosen == [f"ollama:beta:2b@{server.url}"]
            assert app_env_dead  # the default host is dead in this test's environment
        # An unreachable host is a disabled row carrying the backend's sentence.
        app = make_app([], ollama_host=dead_url)
        async with app.run_test(size=SIZE) as pilot:
            picker = dashboard(app).query_one(ModelPicker)
            await wait_for(pilot, lambda: picker.sources, 30)
            ollama = next(s for s in picker.sources if s.kind == "ollama")
            assert ollama.error and not ollama.models
            listing = picker.query_one(SelectionList)
            rows = [listing.get_option_at_index(i) for i in range(listing.option_count)]
            bad = [r for r in rows if r.disabled]
            assert bad and ollama.error[:30] in bad[0].prompt.plain


async def test_key_help_lists_every_binding_with_the_users_keys(make_app, tmp_path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.toml").write_text('[keys]\nrun = "f8"\n', encoding="utf-8")
    app = make_app([])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        help_screen = app.screen
        assert isinstance(help_screen, KeyHelp)
        ids = {row[2] for row in help_screen.rows}
        assert {b.id for b in Dashboard.BINDINGS} <= ids
        keys = {row[2]: row[0] for row in help_screen.rows}
        assert keys["run"] == "f8"
        # Nothing is reachable only through keys terminals swallow.
        for row_keys, _, _ in help_screen.rows:
            assert {k.strip() for k in row_keys.split(",")} - {"ctrl+enter", "ctrl+s", "ctrl+j"}


async def test_theme_from_the_command_line_and_remembered(make_app, tmp_path) -> None:
    app = make_app([], theme="llmbench-256")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "llmbench-256"
        app.theme = "llmbench-light"
        await pilot.pause(0.1)
    saved = (tmp_path / "cfg" / "config.toml").read_text(encoding="utf-8")
    assert 'theme = "llmbench-light"' in saved
    app = make_app([])
    async with app.run_test(size=(80, 24)):
        assert app.theme == "llmbench-light"
    with pytest.raises(ValueError, match="unknown theme 'nope'"):
        make_app([], theme="nope")


async def test_a_rerun_request_fills_the_form(make_app) -> None:
    from llmbench_tui.ui.history import RerunRequest

    app = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        dash = dashboard(app)
        await wait_for(pilot, lambda: dash.query_one(ModelPicker).sources, 30)
        await pilot.press("f2")
        assert type(app.screen).__name__ == "HistoryScreen"
        await app.workers.wait_for_complete()  # its first page query, as a user would see it
        await pilot.pause(0.1)
        app.screen.dismiss(RerunRequest("embedded", "Again?", "Be brief.",
                                        {"temperature": 0.2, "max_tokens": 7, "seed": 3}))
        await pilot.pause(0.1)
        assert app.screen is dash
        assert dash.query_one(ModelPicker).chosen == ["embedded"]
        assert dash.query_one("#prompt").text == "Again?"
        assert dash.query_one("#system", Input).value == "Be brief."
        options, _ = dash.query_one("#options").read()
        assert (options.temperature, options.max_tokens, options.seed) == (0.2, 7, 3)


async def test_meters_move_while_idle(make_app) -> None:
    app = make_app([], hub=True)
    app.hub.start()
    try:
        async with app.run_test(size=SIZE) as pilot:
            meter = dashboard(app).query_one("#meter-cpu")
            await wait_for(pilot, lambda: len(meter.values) >= 3, 10)
            line = dashboard(app).query_one("#meter-ram")
            assert line.values and line.values[-1] > 0
    finally:
        app.hub.stop()


HOSTILE = "[/] [@click=app.quit]x[/] \x1b[2J"  # closes nothing, a live action, clears the screen
HOSTILE_SHOWN = "[/] [@click=app.quit]x[/] "  # what the screen must show instead


async def test_hostile_names_and_error_sentences_are_shown_inert(
    make_app, smollm_path: Path, tmp_path: Path
) -> None:
    """Names come from files and servers: a GGUF file whose path holds markup and an escape, and
    an Ollama error sentence holding the same (Ollama refuses such model names, so the server's
    error message carries them). Neither may crash the app, run an action or reach the terminal."""
    from textual.widgets._toast import Toast

    from llmbench_tui.ui.history import RerunRequest

    # "[/]" needs a "/" in the path: the brackets end and start directory names.
    folder = tmp_path / "a [" / "] [@click=app.quit]x["
    folder.mkdir(parents=True)
    evil_file = folder / "] \x1b[2J.gguf"
    evil_file.symlink_to(smollm_path)
    gguf = f"gguf:{evil_file}"
    assert HOSTILE in gguf
    model = FakeModel("crash:1b", fault="error_midstream", fault_after=2, token_delay_s=0.02,
                      error_message=f"runner died {HOSTILE}end")
    with OllamaTestServer([model]) as server:
        ollama = f"ollama:crash:1b@{server.url}"
        app = make_app([gguf, ollama])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            # Every status line drawn (a run can start and end between two polls of a test).
            status = dashboard(app).query_one("#status-line")
            lines: list[str] = []
            draw_status = status.update

            def spy(content, **kwargs) -> None:
                lines.append(str(content))
                draw_status(content, **kwargs)

            status.update = spy
            dash = await type_prompt_and_run(pilot, "Hi.", max_tokens=32)
            await wait_for(pilot, lambda: dash.last_finished is not None, 120)
            await pilot.pause(0.3)
            by_spec = {r.model_spec: r for r in dash.last_finished.records}
            assert by_spec[gguf].status == "ok" and by_spec[ollama].status == "error"
            assert HOSTILE in by_spec[ollama].error  # stored exactly as the server said it
            # Status line while the GGUF model ran: its name, inert.
            assert any(HOSTILE_SHOWN in line for line in lines), lines
            assert not any("\x1b" in line for line in lines)
            # Pane headers.
            header = pane_for(dash, gguf).state.header().plain
            assert HOSTILE_SHOWN + ".gguf" in header and "\x1b" not in header
            # The error toast: literal text, markup off.
            toasts = list(app.screen.query(Toast))
            messages = [t._notification.message for t in toasts]
            error = next(m for m in messages if m.startswith(ollama))
            assert f"runner died {HOSTILE_SHOWN}end" in error
            assert all(not t._notification.markup for t in toasts)
            assert any(HOSTILE_SHOWN in str(t.render()) for t in toasts)
            # Result strip: table cells (the GGUF model's row) and footnotes (the error).
            table = dash.query_one("#summary-table")
            cells = [c.plain for i in range(table.row_count) for c in table.get_row_at(i)]
            assert any(HOSTILE_SHOWN + ".gguf" in c for c in cells)
            assert not any("\x1b" in c for c in cells)
            notes = str(dash.query_one("#results .notes").render())
            assert f"runner died {HOSTILE_SHOWN}end" in notes and "\x1b" not in notes
            # Nothing on screen carries an escape; the pane text still shows the brackets.
            drawn = screen_text(app)
            assert "\x1b" not in drawn and "[@click=app.quit]x[/]" in drawn
            # A re-run of a run whose spec holds markup: the toast is literal, no MarkupError.
            dash.apply_rerun(RerunRequest(gguf, "Again.", None, {}))
            await pilot.pause(0.2)
            loaded = [str(t.render()) for t in app.screen.query(Toast)]
            assert any(f"loaded gguf:{tmp_path}" in m and HOSTILE_SHOWN in m for m in loaded)
            assert "\x1b" not in screen_text(app)
            # Still running and responsive: the key help opens and closes.
            assert app.is_running and app.return_code is None
            dash.query_one("#run-button").focus()
            await pilot.press("f1")
            assert isinstance(app.screen, KeyHelp)
            await pilot.press("escape")
            assert isinstance(app.screen, Dashboard)
