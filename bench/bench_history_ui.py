"""How fast the history screen opens and answers search keystrokes over 10,000 stored runs.

Seeds a database with ``tests/seed_history.py`` (unless ``--data-dir`` already holds one), then
drives the real screen headless with Textual's Pilot and reports, in milliseconds:

- open: from pushing the screen to the first page of runs shown (query + table fill);
- per search keystroke: from the key to the updated table (this includes the deliberate 150 ms
  debounce), the query (in a thread, off the event loop) and the table fill (on the loop);
- a sort change and a page turn, for comparison.

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

from seed_history import seed_store
from textual.app import App

from llmbench_tui.config import db_path
from llmbench_tui.store import Store
from llmbench_tui.ui.history import HistoryScreen


class BenchApp(App):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store


async def wait_loaded(pilot, screen: HistoryScreen, count: int) -> None:
    while screen.loaded < count:
        await pilot.pause(0.001)


async def measure(store: Store, word: str, rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"open": [], "open_query": [], "key": [], "query": [],
                                   "fill": [], "sort": [], "page": []}  # fmt: skip
    for _ in range(rounds):
        app = BenchApp(store)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = HistoryScreen(store)
            start = time.perf_counter()
            app.push_screen(screen)
            await wait_loaded(pilot, screen, 1)
            out["open"].append((time.perf_counter() - start) * 1000)
            out["open_query"].append(screen.last_query_ms)
            await pilot.press("slash")
            for char in word:
                seen = screen.loaded
                start = time.perf_counter()
                await pilot.press(char)
                await wait_loaded(pilot, screen, seen + 1)
                out["key"].append((time.perf_counter() - start) * 1000)
                out["query"].append(screen.last_query_ms)
                out["fill"].append(screen.last_render_ms)
            await pilot.press("escape", "ctrl+u")
            for action, key in (("sort", "s"), ("page", "right_square_bracket")):
                seen = screen.loaded
                start = time.perf_counter()
                await pilot.press(key)
                await wait_loaded(pilot, screen, seen + 1)
                out[action].append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--word", default="qwen2.5")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.data_dir or Path(tmp)
        store = Store(db_path(directory))
        if store.count() == 0:
            seed_store(store, args.runs)
        print(f"{store.count()} runs in {db_path(directory)}")
        results = asyncio.run(measure(store, args.word, args.rounds))
        store.close()
    print(f"{'what':<34} {'median ms':>10} {'max ms':>8} {'n':>4}")
    labels = {
        "open": "open screen -> first page shown",
        "open_query": "  of which the query (thread)",
        "key": "keystroke -> table updated",
        "query": "search query (thread)",
        "fill": "table page fill (loop)",
        "sort": "sort change -> page shown",
        "page": "next page -> page shown",
    }
    for key, label in labels.items():
        xs = results[key]
        print(f"{label:<34} {statistics.median(xs):>10.1f} {max(xs):>8.1f} {len(xs):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
