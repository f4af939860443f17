"""The prompt editor (multi-line) and the optional system prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, TextArea


class PromptPane(Vertical):
    """A ``TextArea`` for the prompt over a one-line system prompt."""

    DEFAULT_CSS = """
    PromptPane { height: auto; }
    PromptPane > TextArea { height: 6; min-height: 3; }
    """

    def compose(self) -> ComposeResult:
        area = TextArea(id="prompt", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        area.border_title = "Prompt"
        area.cursor_blink = False  # a blinking cursor makes screenshots differ
        yield area
        yield Input(placeholder="system prompt (optional)", compact=True, id="system")

    @property
    def prompt(self) -> str:
        return self.query_one("#prompt", TextArea).text

    @property
    def system(self) -> str | None:
        return self.query_one("#system", Input).value.strip() or None

    def fill(self, prompt: str, system: str | None = None) -> None:
        self.query_one("#prompt", TextArea).text = prompt
        self.query_one("#system", Input).value = system or ""
