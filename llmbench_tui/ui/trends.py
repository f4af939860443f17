"""Trends: decode rate and TTFT of one model (and optionally one prompt) over calendar time.

One point per successful, non-warm-up run, so a regression after a driver or server upgrade shows
as a step in the line. ``p`` toggles between this prompt only and every prompt of the model. The
query runs in a thread worker: a model can have thousands of runs. Its result reaches the event
loop through ``call_from_thread`` (a task of the app, not a message of this screen), so it can
arrive after the screen was left, even while its charts are being removed: then it is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..engine.stats import counted
from ..safe_text import notify_inert, strip_controls
from ..schema import get_path
from ..store import RunQuery, Store, StoreError
from .charts import TrendChart


def trend_points(
    records: list[dict[str, Any]], path: str
) -> tuple[list[datetime], list[float | None]]:
    """(started_at, value) of each counted run, oldest first."""
    when, vals = [], []
    for record in counted(records):
        try:
            moment = datetime.fromisoformat(str(record.get("started_at")))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        when.append(moment.astimezone())
        vals.append(get_path(record, path))
    return when, vals


class TrendsScreen(Screen):
    """Line charts of a model's decode rate and TTFT over time."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("p", "toggle_prompt", "This prompt / all prompts"),
    ]
    DEFAULT_CSS = """
    TrendsScreen #trend-title { height: auto; background: $boost; padding: 0 1; }
    TrendsScreen #trend-charts { height: 1fr; }
    TrendsScreen TrendChart { height: 1fr; }
    """

    def __init__(self, store: Store, record: dict[str, Any]) -> None:
        super().__init__()
        self.store = store
        self.model = str(record.get("model") or "")
        self.backend = record.get("backend")
        self.host = record.get("host")
        self.prompt_id = record.get("prompt_id")
        self.by_prompt = self.prompt_id is not None
        self.points = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="trend-title")
        with Vertical(id="trend-charts"):
            yield TrendChart("decode tok/s over time", id="trend-decode")
            yield TrendChart("TTFT s over time", id="trend-ttft")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @property
    def is_open(self) -> bool:
        """Whether results may still be drawn here: on the app's screen stack and running (a
        dismissed screen leaves the stack at once, its charts are removed after it stops)."""
        return self.is_attached and self.is_running and self in self.app.screen_stack

    def action_toggle_prompt(self) -> None:
        if self.prompt_id is not None:
            self.by_prompt = not self.by_prompt
            self._load()

    @work(thread=True, exclusive=True, group="trends")
    def _load(self) -> None:
        query = RunQuery(model=self.model, backend=self.backend, status="ok", sort="started_at")
        try:
            found = self.store.query(query)
        except StoreError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        found = [r for r in found if r.get("model") == self.model and r.get("host") == self.host]
        if self.by_prompt:
            found = [r for r in found if r.get("prompt_id") == self.prompt_id]
        self.app.call_from_thread(self._show, found)

    def _failed(self, message: str) -> None:
        if self.is_open:  # dismissed while the worker ran: nobody asked any more
            notify_inert(self, message, severity="error")

    def _show(self, records: list[dict[str, Any]]) -> None:
        if not self.is_open:  # dismissed while the worker ran: nothing to draw
            return
        when_d, decode = trend_points(records, "timings.decode_tok_s")
        when_t, ttft = trend_points(records, "timings.ttft_s")
        self.points = len(decode)
        scope = f"prompt {self.prompt_id}" if self.by_prompt else "all prompts"
        self.query_one("#trend-title", Static).update(
            Text(strip_controls(f"{self.model} on {self.backend}@{self.host or 'local'} · {scope}"
                                f" · {self.points} runs (ok, not warm-up)"))
        )  # fmt: skip
        self.query_one("#trend-decode", TrendChart).set_points(when_d, decode)
        self.query_one("#trend-ttft", TrendChart).set_points(when_t, ttft)
