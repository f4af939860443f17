"""Machines, run conditions and answer quality in the screens (issues 13 and 10), driven by keys
over a real store seeded with records that carry machine blocks, sessions, warnings, impossible
figures and quality blocks (the dashboard's side: ``test_dashboard_quality.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.ui_pilot import (
    HistoryTestApp,
    screen_of,
    screen_text,
    settle,
    shown,
    table_ids,
)
from textual.widgets import DataTable, Input, Select, Static

from llmbench_tui.config import db_path
from llmbench_tui.schema import RunRecord
from llmbench_tui.store import Store
from llmbench_tui.telemetry.environment import machine_block
from llmbench_tui.ui.compare_view import CompareScreen
from llmbench_tui.ui.history import FilterScreen, HistoryScreen
from llmbench_tui.ui.run_detail import RunDetailScreen

EVIL_HOST = "[bold red]evil[/] \x1b[2Jbox"  # markup that would style and an escape that clears
EVIL_HOST_SHOWN = "[bold red]evil[/] box"
EVIL_DETAIL = "expected [link=http://x]y[/link] \x1b]52;c;aGk=\x07got [/] \x1b[31mred"
EVIL_DETAIL_SHOWN = "expected [link=http://x]y[/link] got [/] red"
BUSY_WARNING = (
    "other processes used 85 % of the CPU during this run; its figures are not comparable"
)


def environment(hostname: str, cpu: str, *, threads: int, ram_mb: int, driver: str | None = None,
                gpus: list[dict] | None = None) -> dict[str, Any]:
    """A session environment as ``environment.snapshot`` writes it (the parts that matter)."""
    return {
        "os": {"hostname": hostname, "system": "Linux", "distro": "Debian GNU/Linux 12",
               "kernel": "6.1.0-18-amd64", "machine": "x86_64"},
        "cpu": {"model": cpu, "cores": threads // 2, "threads": threads},
        "ram_mb": ram_mb,
        "gpus": gpus or [],
        "gpu_driver": driver,
        "python": "3.11.7",
        "packages": {"llmbench-tui": "0.1.0"},
        "models": {"embedded": {"sha256": "ab" * 32, "size_bytes": 98_000_000}},
        "conditions": {"other_cpu_pct": 3.2, "cpu_pct": 30.0, "ours_cpu_pct": 1.0, "cpus": threads,
                       "seconds": 1.0, "load_avg": [0.4, 0.5, 0.6], "top": [], "idle": True,
                       "threshold_pct": 10.0},
    }  # fmt: skip


ALPHA_ENV = environment("alpha-box", "AMD Ryzen 9 7950X", threads=32, ram_mb=65536)
EVIL_ENV = environment(
    EVIL_HOST, "Intel(R) Xeon(R) Gold 6338", threads=8, ram_mb=16384, driver="550.54",
    gpus=[{"name": "NVIDIA L4", "mem_total_mb": 23034}],
)  # fmt: skip
ALPHA = machine_block(ALPHA_ENV)
EVIL = machine_block(EVIL_ENV)


def run(rid: str, session: str, minute: int, *, model: str = "embedded", decode: float = 90.0,
        score: float | None = None, warmup: bool = False, status: str = "ok",
        host: str | None = None, **extra: Any) -> dict[str, Any]:
    """A valid run record (``RunRecord.to_json()``), with ``extra`` top-level fields."""
    backend = "gguf" if model == "embedded" else "ollama"
    record = RunRecord(
        id=rid, session_id=session, started_at=f"2025-05-01T10:{minute:02d}:00Z",
        model=model, model_spec=model, backend=backend, host=host, prompt_id="sky",
        prompt="Why is the sky blue?", status=status, response="Because of Rayleigh scattering.",
        warmup=warmup,
        tokens={"prompt": 9, "output": 40, "source": "server"},
        timings={"ttft_s": 0.05, "decode_tok_s": decode, "e2e_s": 0.5, "chunks": 40},
        quality={"score": score, "checks": [{"name": "mentions blue", "kind": "contains",
                                              "passed": score >= 5, "score": 1.0 if score >= 5
                                              else 0.0, "detail": "found 'blue'"}]}
        if score is not None else None,
    ).to_json()  # fmt: skip
    record.update(extra)
    return record


def seed(store: Store) -> dict[str, dict[str, Any]]:
    """Two machines: alpha-box (runs stored before runs carried a machine block: the machine
    comes from the session) and a hostile-named box (runs with their own block: imported)."""
    runs = {
        # alpha-box: a warm-up with an absurd rate (must not count) and three counted runs.
        "a-warm": run("a-warm", "sess-alpha", 1, decode=5.0, warmup=True),
        "a-1": run("a-1", "sess-alpha", 2, decode=90.0, score=8.0),
        "a-2": run("a-2", "sess-alpha", 3, decode=92.0, score=6.0),
        "a-3": run("a-3", "sess-alpha", 4, decode=94.0),
        # sent from alpha-box to a server elsewhere: that server did the work.
        "r-1": run("r-1", "sess-alpha", 5, model="qwen2.5:7b", host="http://gpu-box:11434"),
        # the hostile box: busy, warned, an impossible rate, three checks.
        "e-1": run(
            "e-1", "sess-evil", 10, decode=512.0, score=6.7, machine=EVIL,
            warnings=[BUSY_WARNING, "decode rate 512.0 tok/s is above the bandwidth ceiling "
                      "[bold]of[/] 180.0 tok/s: physically impossible \x1b[2J"],
            efficiency={"achieved_gb_s": 50.2, "mbu": 2.84, "peak_gb_s": 17.6,
                        "ceiling_tok_s": 180.0, "model_bytes": 98_000_000,
                        "implausible": ["timings.decode_tok_s", "efficiency.achieved_gb_s",
                                        "efficiency.mbu"],
                        "conditions": {"other_cpu_pct": 85.0, "other_cpu_pct_max": 97.0,
                                       "busy": True, "threads": 4, "cpu_shared_streams": 2}},
            quality={"score": 6.7, "scored_at": "2025-05-01T10:10:05Z", "checks": [
                {"name": "mentions blue", "kind": "contains", "passed": True, "score": 1.0,
                 "detail": "found 'blue'"},
                {"name": "[b]compiles[/b]", "kind": "python", "passed": False, "score": 0.0,
                 "detail": EVIL_DETAIL},
                {"name": "tests pass", "kind": "python", "passed": None, "score": None,
                 "detail": "not run: code execution is not allowed (--allow-code-exec)"},
            ]},
        ),
        "e-2": run("e-2", "sess-evil", 11, decode=70.0, score=9.0, machine=EVIL),
    }
    store.add_runs(list(runs.values()))
    # The session after its runs: they are stored without a block, as runs stored before runs
    # carried one were (the store gives a run its session's machine when the session is known).
    store.add_session({"id": "sess-alpha", "started_at": "2025-05-01T10:00:00Z",
                       "environment": ALPHA_ENV, "plan": {}})  # fmt: skip
    assert store.get_run("a-1").get("machine") is None
    return runs


@pytest.fixture
def store(tmp_path: Path):
    store = Store(db_path(tmp_path))
    seed(store)
    yield store
    store.close()


def cell_texts(table: DataTable) -> list[list[str]]:
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)]
            for i in range(table.row_count)]  # fmt: skip


def column(table: DataTable, key: str) -> list[str]:
    index = list(table.columns).index(key)
    return [row[index] for row in cell_texts(table)]


async def drawn_with(pilot, text: str) -> str:
    """The screen as written to the terminal, once it shows ``text`` (a table's new rows reach
    the terminal a refresh after the table holds them; on a slow machine that can be late)."""
    for _ in range(200):
        drawn = screen_text(pilot.app)
        if text in drawn:
            return drawn
        await pilot.pause(0.05)
    raise AssertionError(f"{text!r} never drawn; the screen:\n{drawn}")


def history_of(app) -> HistoryScreen:
    screen = app.screen_stack[1]
    assert isinstance(screen, HistoryScreen)
    return screen


# -- the history table ----------------------------------------------------------------------------


async def test_machine_column_names_each_runs_machine_inert(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        table = screen.query_one("#runs", DataTable)
        by_id = dict(zip(table_ids(screen), column(table, "machine"), strict=True))
        # Older runs: the machine of their session; imported ones: their own block.
        assert by_id["a-1"] == "alpha-box" and by_id["a-warm"] == "alpha-box"
        assert by_id["e-1"].startswith("[bold red]evi") and "\x1b" not in by_id["e-1"]
        assert len(by_id["e-1"]) <= 14  # clipped: the full line is in the run's detail
        drawn = await drawn_with(pilot, "[bold red]evi")
        assert "\x1b" not in drawn
        # A physically impossible rate is marked, not shown plainly.
        assert dict(zip(table_ids(screen), column(table, "decode"), strict=True))["e-1"] == "!512.0"
        # Scores show one decimal (6.7 is not 7), unscored runs "-".
        assert dict(zip(table_ids(screen), column(table, "score"), strict=True))["e-1"] == "6.7"


async def test_sort_by_score_puts_unscored_runs_last(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        for _ in range([c.key for c in screen_columns()].index("score")):
            await pilot.press("s")
            await settle(pilot)
        assert screen.sort_key == "score" and screen.descending
        assert table_ids(screen)[:4] == ["e-2", "a-1", "e-1", "a-2"]
        assert set(table_ids(screen)[4:]) == {"a-warm", "a-3", "r-1"}
        await pilot.press("S")
        await settle(pilot)
        assert table_ids(screen)[:4] == ["a-2", "e-1", "a-1", "e-2"]


def screen_columns():
    from llmbench_tui.ui.history import COLUMNS

    return COLUMNS


async def test_filter_dialog_offers_machines_and_a_minimum_score(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        await pilot.press("f")
        dialog = await screen_of(pilot, FilterScreen, "#f-machine")
        select = dialog.query_one("#f-machine", Select)
        labels = [str(prompt) for prompt, _ in select._options]
        values = [value for _, value in select._options]
        assert ALPHA["machine_id"] in values and EVIL["machine_id"] in values
        alpha_label = labels[values.index(ALPHA["machine_id"])]
        # One line of the dialog: host, CPU (clipped), the id's start and how many runs.
        assert alpha_label == f"alpha-box · AMD Ryzen 9 795… · {ALPHA['machine_id'][:8]} (5 runs)"
        evil_label = labels[values.index(EVIL["machine_id"])]
        assert evil_label.startswith("[bold red]evil… · Intel") and "\x1b" not in evil_label
        select.value = ALPHA["machine_id"]
        await pilot.pause()
        dialog.query_one("#f-min_score", Input).focus()
        await pilot.press("7", "enter")
        await settle(pilot)
        assert screen.filters.machine == ALPHA["machine_id"] and screen.filters.min_score == 7.0
        assert table_ids(screen) == ["a-1"]  # alpha-box and scored at least 7 (unscored: out)
        status = shown(screen.query_one("#history-status", Static))
        assert f"machine=alpha-box ({ALPHA['machine_id']})" in status and "min_score=7" in status
        # A bad score is refused with a sentence; Escape keeps the filters.
        await pilot.press("f")
        dialog = await screen_of(pilot, FilterScreen, "#f-min_score")
        score_box = dialog.query_one("#f-min_score", Input)
        assert score_box.value == "7"
        score_box.value = "eleven"
        score_box.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "not a score" in shown(dialog.query_one("#filter-error", Static))
        await pilot.press("escape")
        await settle(pilot)
        assert table_ids(screen) == ["a-1"]


async def test_machine_filter_by_host_name_part(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        from llmbench_tui.ui.history import Filters

        screen.set_filters(Filters(machine="ALPHA"))
        await settle(pilot)
        assert set(table_ids(screen)) == {"a-warm", "a-1", "a-2", "a-3", "r-1"}
        screen.set_filters(Filters(machine="xeon"))
        await settle(pilot)
        assert set(table_ids(screen)) == {"e-1", "e-2"}


async def test_group_by_machine_counts_only_counted_runs_and_opens_the_machine(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        await pilot.press("g", "g", "g")
        await settle(pilot)
        assert screen.group_mode == "machine"
        table = screen.query_one("#runs", DataTable)
        rows = {row[list(table.columns).index("machine")]: row for row in cell_texts(table)}
        alpha = next(v for k, v in rows.items() if k.startswith("alpha-box"))
        keys = list(table.columns)
        # The warm-up run (5 tok/s) is left out of the mean, as in every statistic.
        assert alpha[keys.index("decode")] == "92.0 ± 2.0 (n=3)"
        assert alpha[keys.index("status")] == "4/4 ok"
        assert alpha[keys.index("score")] == "7.0 ± 1.4 (n=2)"
        evil = next(v for k, v in rows.items() if k.startswith("[bold red]evil"))
        assert "\x1b" not in evil[keys.index("machine")]
        assert evil[keys.index("decode")] == "291.0 ± 312.5 (n=2)"
        # A model served by another host: that host did the work (compare.machine_key).
        server = rows["the server at http://gpu-box:11434"]
        assert server[keys.index("status")] == "1/1 ok"
        # Enter on a machine group: the runs measured from that machine (RunQuery.machine is
        # the record's machine, so the run sent to gpu-box is listed too).
        index = next(i for i, g in enumerate(screen.groups) if g.key == ALPHA["machine_id"])
        table.move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.group_mode is None and screen.filters.machine == ALPHA["machine_id"]
        assert set(table_ids(screen)) == {"a-warm", "a-1", "a-2", "a-3", "r-1"}
        # The server's group opens as a host filter.
        await pilot.press("x", "g", "g", "g")
        await settle(pilot)
        index = next(i for i, g in enumerate(screen.groups) if g.key.startswith("host:"))
        table.move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.filters.host == "http://gpu-box:11434" and table_ids(screen) == ["r-1"]


# -- the run detail -------------------------------------------------------------------------------


async def open_run(pilot, rid: str) -> RunDetailScreen:
    screen = history_of(pilot.app)
    table = screen.query_one("#runs", DataTable)
    table.move_cursor(row=table_ids(screen).index(rid))
    await pilot.press("enter")
    return await screen_of(pilot, RunDetailScreen, "#figures")


async def test_detail_environment_shows_machine_conditions_warnings_inert(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        detail = await open_run(pilot, "e-1")
        await pilot.press("4")
        await pilot.pause()
        line = shown(detail.query_one("#env-machine-line", Static))
        assert line.startswith(EVIL_HOST_SHOWN + " · Intel(R) Xeon(R) Gold 6338 · 8 threads")
        assert "NVIDIA L4 (23034 MiB)" in line and "driver 550.54" in line
        block = shown(detail.query_one("#env-machine", Static))
        assert f"host: {EVIL_HOST_SHOWN}" in block and "RAM: 16.0 GiB" in block
        conditions = shown(detail.query_one("#env-conditions", Static))
        assert "other processes' CPU: 85 % of the machine (peak 97 %): busy" in conditions
        assert "threads: 4" in conditions and "shared: 2 in-process streams" in conditions
        warnings = shown(detail.query_one("#env-warnings", Static))
        assert BUSY_WARNING in warnings
        assert "[bold]of[/] 180.0 tok/s: physically impossible" in warnings
        drawn = await drawn_with(pilot, EVIL_HOST_SHOWN)
        assert "\x1b" not in drawn
        # The figures tab says there are warnings, too.
        assert BUSY_WARNING[:40] in shown(detail.query_one("#figures-warning", Static))


async def test_detail_shows_the_session_environment_without_the_models(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        detail = await open_run(pilot, "a-1")  # an older run: machine from its session
        await pilot.press("4")
        await pilot.pause()
        assert shown(detail.query_one("#env-machine-line", Static)).startswith(
            "alpha-box · AMD Ryzen 9 7950X · 32 threads · 64.0 GiB · no GPU · id "
        )
        session = shown(detail.query_one("#env-session", Static))
        assert '"packages"' in session and '"hostname": "alpha-box"' in session
        assert '"models"' not in session and "sha256" not in session
        began = shown(detail.query_one("#env-conditions", Static))
        assert "as the session began: idle, other processes used 3 %" in began


async def test_detail_marks_impossible_figures(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        detail = await open_run(pilot, "e-1")
        table = detail.query_one("#figures", DataTable)
        rows = {row[0]: row for row in cell_texts(table)}
        assert rows["! decode tok/s"][1] == "! 512.00"  # marked, never shown plainly
        assert rows["! MBU"][1] == "! 2.84" and rows["! achieved GB/s"][1] == "! 50.2"
        assert rows["ceiling tok/s"][1] == "180.0"
        assert "decode tok/s" not in rows and rows["TTFT s"][1] == "0.0500"
        table.move_cursor(row=list(rows).index("! decode tok/s"))
        await pilot.pause()
        definition = shown(detail.query_one("#definition", Static))
        assert definition.startswith("! physically impossible: above the bandwidth ceiling")


async def test_detail_checks_tab_lists_every_check_inert(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        detail = await open_run(pilot, "e-1")
        await pilot.press("5")
        await pilot.pause()
        summary = shown(detail.query_one("#checks-summary", Static))
        assert summary.startswith("score 6.7/10 · 3 checks: 1 passed, 1 failed, 1 not run")
        table = detail.query_one("#checks", DataTable)
        rows = cell_texts(table)
        assert [r[0] for r in rows] == ["✓", "✗", "not run"]
        assert [r[1] for r in rows] == ["1.00", "0.00", "-"]
        assert rows[1][2] == "[b]compiles[/b]" and rows[1][4] == EVIL_DETAIL_SHOWN
        assert rows[2][4].startswith("not run: code execution is not allowed")
        await pilot.press("down")
        await pilot.pause()
        detail_text = shown(detail.query_one("#check-detail", Static))
        assert detail_text == f"[b]compiles[/b] (python): failed\n{EVIL_DETAIL_SHOWN}"
        drawn = await drawn_with(pilot, EVIL_DETAIL_SHOWN)
        assert "\x1b" not in drawn and "\x07" not in drawn
        # An unscored run says why.
        await pilot.press("escape")
        await pilot.pause()
        detail = await open_run(pilot, "a-3")
        await pilot.press("5")
        await pilot.pause()
        assert "the prompt has no checks" in shown(detail.query_one("#checks-summary", Static))
        assert not detail.query("#checks")


# -- compare --------------------------------------------------------------------------------------


async def test_compare_across_machines_says_so(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        table = screen.query_one("#runs", DataTable)
        for rid in ("a-1", "a-2", "e-1", "e-2"):
            table.move_cursor(row=table_ids(screen).index(rid))
            await pilot.press("space")
        await pilot.press("c")
        compare = await screen_of(pilot, CompareScreen, "#compare-table")
        assert compare.kind == "machine"  # one model on two machines: a side per machine
        title = shown(compare.query_one("#compare-title", Static))
        assert title.startswith("4 runs in 2 sides by machine; baseline: alpha-box · AMD Ryzen")
        notes = shown(compare.query_one("#compare-cautions", Static))
        assert "1 of 2 runs of [bold red]evil[/] box" in notes and "beside other work" in notes
        assert "physically impossible figures" in notes and "\x1b" not in notes
        assert "different machines" not in notes  # the sides are the machines: the title says so


async def test_compare_of_models_measured_on_different_machines_says_so(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        table = screen.query_one("#runs", DataTable)
        for rid in ("a-1", "a-2", "r-1"):
            table.move_cursor(row=table_ids(screen).index(rid))
            await pilot.press("space")
        await pilot.press("c")
        compare = await screen_of(pilot, CompareScreen, "#compare-table")
        assert compare.kind == "model"
        notes = shown(compare.query_one("#compare-cautions", Static))
        assert "ran on different machines" in notes
        assert "on alpha-box · AMD Ryzen 9 7950X · 32 threads" in notes
        assert "on the server at http://gpu-box:11434" in notes
        assert "beside other work" not in notes


async def test_compare_on_one_machine_has_no_caution(store):
    async with HistoryTestApp(store, store.path.parent).run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        screen = history_of(pilot.app)
        table = screen.query_one("#runs", DataTable)
        for rid in ("a-1", "a-2"):
            table.move_cursor(row=table_ids(screen).index(rid))
            await pilot.press("space")
        await pilot.press("c")
        compare = await screen_of(pilot, CompareScreen, "#compare-table")
        assert not compare.query("#compare-cautions")


async def test_an_export_from_the_screen_is_self_contained(store):
    """As `llmbench export`: each run with its machine, and in JSON its session too, so an
    import on another machine restores both."""
    import orjson

    from llmbench_tui.ui.history import ExportScreen

    async with HistoryTestApp(store, store.path.parent).run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        modal = await screen_of(pilot, ExportScreen, "#export-path")
        path = Path(modal.query_one("#export-path", Input).value)
        await pilot.press("enter")
        await settle(pilot, pause=0.2)
        exported = {r["id"]: r for r in orjson.loads(path.read_bytes())}
    assert exported["a-1"]["machine"] == ALPHA  # from its session: older runs had no block
    assert exported["a-1"]["session"]["environment"]["os"]["hostname"] == "alpha-box"
    assert exported["e-1"]["machine"]["hostname"] == EVIL_HOST  # stored exactly, shown inert
    assert store.get_run("a-1").get("machine") is None  # the stored run is not changed
