"""SVG snapshots of the history screen and a run's detail at fixed terminal sizes.

The seeded database is deterministic (fixed RNG seed and start date) and times are shown in UTC
here, so the pictures only change when the layout does. Update with ``--snapshot-update`` after
checking the new pictures by eye.
"""

from __future__ import annotations

import time

import pytest
from support.seed_history import seed_store
from support.ui_pilot import HistoryTestApp, move_to, settle

from llmbench_tui.config import db_path
from llmbench_tui.store import Store


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def app(tmp_path, utc):
    store = Store(db_path(tmp_path))
    seed_store(store, 200)
    yield HistoryTestApp(store, tmp_path)
    store.close()


async def _loaded(pilot) -> None:
    await settle(pilot)


def test_history_screen_80x24(snap_compare, app):
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)


def test_history_grouped_by_model_100x30(snap_compare, app):
    async def grouped(pilot) -> None:
        await settle(pilot)
        await pilot.press("g", "g")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=grouped)


def _detail(tab: str):
    async def open_detail(pilot) -> None:
        await settle(pilot)
        screen = pilot.app.screen
        move_to(screen, lambda r: r["status"] == "ok" and r.get("efficiency"))
        await pilot.press("enter", tab)
        await pilot.pause()

    return open_detail


def test_detail_figures_80x24(snap_compare, app):
    assert snap_compare(app, terminal_size=(80, 24), run_before=_detail("1"))


def test_detail_charts_100x40(snap_compare, app):
    assert snap_compare(app, terminal_size=(100, 40), run_before=_detail("3"))
