"""``llmbench history --tui``: the history screen as an app of its own, over one data directory."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.app import App

from ...config import data_dir as config_data_dir
from ...store import RunStore, StoreError, freeze_loaded_runs, open_store
from .screen import HistoryScreen


class HistoryApp(App):
    """``llmbench history --tui``: the history screen on its own, over one data directory."""

    TITLE = "llmbench history"

    def __init__(self, store: RunStore, data_dir: Path) -> None:
        super().__init__()
        self.store = store
        self.data_dir = data_dir

    def on_mount(self) -> None:
        screen = HistoryScreen(self.store, data_dir=self.data_dir, can_rerun=False)
        self.push_screen(screen, lambda _result: self.exit(0))


def run_history_app(data_dir: str | Path | None, location: str | None = None) -> int:
    """Open the history screen over the store ``location`` names (``--store``; default the
    data directory's); the exit status for the CLI."""
    try:
        store = open_store(location, data_dir)
    except StoreError as exc:
        print(f"llmbench: {exc}", file=sys.stderr)
        return 2
    freeze_loaded_runs()
    try:
        result = HistoryApp(store, config_data_dir(data_dir)).run()
    finally:
        store.close()
    return result if isinstance(result, int) else 0
