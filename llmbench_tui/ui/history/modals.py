"""The history screen's dialogs: confirm a delete, edit the filters, choose an export.

Each is a ``ModalScreen`` driven by keys alone (Escape always backs out) and dismisses with its
answer; stored values shown in them (model names, hosts) are shown as ``Text``, never as markup.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ...safe_text import strip_controls
from .filters import Filters

EXPORT_FORMATS = ("json", "jsonl", "csv", "md")


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; ``y`` confirms, ``n`` or Escape declines (the default is no)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 60; height: auto; border: thick $error; padding: 1 2;
                               background: $surface; }
    ConfirmScreen Label { width: 1fr; margin-bottom: 1; }
    ConfirmScreen Grid { grid-size: 2; grid-gutter: 2; height: 3; }
    ConfirmScreen Button { width: 1fr; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(strip_controls(self.question)), id="question")
            with Grid():
                yield Button("No (n)", id="no", variant="primary")
                yield Button("Yes (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class FilterScreen(ModalScreen[Filters | None]):
    """Model, backend, host, status, machine, date range and minimum score at once; Tab moves,
    Enter applies."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+x", "clear", "Clear all"),
    ]
    DEFAULT_CSS = """
    FilterScreen { align: center middle; }
    FilterScreen > Vertical { width: 70; height: auto; max-height: 100%; border: thick $accent;
                              padding: 0 1; background: $surface; }
    FilterScreen .row { height: 1; margin-top: 1; }
    FilterScreen Label { width: 10; }
    FilterScreen Select, FilterScreen Input { width: 1fr; }
    FilterScreen #filter-error { color: $error; height: auto; }
    FilterScreen #hint { color: $text-muted; }
    """

    def __init__(
        self,
        current: Filters,
        choices: dict[str, list[str]],
        machines: list[tuple[str, str]] | None = None,
    ) -> None:
        """``choices``: the distinct stored values per field; ``machines``: (label, machine id)
        of every machine with runs (``Store.machines``), most runs first."""
        super().__init__()
        self.current = current
        self.choices = choices
        self.machines = list(machines or [])

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "Filters combine. Enter opens a list or applies from a date field or Apply; "
                "Tab moves, Esc cancels, Ctrl+X clears all.",
                id="hint",
            )
            for name in ("model", "backend", "host", "status"):
                with Horizontal(classes="row"):
                    yield Label(name)
                    # Stored values are untrusted: shown as Text, never parsed as markup.
                    options = [(Text(strip_controls(v)), v) for v in self.choices.get(name, [])]
                    value = getattr(self.current, name)
                    if value is not None and value not in self.choices.get(name, []):
                        options.insert(0, (Text(strip_controls(value)), value))
                    yield Select(
                        options, id=f"f-{name}", prompt="any",
                        value=value if value is not None else Select.NULL, compact=True,
                    )  # fmt: skip
            with Horizontal(classes="row"):
                yield Label("machine")
                # Host names and CPU models come from other machines' exports: Text, inert.
                machines = [(Text(strip_controls(label)), mid) for label, mid in self.machines]
                value = self.current.machine
                if value is not None and value not in {mid for _, mid in self.machines}:
                    machines.insert(0, (Text(strip_controls(value)), value))
                yield Select(
                    machines, id="f-machine", prompt="any",
                    value=value if value is not None else Select.NULL, compact=True,
                )  # fmt: skip
            for name in ("since", "until"):
                with Horizontal(classes="row"):
                    yield Label(name)
                    yield Input(
                        getattr(self.current, name) or "",
                        placeholder="YYYY-MM-DD (UTC)",
                        id=f"f-{name}",
                        compact=True,
                    )
            with Horizontal(classes="row"):
                yield Label("min score")
                score = self.current.min_score
                yield Input(
                    f"{score:g}" if score is not None else "",
                    placeholder="0-10: scored runs at or above it",
                    id="f-min_score",
                    compact=True,
                )
            yield Static("", id="filter-error")
            yield Button("Apply", id="apply", variant="primary", compact=True)

    def _collect(self) -> Filters | None:
        values: dict[str, str | float | None] = {}
        for name in ("model", "backend", "host", "status", "machine"):
            value = self.query_one(f"#f-{name}", Select).value
            values[name] = None if value is Select.NULL else str(value)
        for name in ("since", "until"):
            text = self.query_one(f"#f-{name}", Input).value.strip()
            if text:
                try:
                    datetime.fromisoformat(text)
                except ValueError:
                    self.query_one("#filter-error", Static).update(  # typed text: no markup
                        Text(f"{name}: {strip_controls(text)!r} is not a date; use YYYY-MM-DD.")
                    )
                    return None
            values[name] = text or None
        text = self.query_one("#f-min_score", Input).value.strip()
        values["min_score"] = None
        if text:
            try:
                score = float(text)
            except ValueError:
                score = -1.0
            if not 0.0 <= score <= 10.0:
                self.query_one("#filter-error", Static).update(
                    Text(f"min score: {strip_controls(text)!r} is not a score; give 0 to 10.")
                )
                return None
            values["min_score"] = score
        return replace(self.current, **values)  # type: ignore[arg-type]

    @on(Input.Submitted)
    def _submitted(self) -> None:
        filters = self._collect()
        if filters is not None:
            self.dismiss(filters)

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self._submitted()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_clear(self) -> None:
        self.dismiss(Filters())


class ExportScreen(ModalScreen[tuple[str, Path] | None]):
    """Choose a format and a path; the path's extension follows the chosen format."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical { width: 76; height: auto; border: thick $accent; padding: 0 1;
                              background: $surface; }
    ExportScreen Select { width: 20; }
    ExportScreen #export-error { color: $error; height: auto; }
    """

    def __init__(self, what: str, default_path: Path) -> None:
        super().__init__()
        self.what = what
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Export {self.what}. Enter writes the file, Esc cancels.")
            yield Select([(f, f) for f in EXPORT_FORMATS], value="json", allow_blank=False,
                         id="export-format")  # fmt: skip
            yield Input(str(self.default_path), id="export-path")
            yield Static("", id="export-error")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(Select.Changed, "#export-format")
    def _format_changed(self, event: Select.Changed) -> None:
        path_input = self.query_one("#export-path", Input)
        path_input.value = str(Path(path_input.value).with_suffix(f".{event.value}"))

    @on(Input.Submitted, "#export-path")
    def _submitted(self, event: Input.Submitted) -> None:
        fmt = str(self.query_one("#export-format", Select).value)
        text = event.value.strip()
        if not text:
            self.query_one("#export-error", Static).update("Give a file path to write.")
            return
        self.dismiss((fmt, Path(text).expanduser()))

    def action_cancel(self) -> None:
        self.dismiss(None)
