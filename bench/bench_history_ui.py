"""How fast the history screen opens and answers search keystrokes over 10,000 stored runs.

Seeds a database with ``tests/support/seed_history.py`` (unless ``--data-dir`` already holds
one), then drives the real screen headless with Textual's Pilot and reports, in milliseconds:

- open: from pushing the screen to the first page of runs painted (query + table fill + the
  table's first render), and to the footer's keys mounted (they are built after that paint);
- per search keystroke: from the key to the updated table painted (this includes the deliberate
  150 ms debounce), the query (in a thread, off the event loop) and the table fill (on the loop);
- a sort change and a page turn, for comparison.

"Painted" is when the run table first rendered the result: a probe wraps its ``render_lines``
(called only to paint) and stamps the time that render ended; a result that left the table's
rows as they were (a keystroke that narrows nothing on screen) counts as painted once handled.
So the figures include rendering the new rows, not only handing them to the table, and not the
bench's own polling after the paint.

Run: ``python bench/bench_history_ui.py --runs 10000`` (writes nothing but the temp database).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.seed_history import seed_store
from textual.app import App
from textual.widgets import DataTable, Footer

from llmbench_tui.config import db_path
from llmbench_tui.store import Store, freeze_loaded_runs
from llmbench_tui.ui.history import HistoryScreen


class BenchApp(App):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store


def install_paint_probe() -> None:
    """Stamp a history screen with its latest result painted and when that paint ended.

    A result that refilled the table (``DataTable.clear`` gives it a new ``_row_locations``)
    is painted when the table next renders; one that left its rows as they were is painted
    once handled (only the one-line status changed).
    """
    show, render_lines = HistoryScreen._show, DataTable.render_lines

    def show_probe(self: HistoryScreen, result) -> None:
        rows = self.query_one("#runs", DataTable)._row_locations
        show(self, result)
        if self.query_one("#runs", DataTable)._row_locations is rows:
            self.bench_painted = (self.loaded, time.perf_counter())

    def render_probe(self: DataTable, crop):
        lines = render_lines(self, crop)
        screen = self.screen
        if self.id == "runs" and screen.loaded > screen.bench_painted[0]:
            screen.bench_painted = (screen.loaded, time.perf_counter())
        return lines

    HistoryScreen._show = show_probe
    DataTable.render_lines = render_probe


async def wait_painted(pilot, screen: HistoryScreen, count: int) -> float:
    """When the run table painted result number ``count`` (perf_counter seconds)."""
    while screen.bench_painted[0] < count:
        await pilot.pause(0.001)
    return screen.bench_painted[1]


async def wait_footer(pilot, screen: HistoryScreen) -> None:
    while not screen.query_one(Footer).children:
        await pilot.pause(0.001)


async def measure(store: Store, word: str, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"open": [], "open_query": [], "footer": [], "key": [],
                                   "query": [], "fill": [], "sort": [], "page": []}  # fmt: skip
    for _ in range(rounds):
        app = BenchApp(store)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = HistoryScreen(store)
            screen.bench_painted = (0, 0.0)
            start = time.perf_counter()
            app.push_screen(screen)
            out["open"].append((await wait_painted(pilot, screen, 1) - start) * 1000)
            out["open_query"].append(screen.last_query_ms)
            await wait_footer(pilot, screen)
            out["footer"].append((time.perf_counter() - start) * 1000)
            await pilot.press("slash")
            for char in word:
                seen = screen.loaded
                start = time.perf_counter()
                await pilot.press(char)
                out["key"].append((await wait_painted(pilot, screen, seen + 1) - start) * 1000)
                out["query"].append(screen.last_query_ms)
                out["fill"].append(screen.last_render_ms)
            seen = screen.loaded
            await pilot.press("ctrl+u")  # clear the search: sort and page over every run
            await wait_painted(pilot, screen, seen + 1)
            await pilot.press("escape")
            for action, key in (("sort", "s"), ("page", "right_square_bracket")):
                seen = screen.loaded
                start = time.perf_counter()
                await pilot.press(key)
                out[action].append((await wait_painted(pilot, screen, seen + 1) - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--word", default="qwen2.5")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="skip freeze_loaded_runs(), which `llmbench history --tui` calls on opening the store",
    )
    args = parser.parse_args()
    install_paint_probe()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.data_dir or Path(tmp)
        store = Store(db_path(directory))
        if store.count() == 0:
            seed_store(store, args.runs)
        print(f"{store.count()} runs in {db_path(directory)}")
        if not args.no_freeze:
            freeze_loaded_runs()
        results = asyncio.run(measure(store, args.word, args.rounds))
        store.close()
    print(f"{'what':<34} {'median ms':>10} {'max ms':>8} {'n':>4}")
    labels = {
        "open": "open screen -> first page painted",
        "open_query": "  of which the query (thread)",
        "footer": "open screen -> footer keys mounted",
        "key": "keystroke -> table repainted",
        "query": "search query (thread)",
        "fill": "table page fill (loop)",
        "sort": "sort change -> page painted",
        "page": "next page -> page painted",
    }
    for key, label in labels.items():
        xs = results[key]
        print(f"{label:<34} {statistics.median(xs):>10.1f} {max(xs):>8.1f} {len(xs):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
