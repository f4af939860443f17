"""The history screen driven by keys (Pilot) over a real store seeded with realistic runs."""

from __future__ import annotations

import csv
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from support.seed_history import one_run_store, seed_store
from support.ui_pilot import HistoryTestApp, history, move_to, screen_of, settle, table_ids
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, TextArea

from llmbench_tui.config import db_path
from llmbench_tui.store import RunQuery, Store
from llmbench_tui.ui.charts import cumulative_tokens, telemetry_lines
from llmbench_tui.ui.compare_view import CompareScreen
from llmbench_tui.ui.history import (
    PAGE,
    ConfirmScreen,
    ExportScreen,
    Filters,
    FilterScreen,
    HistoryScreen,
    RerunRequest,
    run_history_app,
)
from llmbench_tui.ui.run_detail import RunDetailScreen
from llmbench_tui.ui.trends import TrendsScreen

N_RUNS = 300


@pytest.fixture(scope="module")
def seeded_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("history")
    store = Store(db_path(directory))
    seed_store(store, N_RUNS)
    store.close()
    return directory


@pytest.fixture
def store(seeded_dir: Path, tmp_path: Path):
    """A private copy of the seeded database (tests delete and must not see each other)."""
    target = tmp_path / "data"
    shutil.copytree(seeded_dir, target)
    store = Store(db_path(target))
    yield store
    store.close()


def _app(store: Store) -> HistoryTestApp:
    return HistoryTestApp(store, store.path.parent)


@asynccontextmanager
async def history_app(
    store: Store, size: tuple[int, int]
) -> AsyncIterator[tuple[Pilot[None], HistoryScreen]]:
    """The history app on ``store`` at ``size``, settled: its pilot and the history screen."""
    async with _app(store).run_test(size=size) as pilot:
        await settle(pilot)
        yield pilot, history(pilot.app)


async def test_opens_newest_first_one_page(store):
    async with history_app(store, (100, 30)) as (_pilot, screen):
        ids = table_ids(screen)
        assert len(ids) == PAGE  # a page, not all 300 rows
        newest = store.query(RunQuery(limit=PAGE))
        assert ids == [r["id"] for r in newest]
        status = str(screen.query_one("#history-status").render())
        assert f"runs 1–{PAGE} of {N_RUNS}" in status
        assert "sort time ▼" in status


