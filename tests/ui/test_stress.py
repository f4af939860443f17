"""Opening and leaving the history screen and the views it opens, fast and at random moments.

The history screen starts work that finishes later: a page query and a detail read in thread
workers, a search debounce and a choices timer, a footer built after the first paint, Textual's
own deferred footer rebuilds. Leaving before any of them has finished must drop its result, not
draw on (or query) a screen that is gone: once, ``KeyFooter.recompose`` read ``self.screen`` after
the screen was dismissed and the app died with ``NoScreen``. This drives the real app as a user who
opens and leaves the history, the run detail, the compare and the trends views 200 times in all,
with 0–30 ms between keys (a seeded ``random.Random``, so a failure can be replayed), and keys
that sometimes arrive before the previous ones were handled.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.seed_history import seed_store
from textual.app import App

from llmbench_tui.config import db_path
from llmbench_tui.store import Store
from llmbench_tui.ui.app import LLMBenchApp, build_app
from llmbench_tui.ui.compare_view import CompareScreen
from llmbench_tui.ui.dashboard import Dashboard
from llmbench_tui.ui.history import HistoryScreen
from llmbench_tui.ui.run_detail import RunDetailScreen
from llmbench_tui.ui.trends import TrendsScreen

VISITS = 200
SEED = 20250301
N_RUNS = 30
VIEWS = (HistoryScreen, RunDetailScreen, CompareScreen, TrendsScreen)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str) -> LLMBenchApp:
    """The dashboard app as ``run_app`` builds it, over a store seeded with realistic runs."""
    monkeypatch.setenv("LLMBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("OLLAMA_HOST", dead_url)
    for name in ("LLMBENCH_OLLAMA_HOSTS", "LLMBENCH_OPENAI_URLS", "LLMBENCH_GGUF_PATHS"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    store = Store(db_path(data))
    seed_store(store, N_RUNS)
    store.close()
    args = SimpleNamespace(
        data_dir=str(data), ollama_host=None, models=[], theme=None, no_mouse=True,
        sample_interval=0.25, start="dashboard",
    )  # fmt: skip
    built = build_app(args)
    built.hub = None
    yield built
    built.store.close()


class Visitor:
    """Drives the app with random short pauses and counts the views it saw opened and left."""

    def __init__(self, app: App, pilot, rng: random.Random) -> None:
        self.app, self.pilot, self.rng = app, pilot, rng
        self.visits = dict.fromkeys([v.__name__ for v in VIEWS], 0)

    @property
    def total(self) -> int:
        return sum(self.visits.values())

    def check(self) -> None:
        app = self.app
        assert app._exception is None, (app._exception, app._exit_renderables)
        assert app.is_running and app.return_code is None, app._exit_renderables

    async def pause(self) -> None:
        await self.pilot.pause(self.rng.uniform(0, 0.03))
        self.check()

    async def key(self, key: str) -> None:
        """Press ``key``: mostly as Pilot does (waiting until the screen has handled it), else
        queued right away, as fast typing does; then 0–30 ms."""
        if self.rng.random() < 0.3:
            self.app.simulate_key(key)
        else:
            await self.pilot.press(key)
        await self.pause()

    async def until(self, predicate, timeout: float) -> bool:
        """Whether ``predicate`` came true within ``timeout`` (polled without forcing repaints)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
            self.check()
        return True

    async def reached(self, view: type) -> bool:
        """Whether ``view`` became the active screen; it counts as a visit then."""
        if await self.until(lambda: isinstance(self.app.screen, view), 2.0):
            self.visits[view.__name__] += 1
            return True
        return False

    async def view_from(self, history: HistoryScreen, view: type) -> bool:
        """Open ``view`` from the history screen and leave it after 0–30 ms, back to the history;
        or, once in four, leave the history right after the key (before the view is up). Returns
        whether the history screen is still shown."""
        if self.rng.random() < 0.8:  # else press before the rows are there (nothing to open)
            await self.until(lambda: history.loaded > 0, 2.0)
        if view is RunDetailScreen:
            await self.key("enter")
        elif view is TrendsScreen:
            await self.key("t")
        else:
            for key in ("space", "space", "c"):  # compare needs two marked runs
                await self.key(key)
        if self.rng.random() < 0.25 and history.is_active:
            await self.key("escape")  # the detail's series may still be on its way
            return False
        if await self.reached(view):
            await self.key("escape")
        assert await self.until(lambda: history.is_active, 2.0), self.app.screen
        return True

    async def leave_all(self, dashboard: Dashboard) -> None:
        for _ in range(5):
            if dashboard.is_active:
                return
            await self.key("escape")
        assert await self.until(lambda: dashboard.is_active, 2.0), self.app.screen


@pytest.mark.timeout(600)  # ~65 s of CPU; a machine shared with other jobs takes longer
async def test_opening_and_leaving_views_quickly_never_fails(app: LLMBenchApp) -> None:
    rng = random.Random(SEED)
    async with app.run_test(size=(80, 24)) as pilot:
        visitor = Visitor(app, pilot, rng)
        dashboard = app.screen
        assert isinstance(dashboard, Dashboard)
        # A view opened by the history screen must open over it, never over what the user went
        # to after leaving (a late worker result pushing the detail over the dashboard).
        strays: list[str] = []

        def opened(screen) -> None:
            stack = app.screen_stack
            if isinstance(screen, VIEWS[1:]) and not isinstance(stack[-2], HistoryScreen):
                strays.append(f"{screen} over {stack[-2]}")

        app.screen_change_signal.subscribe(dashboard, opened)
        for _ in range(VISITS):
            if visitor.total >= VISITS:
                break
            await visitor.key("f2")
            if await visitor.reached(HistoryScreen):
                history = app.screen
                # Often straight back out (0–30 ms after opening), else through a few views:
                # trends (the cheapest) as often as the detail and compare views together.
                for _ in range(rng.choice((0, 0, 1, 2, 4))):
                    view = rng.choice((TrendsScreen, TrendsScreen, RunDetailScreen, CompareScreen))
                    if not await visitor.view_from(history, view):
                        break
            await visitor.leave_all(dashboard)
        await pilot.pause(0.2)  # anything still deferred lands now
        await app.workers.wait_for_complete()
        await pilot.pause()
        visitor.check()
        assert app.screen is dashboard and not strays, strays
        assert visitor.total >= VISITS, visitor.visits
        # Every view was really reached, not only the history screen.
        assert all(count >= 15 for count in visitor.visits.values()), visitor.visits
    assert app._exception is None and not app._exit_renderables
    assert app.return_code in (None, 0)
