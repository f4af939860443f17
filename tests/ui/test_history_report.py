"""The history screen's ``H``: the HTML report of the marked runs, or of the view's filter,
written beside the database, its path told in a toast (Pilot over a real seeded store)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.seed_history import seed_store
from textual.app import App

from llmbench_tui.config import db_path
from llmbench_tui.store import RunQuery, Store
from llmbench_tui.ui.history import HistoryScreen

DATA = re.compile(r'<script type="application/json" id="llmbench-data">(.*?)</script>', re.S)


class HistoryApp(App):
    def __init__(self, store: Store, data_dir: Path) -> None:
        super().__init__()
        self.store, self.data_dir = store, data_dir

    def on_mount(self) -> None:
        self.push_screen(HistoryScreen(self.store, data_dir=self.data_dir))


async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def written(app: App) -> tuple[Path, dict]:
    """The report the last toast names, and its data."""
    message = list(app._notifications)[-1].message
    m = re.fullmatch(r"Report of (\d+) runs \(\d+ KiB\) written to (.+\.html)", message)
    assert m, message
    path = Path(m[2])
    data = json.loads(DATA.findall(path.read_text(encoding="utf-8"))[0])
    assert data["counts"]["runs"] == int(m[1])
    return path, data


async def test_h_reports_the_filter_then_the_marked_runs(tmp_path: Path):
    store = Store(db_path(tmp_path))
    seed_store(store, 120)
    async with HistoryApp(store, tmp_path).run_test(size=(110, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"phi3", "enter")
        await settle(pilot)
        await pilot.press("H")
        await settle(pilot)
        path, data = written(pilot.app)
        assert path.parent == tmp_path
        assert data["counts"]["runs"] == len(store.query(RunQuery(search="phi3"))) > 5
        assert data["selection"] == "--search phi3"
        path.unlink()
        screen = pilot.app.screen
        await pilot.press("space", "down", "space")
        await settle(pilot)
        await pilot.press("H")
        await settle(pilot)
        _, data = written(pilot.app)
        assert data["counts"]["runs"] == 2 == len(screen.marked)
        assert data["selection"] == "2 runs marked in the history"
    store.close()
