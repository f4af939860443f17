"""The history screen's ``H``: the HTML report (``llmbench report``) of the marked runs, or of
every run matching the view, written beside the database; its path is told in a toast."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from textual.app import App

from llmbench_tui.exporting import self_contained
from llmbench_tui.report import ReportError, build, write_html
from llmbench_tui.report.select import describe_selection
from llmbench_tui.safe_text import notify_inert
from llmbench_tui.store import RunQuery, RunStore, StoreError


def report_path(folder: Path | None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return (folder or Path.cwd()) / f"llmbench-report-{stamp}.html"


def write_report(app: App, store: RunStore, marked: list[dict[str, Any]], query: RunQuery,
                 path: Path) -> None:  # fmt: skip
    """Write the report off the event loop; the outcome is told through the app (the user may
    have left the history by then)."""

    def work() -> None:
        try:
            records = marked or store.query(query)
            if not records:
                raise ReportError("no runs match the view")
            selection = (f"{len(marked)} runs marked in the history" if marked
                         else describe_selection([], query) or "every stored run")  # fmt: skip
            data = build(self_contained(records, store, sessions=True), selection=selection)
            size = write_html(path, data)
        except (StoreError, ReportError) as exc:
            app.call_from_thread(notify_inert, app, f"Report failed: {exc}", severity="error")
            return
        app.call_from_thread(notify_inert, app, f"Report of {len(records)} runs "
                             f"({size / 1024:.0f} KiB) written to {path}", timeout=15)

    app.run_worker(work, thread=True, group="history-report", exclusive=True)
