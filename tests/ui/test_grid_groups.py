"""The history groups the runs of one size grid cell by cell, like the lines of llama-bench's table:
the pure grouping over records shaped as the engine stores grid runs, then the screen driven by
keys over a real store (grouping cycles to "grid", a cell's mean leaves out warm-up runs, Enter
opens the cell's session and model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.ui_pilot import HistoryTestApp, settle, table_ids
from textual.widgets import DataTable

from llmbench_tui.config import db_path
from llmbench_tui.schema import RunRecord
from llmbench_tui.store import Store
from llmbench_tui.ui.history.columns import COLUMN_BY_KEY, group_cells
from llmbench_tui.ui.history.grouping import NO_GRID, grid_test, group_cell, group_runs

GRID = "3f2a9c1d0b7e"


def grid_run(rid: str, session: str, minute: int, *, pp: int, depth: int = 0, rate: float,
             model: str = "embedded", concurrency: int = 1, warmup: bool = False,
             cache_role: str | None = None) -> dict[str, Any]:
    """A grid run as the engine stores it: its prompt id is the cell's, its workload block names
    the grid and the cell's llama-bench test."""
    suffix = f"@d{depth}" if depth else ""
    record = RunRecord(
        id=rid, session_id=session, started_at=f"2025-06-01T09:{minute:02d}:00Z", model=model,
        model_spec=model, backend="gguf", prompt_id=f"pp{pp}+tg32{suffix}",
        prompt="[synthetic]", status="ok", response="x", warmup=warmup, concurrency=concurrency,
        tokens={"prompt": pp + depth, "output": 32, "source": "server"},
        timings={"ttft_s": 0.1, "decode_tok_s": rate, "e2e_s": 0.5, "chunks": 32},
    ).to_json()  # fmt: skip
    record["workload"] = {
        "test": f"pp{pp}+tg32" + (f" @ d{depth}" if depth else ""), "pp": pp, "tg": 32,
        "depth": depth, "grid": GRID, "cache_role": cache_role,
    }  # fmt: skip
    return record


def plain_run(rid: str, minute: int) -> dict[str, Any]:
    return RunRecord(
        id=rid, session_id="s-typed", started_at=f"2025-06-01T09:{minute:02d}:00Z",
        model="embedded", model_spec="embedded", backend="gguf", prompt_id="sky",
        prompt="Why is the sky blue?", status="ok",
        timings={"decode_tok_s": 77.0},
    ).to_json()


def seed_records() -> list[dict[str, Any]]:
    """Newest first, as the store returns them: two sessions of the same grid (same grid id),
    two cells, a warm-up with an absurd rate, a concurrency level, a cached repeat, and a typed
    prompt outside any grid."""
    return [
        plain_run("typed", 59),
        grid_run("b-64", "s-b", 50, pp=64, rate=60.0),
        grid_run("a-64-c2", "s-a", 12, pp=64, rate=40.0, concurrency=2),
        grid_run("a-64-rep", "s-a", 11, pp=64, rate=99.0, cache_role="repeat"),
        grid_run("a-256-d-2", "s-a", 10, pp=256, depth=512, rate=70.0),
        grid_run("a-256-d-1", "s-a", 9, pp=256, depth=512, rate=74.0),
        grid_run("a-64-2", "s-a", 8, pp=64, rate=92.0),
        grid_run("a-64-1", "s-a", 7, pp=64, rate=88.0),
        grid_run("a-64-warm", "s-a", 6, pp=64, rate=3.0, warmup=True),
    ]


def test_grid_groups_are_cells_of_one_grid_in_one_session() -> None:
    groups = {g.label: g for g in group_runs(seed_records(), "grid")}
    ids = {label: [r["id"] for r in g.records] for label, g in groups.items()}
    cell = f"s-a/{GRID}/embedded (gguf@local)/pp64+tg32"
    assert ids[cell] == ["a-64-2", "a-64-1", "a-64-warm"]
    assert ids[f"s-a/{GRID}/embedded (gguf@local)/pp256+tg32 @ d512"] == ["a-256-d-2", "a-256-d-1"]
    # A concurrency level and a deliberate cache repeat are lines of their own; so is the same
    # grid run again in another session.
    assert ids[f"s-a/{GRID}/embedded (gguf@local)/pp64+tg32 ×2"] == ["a-64-c2"]
    assert ids[f"s-a/{GRID}/embedded (gguf@local)/pp64+tg32 (cached)"] == ["a-64-rep"]
    assert ids[f"s-b/{GRID}/embedded (gguf@local)/pp64+tg32"] == ["b-64"]
    assert ids[NO_GRID] == ["typed"] and groups[NO_GRID].key == ""
    assert groups[cell].key == "s-a"
    # The cell's mean leaves the warm-up run out, as every statistic does.
    decode = COLUMN_BY_KEY["decode"]
    assert group_cell(groups[cell].records, decode) == "90.0 ± 2.8 (n=2)"
    cells = [c.text for c in group_cells(groups[cell], "grid")]
    assert "pp64+tg32" in cells and "3/3 ok" in cells
    assert grid_test(seed_records()[0]) is None


@pytest.fixture
def store(tmp_path: Path):
    store = Store(db_path(tmp_path))
    store.add_runs(seed_records())
    yield store
    store.close()


async def test_history_screen_groups_by_grid_cell_and_opens_one(store) -> None:
    async with HistoryTestApp(store, store.path.parent).run_test(size=(180, 30)) as pilot:
        await settle(pilot)
        screen = pilot.app.screen_stack[1]
        for _ in range(4):
            await pilot.press("g")
            await settle(pilot)
        assert screen.group_mode == "grid"
        table = screen.query_one("#runs", DataTable)
        keys = list(table.columns)
        rows = [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)]
                for i in range(table.row_count)]  # fmt: skip
        by_test = {row[keys.index("prompt")]: row for row in rows}
        assert by_test["pp256+tg32 @ d512"][keys.index("decode")] == "72.0 ± 2.8 (n=2)"
        assert by_test["no grid: 1 prompt"][keys.index("decode")] == "77.0 (n=1)"
        assert "6 grid groups of 9 runs" in str(screen.query_one("#history-status").render())
        # Enter on the pp64 cell of session s-a: that session's runs of the model.
        index = next(i for i, g in enumerate(screen.groups)
                     if g.label == f"s-a/{GRID}/embedded (gguf@local)/pp64+tg32")  # fmt: skip
        table.move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.group_mode is None
        assert screen.filters.session_id == "s-a" and screen.filters.model == "embedded"
        assert len(table_ids(screen)) == 7 and "b-64" not in table_ids(screen)
