"""Small modal screens: key help, recent prompts, suite file path. All keyboard-first."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, OptionList
from textual.widgets.option_list import Option

from ...safe_text import inert, strip_controls


class _Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="close_dialog")]
    DEFAULT_CSS = """
    _Dialog { align: center middle; }
    _Dialog > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    _Dialog Label.hint { color: $text-muted; }
    """


class KeyHelp(_Dialog):
    """Every binding with the keys it has now (after the user's keymap), one row each."""

    BINDINGS = [*_Dialog.BINDINGS, Binding("f1,question_mark,q", "dismiss(None)", show=False)]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                Text("Keys  (remap in config.toml [keys] with the binding id)", style="bold")
            )
            table = DataTable(cursor_type="row", zebra_stripes=True, id="help-table")
            table.add_columns("keys", "does", "binding id")
            for keys, does, ident in self.rows:
                # Keys and ids come from the user's config.toml.
                table.add_row(inert(keys, "bold"), inert(does), inert(ident, "dim"))
            yield table
            yield Label(
                "Esc / F1 closes.  Tab moves between panes; space ticks a model.", classes="hint"
            )


class RecentPrompts(_Dialog):
    """Pick one of the recent prompts; dismisses with the prompt text."""

    def __init__(self, prompts: list[str]) -> None:
        super().__init__()
        self.prompts = prompts

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Recent prompts", style="bold"))
            options = [
                Option(Text(strip_controls(p).replace("\n", " ⏎ ")[:200]), id=str(i))
                for i, p in enumerate(self.prompts)
            ]
            yield OptionList(*options, id="recent-list")
            yield Label("Enter puts the prompt in the editor; Esc closes.", classes="hint")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.prompts[int(event.option.id or 0)])


class SuitePath(_Dialog):
    """Ask for a suite file path; dismisses with the text typed."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Run a suite file (TOML)", style="bold"))
            yield Input(placeholder="path/to/suite.toml", id="suite-path")
            yield Label(
                "Enter runs it (models ticked here are used when the suite names "
                "none); Esc closes.",
                classes="hint",
            )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)
