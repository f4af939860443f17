"""What the history screen does with the current or marked runs (its actions): re-run, copy,
delete, export, judge. A mixin of ``HistoryScreen``, which holds the store, the marks and the
view these use."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App

from ...exporting import self_contained, write_export
from ...safe_text import notify_inert
from ...store import RunQuery, StoreError
from ..clipboard import copy_text
from .modals import ConfirmScreen, ExportScreen
from .rerun import rerun_request


class RunActions:
    """``HistoryScreen``'s actions on runs (``r``, ``y``, ``Y``, ``d``, ``e``, ``H``, ``J``)."""

    def action_rerun(self) -> None:
        record = self._need_run()
        if record is None:
            return
        if not self.can_rerun:
            self.notify("Re-run from the dashboard: run `llmbench`, press h, then r.")
            return
        self.dismiss(rerun_request(record))

    def action_copy_id(self) -> None:
        record = self._need_run()
        if record is not None:
            copy_text(self.app, record["id"], "run id")

    def action_copy_response(self) -> None:
        record = self._need_run()
        if record is not None:
            copy_text(self.app, record.get("response") or "", "response")

    def action_delete(self) -> None:
        ids = list(self.marked) or [r["id"] for r in [self.current_record()] if r]
        if not ids or self.groups is not None:
            self.notify("Select or mark the runs to delete (not a group).", severity="warning")
            return
        what = f"{len(ids)} marked runs" if len(ids) > 1 else f"run {ids[0]}"

        def done(yes: bool | None) -> None:
            if yes:
                self._delete(ids)

        self.app.push_screen(ConfirmScreen(f"Delete {what}? This cannot be undone."), done)

    @work(thread=True, exclusive=True, group="delete")
    def _delete(self, ids: list[str]) -> None:
        """Delete off the event loop: it rewrites history.json (fsync) under the file lock,
        which a running --batch job may hold for a while."""
        try:
            removed = self.store.delete(ids)
        except StoreError as exc:
            self.app.call_from_thread(self._query_failed, str(exc))
            return
        self.app.call_from_thread(self._deleted, ids, removed)

    def _deleted(self, ids: list[str], removed: int) -> None:
        if not self.is_open:  # dismissed while the worker ran: nothing to draw
            return
        for rid in ids:
            self.marked.pop(rid, None)
        self._choices = None
        self.notify(f"Deleted {removed} run{'s' if removed != 1 else ''}.")
        self.reload()

    def action_export(self) -> None:
        what = f"{len(self.marked)} marked runs" if self.marked else "every run matching the view"
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = self.data_dir or Path.cwd()
        default = base / f"llmbench-export-{stamp}.json"

        def done(choice: tuple[str, Path] | None) -> None:
            if choice is not None:
                records = list(self.marked.values()) or None
                self._export(self.app, self.run_query(None), records, *choice)

        self.app.push_screen(ExportScreen(what, default), done)

    @work(thread=True, exclusive=True, group="history-export")
    def _export(
        self, app: App, query: RunQuery, records: list[dict[str, Any]] | None, fmt: str, path: Path
    ) -> None:
        """Write the file off the event loop. The outcome is told through the app, not this
        screen: the user asked for the file and is told even after leaving the history."""
        try:
            records = records or self.store.query(query)
            # Self-contained, as `llmbench export` writes them: each run with its machine and,
            # in JSON and JSONL, its session (environment included).
            records = self_contained(records, self.store, sessions=fmt in ("json", "jsonl"))
            write_export(records, fmt, path)
        except (StoreError, OSError, ValueError) as exc:
            app.call_from_thread(notify_inert, app, f"Export failed: {exc}", severity="error")
            return
        app.call_from_thread(notify_inert, app, f"Exported {len(records)} runs to {path}")

    def action_html_report(self) -> None:
        from .report import report_path, write_report

        write_report(self.app, self.store, list(self.marked.values()), self.run_query(None),
                     report_path(self.data_dir))  # fmt: skip

    def action_judge(self) -> None:
        from ..judge_dialog import ask_and_judge

        ask_and_judge(self)
