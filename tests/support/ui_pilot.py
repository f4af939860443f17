"""Driving the apps with Textual's Pilot: waiting for the app, the dashboard and history screens,
the history table's rows, and the screen as text. Shared by the UI tests (``tests/ui``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.app import App
from textual.widgets import DataTable, Static

from llmbench_tui.store import Store
from llmbench_tui.ui.app import LLMBenchApp
from llmbench_tui.ui.dashboard import Dashboard
from llmbench_tui.ui.history import HistoryScreen


async def wait_for(pilot, predicate, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for the app")
        await pilot.pause(0.05)


def dashboard(app: LLMBenchApp) -> Dashboard:
    screen = app.screen
    assert isinstance(screen, Dashboard)
    return screen


def shown(widget: Static) -> str:
    """What a ``Static`` shows, as plain text."""
    return str(widget.render())


def screen_text(app: LLMBenchApp) -> str:
    """Every line of the current screen as it would be written to the terminal (toasts too)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())



class HistoryTestApp(App):
    """Pushes the history screen like the dashboard does, and keeps what it dismissed with."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        super().__init__()
        self.store = store
        self.data_dir = data_dir
        self.result: object = "not dismissed"

    def on_mount(self) -> None:
        self.push_screen(HistoryScreen(self.store, data_dir=self.data_dir), self._dismissed)

    def _dismissed(self, result: object) -> None:
        self.result = result


async def settle(pilot, pause: float = 0.0) -> None:
    """Let debounce timers fire and every query worker finish, then let the UI catch up."""
    if pause:
        await pilot.pause(pause)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def screen_of(pilot, kind: type, child: str):
    """The active screen once it is a ``kind`` with ``child`` composed (pushes can be deferred)."""
    for _ in range(100):
        screen = pilot.app.screen
        if isinstance(screen, kind) and screen.query(child):
            return screen
        await pilot.pause(0.02)
    raise AssertionError(f"{kind.__name__} with {child} never appeared; got {pilot.app.screen}")


def history(app: App) -> HistoryScreen:
    screen = app.screen_stack[1]
    assert isinstance(screen, HistoryScreen)
    return screen


def table_ids(screen: HistoryScreen) -> list[str]:
    table = screen.query_one("#runs", DataTable)
    return [row.key.value for row in table.ordered_rows]


def move_to(screen: HistoryScreen, predicate) -> dict:
    """Put the cursor on the first shown run matching ``predicate``; returns it."""
    index = next(i for i, r in enumerate(screen.rows) if predicate(r))
    screen.query_one("#runs", DataTable).move_cursor(row=index)
    return screen.rows[index]