async def test_paging_moves_through_all_runs(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        await pilot.press("right_square_bracket")
        await settle(pilot)
        second = store.query(RunQuery(limit=2 * PAGE))[PAGE:]
        assert table_ids(screen) == [r["id"] for r in second]
        # Moving up from the first row goes back a page, the cursor on its last row.
        await pilot.press("up")
        await settle(pilot)
        assert screen.page == 0
        assert screen.query_one("#runs", DataTable).cursor_row == PAGE - 1
        # Moving down from the last row goes forward again.
        await pilot.press("down")
        await settle(pilot)
        assert screen.page == 1


async def test_search_narrows_the_table(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        await pilot.press("slash", *"gemma")
        await settle(pilot, pause=0.3)
        expected = store.query(RunQuery(search="gemma"))
        assert 0 < len(expected) < N_RUNS
        ids = table_ids(screen)
        assert ids == [r["id"] for r in expected[:PAGE]]
        assert all("gemma" in r["model"] for r in screen.rows)
        # Search covers the response text too, case-insensitive.
        await pilot.press("ctrl+u", *"WAVES FOLD")
        await settle(pilot, pause=0.3)
        assert screen.rows and all("waves fold" in r["response"] for r in screen.rows)
        await pilot.press("ctrl+u", *"no-such-text")
        await settle(pilot, pause=0.3)
        assert table_ids(screen) == []
        assert "no runs match" in str(screen.query_one("#history-status").render())


def status_line(screen: HistoryScreen) -> str:
    return str(screen.query_one("#history-status").render())


async def test_status_counts_every_match_of_a_search_and_filter(store):
    """The status line gives the exact number of matches, not "100+", on every page."""
    async with history_app(store, (100, 30)) as (pilot, screen):
        await pilot.press("slash", *"ollama", "enter")  # every ollama model_spec
        await settle(pilot, pause=0.3)
        matches = store.count(RunQuery(search="ollama"))
        assert PAGE < matches < N_RUNS
        assert f"runs 1–{PAGE} of {matches}" in status_line(screen)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert f"runs {PAGE + 1}–{min(2 * PAGE, matches)} of {matches}" in status_line(screen)
        screen.set_filters(Filters(status="ok"))  # the search and the filter combine
        await settle(pilot)
        both = store.count(RunQuery(search="ollama", status="ok"))
        assert PAGE < both < matches
        assert f"runs 1–{PAGE} of {both}" in status_line(screen)
        screen.set_filters(Filters(status="timeout"))  # fewer than a page: the page is all
        await settle(pilot)
        few = len(store.query(RunQuery(search="ollama", status="timeout")))
        assert 0 < few < PAGE
        assert f"runs 1–{few} of {few}" in status_line(screen)


async def test_a_keystroke_that_changes_nothing_shown_keeps_the_cursor(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        await pilot.press("slash", *"gemma", "enter")
        await settle(pilot, pause=0.3)
        gemma = [r["id"] for r in store.query(RunQuery(search="gemma", limit=PAGE))]
        assert gemma == [r["id"] for r in store.query(RunQuery(search="gemma2", limit=PAGE))]
        table = screen.query_one("#runs", DataTable)
        table.move_cursor(row=3)
        loaded = screen.loaded
        await pilot.press("slash", "end", "2", "enter")  # focusing selects the old text
        await settle(pilot, pause=0.3)
        assert screen.loaded > loaded and screen.search == "gemma2"
        assert table_ids(screen) == gemma and table.cursor_row == 3
        await pilot.press("slash", "end", "x")  # now nothing matches: the table empties
        await settle(pilot, pause=0.3)
        assert table_ids(screen) == [] and "no runs match" in status_line(screen)


async def test_table_shows_markup_in_stored_names_as_plain_text(tmp_path):
    """A model name or prompt id is data: "[/x]" must neither style the table nor break it."""
    store = one_run_store(tmp_path, model="[red]evil[/red]", prompt_id="[/broken]")
    async with _app(store).run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = history(pilot.app).query_one("#runs", DataTable)
        first_row = table.render_line(1).text  # line 0 is the header
        assert "[red]evil[/red]" in first_row and "[/broken]" in first_row
    store.close()


async def test_fast_typed_search_never_fires_table_keys(store):
    """Typing "/qd" at once: q and d go to the search box; they must not close or delete."""
    async with history_app(store, (100, 30)) as (pilot, screen):
        table = screen.query_one("#runs", DataTable)
        for key in ("slash", "q", "d"):  # queued on the table before any is handled
            table.post_message(_key(key))
        await settle(pilot, pause=0.3)
        assert screen.query_one("#search", Input).value == "qd"
        assert pilot.app.screen is screen and store.count() == N_RUNS


def _key(name: str):
    from textual import events

    return events.Key(name, "/" if name == "slash" else name)


async def test_sort_by_columns_changes_order(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        before = table_ids(screen)
        await pilot.press("s")  # time -> model, ascending
        await settle(pilot)
        models = [r["model"].casefold() for r in screen.rows]
        assert models == sorted(models)
        assert table_ids(screen) != before
        header = screen.query_one("#runs", DataTable).columns
        assert str(header["model"].label) == "model ▲"
        await pilot.press("s", "s")  # -> status -> TTFT, descending (numbers sort high first)
        await settle(pilot)
        ttfts = [r["timings"]["ttft_s"] for r in screen.rows if r["timings"]["ttft_s"] is not None]
        assert ttfts == sorted(ttfts, reverse=True)
        assert str(header["ttft"].label) == "TTFT s ▼"
        await pilot.press("S")  # reverse
        await settle(pilot)
        ttfts = [r["timings"]["ttft_s"] for r in screen.rows if r["timings"]["ttft_s"] is not None]
        assert ttfts == sorted(ttfts)
        assert "sort TTFT s ▲" in str(screen.query_one("#history-status").render())


async def test_filters_combine_and_are_reachable_by_keys(store):
    async with history_app(store, (100, 40)) as (pilot, screen):
        await pilot.press("f")
        await settle(pilot)
        modal = await screen_of(pilot, FilterScreen, "#f-model")
        # The model list opens and picks with the keyboard.
        assert modal.focused is modal.query_one("#f-model", Select)
        await pilot.press("enter", "down", "enter")
        await pilot.pause()
        model = modal.query_one("#f-model", Select).value
        assert model == modal.choices["model"][0]
        modal.query_one("#f-status", Select).value = "ok"
        modal.query_one("#f-since", Input).focus()
        await pilot.pause()
        await pilot.press(*"2025-03-20", "enter")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert screen.filters.model == model and screen.filters.status == "ok"
        expected = store.query(RunQuery(model=model, status="ok", since="2025-03-20"))
        assert 0 < len(expected) < N_RUNS
        assert table_ids(screen) == [r["id"] for r in expected[:PAGE]]
        assert all(
            r["model"] == model and r["status"] == "ok" and r["started_at"] >= "2025-03-20"
            for r in screen.rows
        )
        assert f"model={model}" in str(screen.query_one("#history-status").render())
        # A filter and a search combine too; x clears the filters.
        await pilot.press("slash", *"haiku", "enter")
        await settle(pilot, pause=0.3)
        assert all(r["prompt_id"] == "haiku" and r["model"] == model for r in screen.rows)
        await pilot.press("x")
        await settle(pilot)
        assert screen.filters.model is None
        assert len(screen.rows) == min(PAGE, len(store.query(RunQuery(search="haiku"))))


async def test_bad_date_in_filter_is_refused_with_a_sentence(store):
    async with _app(store).run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        modal = await screen_of(pilot, FilterScreen, "#f-until")
        modal.query_one("#f-until", Input).focus()
        await pilot.pause()
        await pilot.press(*"last week", "enter")
        await pilot.pause()
        assert pilot.app.screen is modal
        assert "is not a date" in str(modal.query_one("#filter-error").render())


async def test_enter_opens_detail_with_figures_response_and_charts(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        record = move_to(screen, lambda r: r["status"] == "ok" and r.get("efficiency"))
        await pilot.press("enter")
        await pilot.pause()
        detail = pilot.app.screen
        assert isinstance(detail, RunDetailScreen)
        assert detail.query_one("#response", TextArea).text == record["response"]
        figures = detail.query_one("#figures", DataTable)
        row = figures.get_row("decode tok/s")
        assert str(row[1]) == f"{record['timings']['decode_tok_s']:.2f}"
        assert str(row[2]) == f"{record['server']['decode_tok_s']:.2f}"
        figures.move_cursor(row=figures.get_row_index("decode tok/s"))
        await pilot.pause()
        assert "eval_count / eval_duration" in str(detail.query_one("#definition").render())
        await pilot.press("3")
        await pilot.pause()
        series = store.series(record["id"])
        tokens = detail.query_one("#chart-tokens")
        assert tokens.has_data and tokens.counts[-1] == len(series["arrivals_s"])
        assert detail.query_one("#chart-util").has_data
        assert detail.query_one("#chart-power").has_data  # a GPU run: power is charted
        await pilot.press("escape")
        assert pilot.app.screen is screen


async def test_detail_shows_hostile_output_as_plain_text(tmp_path):
    store = one_run_store(
        tmp_path, response="\x1b[2J\x1b]52;c;ZXZpbA==\x07[bold red]owned[/] ok", status="ok"
    )
    async with _app(store).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await pilot.pause()
        text = pilot.app.screen.query_one("#response", TextArea).text
        assert text == "[bold red]owned[/] ok"
    store.close()


async def test_marking_two_runs_and_comparing_shows_both(store):
    async with history_app(store, (120, 40)) as (pilot, screen):
        first = move_to(screen, lambda r: r["status"] == "ok" and not r["warmup"])
        await pilot.press("space")
        second = move_to(
            screen,
            lambda r: r["status"] == "ok" and not r["warmup"] and r["model"] != first["model"],
        )
        await pilot.press("space")
        assert set(screen.marked) == {first["id"], second["id"]}
        assert "2 marked" in str(screen.query_one("#history-status").render())
        await pilot.press("c")
        await pilot.pause()
        compare = pilot.app.screen
        assert isinstance(compare, CompareScreen)
        assert compare.kind == "model"
        labels = [str(c.label) for c in compare.query_one("#compare-table").columns.values()]
        assert any(first["model"] in label for label in labels)
        assert any(second["model"] in label for label in labels)
        row = compare.query_one("#compare-table", DataTable).get_row("timings.decode_tok_s")
        a, b = first["timings"]["decode_tok_s"], second["timings"]["decode_tok_s"]
        assert str(row[1]).startswith(f"{a:.1f}") and str(row[2]).startswith(f"{b:.1f}")
        assert str(row[3]) == f"{(b - a) / a * 100:+.1f}"
        assert str(row[4]) == "n<2"  # one run a side: no spread to judge noise by
        bars = compare.query_one("#bar-decode")
        assert bars.values == pytest.approx([a, b])


async def test_compare_needs_two_marks(store):
    async with _app(store).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("space", "c")
        assert isinstance(pilot.app.screen, HistoryScreen)


async def test_delete_asks_first_and_deletes_only_after_yes(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        victim = screen.rows[0]["id"]
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert store.count() == N_RUNS and victim in table_ids(screen)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("escape")  # Escape is "no" as well
        await settle(pilot)
        assert store.count() == N_RUNS
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert store.count() == N_RUNS - 1
        assert victim not in table_ids(screen)
        assert victim not in {r["id"] for r in store.query(RunQuery())}


async def test_rerun_dismisses_with_the_runs_configuration(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        record = move_to(screen, lambda r: r.get("system"))
        await pilot.press("r")
        await pilot.pause()
        assert pilot.app.result == RerunRequest(
            model_spec=record["model_spec"],
            prompt=record["prompt"],
            system=record["system"],
            options=record["options"],
        )
        assert pilot.app.screen is not screen


async def test_group_by_session_then_model_shows_mean_and_stdev(store):
    async with history_app(store, (140, 30)) as (pilot, screen):
        await pilot.press("g")
        await settle(pilot)
        sessions = {r["session_id"] for r in store.query(RunQuery())}
        assert len(screen.groups) == len(sessions)
        await pilot.press("g")
        await settle(pilot)
        everything = store.query(RunQuery())
        assert len(screen.groups) == len({(r["model"], r["host"]) for r in everything})
        table = screen.query_one("#runs", DataTable)
        group = screen.groups[0]
        decode = str(table.get_row(f"group:{group.label}")[5])
        ok = [
            r["timings"]["decode_tok_s"]
            for r in group.records
            if r["status"] == "ok" and not r["warmup"]
        ]
        mean = sum(ok) / len(ok)
        assert decode.startswith(f"{mean:.1f} ± ") and decode.endswith(f"(n={len(ok)})")
        # Enter on a group drills into it: grouping off, filtered to that model.
        table.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.groups is None and screen.filters.model == group.key
        assert all(r["model"] == group.key for r in screen.rows)


async def test_export_writes_the_current_filter(store):
    async with _app(store).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"phi3", "enter")
        await settle(pilot, pause=0.3)
        await pilot.press("e")
        await pilot.pause()
        modal = pilot.app.screen
        assert isinstance(modal, ExportScreen)
        modal.query_one("#export-format", Select).value = "csv"
        await pilot.pause()
        path = Path(modal.query_one("#export-path", Input).value)
        assert path.suffix == ".csv" and path.parent == store.path.parent
        await pilot.press("enter")
        await settle(pilot)
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        expected = store.query(RunQuery(search="phi3"))
        assert len(rows) == len(expected) > PAGE // 10
        assert {row["id"] for row in rows} == {r["id"] for r in expected}


async def test_copy_id_and_response_use_the_clipboard(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        record = move_to(screen, lambda r: r["status"] == "ok")
        await pilot.press("y")
        assert pilot.app.clipboard == record["id"]
        await pilot.press("Y")
        assert pilot.app.clipboard == record["response"]


async def test_trends_chart_the_model_over_time(store):
    async with history_app(store, (100, 30)) as (pilot, screen):
        record = move_to(screen, lambda r: r["status"] == "ok")
        await pilot.press("t")
        await settle(pilot)
        trends = pilot.app.screen
        assert isinstance(trends, TrendsScreen)
        same = [
            r for r in store.query(RunQuery(status="ok"))
            if r["model"] == record["model"] and r["host"] == record["host"]
            and r["prompt_id"] == record["prompt_id"] and not r["warmup"]
        ]  # fmt: skip
        assert trends.points == len(same) > 1
        assert trends.query_one("#trend-decode").has_data
        await pilot.press("p")  # every prompt of the model
        await settle(pilot)
        assert trends.points > len(same)


def test_telemetry_lines_flatten_gpus_and_use_the_time_axis():
    time, lines = telemetry_lines(
        {"t_s": [0.0, 0.25], "cpu_pct": [10.0, None], "gpus": [{"index": 1, "power_w": [50, 60]}]}
    )
    assert time == [0.0, 0.25]
    assert lines["CPU %"][0] == 10.0
    assert lines["gpu1 power W"] == [50.0, 60.0]
    assert cumulative_tokens([0.3, 0.1, 0.2]) == ([0.1, 0.2, 0.3], [1, 2, 3])


def test_run_history_app_refuses_a_corrupt_database(tmp_path, capsys):
    db_path(tmp_path).write_text("{not json")
    assert run_history_app(tmp_path) == 2
    err = capsys.readouterr().err
    assert str(db_path(tmp_path)) in err and "Traceback" not in err


async def test_leaving_while_a_query_runs_does_not_crash(store, tmp_path, monkeypatch) -> None:
    """Esc right after opening (found under load in CI-like runs): the page query finishes
    after the screen is gone and must not try to draw on it."""
    import threading

    release = threading.Event()
    real_query = store.query

    def slow_query(q=None):
        release.wait(5)
        return real_query(q)

    monkeypatch.setattr(store, "query", slow_query)
    app = HistoryTestApp(store, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("escape")  # leave while the first page query is blocked
        await pilot.pause(0.1)
        assert app.result is None
        release.set()  # the query now completes against a dismissed screen
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert app.is_running and not app._exception


async def test_a_footer_rebuild_after_leaving_does_nothing(store) -> None:
    """Textual runs a footer's deferred rebuild (``call_after_refresh``) on whichever screen is
    active by then: once the history screen was left and its footer detached, the rebuild must
    not ask the footer's screen for its keys (it raised ``NoScreen`` and ended the app)."""
    from llmbench_tui.ui.history import KeyFooter

    async with history_app(store, (100, 30)) as (pilot, screen):
        footer = screen.query_one(KeyFooter)
        assert not footer.held and footer.children  # built after the first page
        await pilot.press("escape")
        await settle(pilot)
        assert not screen.is_attached and not footer.is_attached
        await footer.recompose()  # what the deferred call runs
        footer.release()
        await settle(pilot)
        assert pilot.app.is_running and not pilot.app._exception


async def test_a_runs_detail_that_arrives_late_opens_only_over_the_history(store, monkeypatch):
    """Enter reads the run's series in a worker and then opens the detail. If the user went on
    meanwhile (to the trends view, or out of the history), the detail must not open over that."""
    import threading

    gate = threading.Event()
    real_series = store.series

    def slow_series(run_id):
        gate.wait(5)
        return real_series(run_id)

    monkeypatch.setattr(store, "series", slow_series)
    app = _app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = history(app)
        move_to(screen, lambda r: r["status"] == "ok")
        await pilot.press("enter")  # the series read is now blocked
        await pilot.press("t")
        trends = await screen_of(pilot, TrendsScreen, "#trend-decode")
        gate.set()
        await settle(pilot)
        assert app.screen is trends
        await pilot.press("escape")
        assert app.screen is screen
        gate.clear()
        await pilot.press("enter")
        await pilot.press("escape")  # leave the history while the series is read
        await pilot.pause(0.1)
        assert app.result is None
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert len(app.screen_stack) == 1 and not isinstance(app.screen, RunDetailScreen)
        assert app.is_running and not app._exception
