"""The chart of a conversation turn's run detail: TTFT (left axis) and prompt tokens (right
axis) against the turn, over the runs of the same session, model, conversation and repetition
(``turns.conversation_runs``)."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ..safe_text import one_line
from .sweep_chart import SeriesChart
from .turns import conversation_runs, turn_points


def turn_chart(runs: list[dict[str, Any]]) -> SeriesChart:
    return SeriesChart(
        "TTFT s (left) and prompt tokens (right) vs turn",
        {"TTFT s": turn_points(runs, "timings.ttft_s")},
        right={"prompt tokens": turn_points(runs, "tokens.prompt")},
        xlabel="turn",
        integer_x=True,
        id="chart-turns",
    )


class TurnChartPanel(Vertical):
    """The turn chart of a conversation turn's run, filled from the store off the event loop
    (the store may wait for another process's lock); a one-line note until then."""

    DEFAULT_CSS = """
    TurnChartPanel { height: auto; }
    TurnChartPanel > Static { height: auto; color: $text-muted; padding: 0 1; }
    TurnChartPanel > SeriesChart { height: 12; }
    """

    def __init__(self, record: dict[str, Any], store: Any = None) -> None:
        super().__init__(id="turn-panel")
        self.record = record
        self.store = store

    def compose(self) -> ComposeResult:
        yield Static(Text("loading the conversation's other turns…"), id="turn-note")

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="turn-chart")
    def _load(self) -> None:
        from ..store import RunQuery

        store = self.store if self.store is not None else getattr(self.app, "store", None)
        runs = [self.record]
        sid = self.record.get("session_id")
        if store is not None and isinstance(sid, str):
            with contextlib.suppress(Exception):  # StoreError: show the run alone
                runs = store.query(RunQuery(session_id=sid, sort="started_at")) or runs
        self.app.call_from_thread(self._show, conversation_runs(runs, self.record))

    def _show(self, runs: list[dict[str, Any]]) -> None:
        if not self.is_attached:
            return
        total = len(runs)
        note = (f"{one_line(self.record.get('conversation_id'), 40)}: {total} turn"
                f"{'s' if total != 1 else ''} of this model and repetition in the session")
        self.query_one("#turn-note", Static).update(Text(note))
        self.mount(turn_chart(runs))
