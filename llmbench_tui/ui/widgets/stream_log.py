"""A plain-text, word-wrapping, append-only log for streamed model output.

Textual's ``Log`` does not wrap and ``RichLog`` starts a new line per write; a ``TextArea`` keeps
an undo history and a cursor. Streams need something smaller: appending text must cost work
proportional to the text appended, not to the whole answer. Greedy word wrap is prefix-stable
(earlier visual lines never change when text is added at the end), so an append only re-wraps the
last visual line. Rendering draws just the visible rows from the wrapped lines.

The text given to ``append`` must already be inert (``safe_text``); it is drawn as plain
segments, never parsed as markup.
"""

from __future__ import annotations

import re

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

_WORDS = re.compile(r"\S+\s*|\s+")


def wrap_line(line: str, width: int) -> list[str]:
    """Greedy word wrap of one logical line to ``width`` cells; long words are split."""
    if width <= 0 or (len(line) <= width and cell_len(line) <= width):
        return [line]
    out: list[str] = []
    cur, cur_w = "", 0
    for match in _WORDS.finditer(line):
        word = match.group()
        w = cell_len(word)
        # Trailing spaces may hang past the edge; only the visible part has to fit.
        if cur_w + cell_len(word.rstrip()) <= width:
            cur, cur_w = cur + word, cur_w + w
            continue
        if cur:
            out.append(cur)
        pieces = chop_cells(word, width) if cell_len(word.rstrip()) > width else [word]
        out.extend(pieces[:-1])
        cur = pieces[-1]
        cur_w = cell_len(cur)
    out.append(cur)
    return out


class StreamLog(ScrollView, can_focus=True):
    """Append-only wrapped text; stays pinned to the bottom unless the user scrolled up."""

    DEFAULT_CSS = """
    StreamLog {
        background: $surface;
        color: $text;
        overflow-x: hidden;
        overflow-y: scroll;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._logical: list[str] = [""]
        self._visual: list[str] = [""]
        self._wrap_width = 0

    @property
    def text(self) -> str:
        """Everything appended so far."""
        return "\n".join(self._logical)

    @property
    def visual_lines(self) -> list[str]:
        """The wrapped lines as drawn (a copy)."""
        return list(self._visual)

    def _width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _rewrap_all(self) -> None:
        width = self._wrap_width
        self._visual = []
        for line in self._logical:
            self._visual.extend(wrap_line(line, width))

    def append(self, text: str) -> None:
        """Add inert text at the end; cost is proportional to ``text``."""
        if not text:
            return
        pinned = self.is_vertical_scroll_end
        parts = text.split("\n")
        width = self._wrap_width
        last = self._visual.pop()
        self._logical[-1] += parts[0]
        self._visual.extend(wrap_line(last + parts[0], width))
        for part in parts[1:]:
            self._logical.append(part)
            self._visual.extend(wrap_line(part, width))
        self._update_virtual_size()
        if pinned:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def clear(self) -> None:
        self._logical = [""]
        self._visual = [""]
        self._update_virtual_size()
        self.scroll_home(animate=False, immediate=True)
        self.refresh()

    def _update_virtual_size(self) -> None:
        """Grow the scrollable area without a screen-wide layout pass.

        ``virtual_size`` is a layout reactive: assigning it re-lays-out the whole screen, which
        at a dozen flushes a second was most of the dashboard's CPU. The vertical scrollbar is
        always shown (``overflow-y: scroll``), so more lines never change the layout; setting
        the value quietly and updating the scrollbars (as oterm does with ``set_reactive``) is
        enough.
        """
        size = Size(self._wrap_width, len(self._visual))
        if size == self.virtual_size:
            return
        if self.is_mounted and self.show_vertical_scrollbar:
            self.set_reactive(StreamLog.virtual_size, size)
            self._scroll_update(size)
        else:
            self.virtual_size = size

    def on_resize(self) -> None:
        width = self._width()
        if width != self._wrap_width:
            pinned = self.is_vertical_scroll_end
            self._wrap_width = width
            self._rewrap_all()
            self._update_virtual_size()
            if pinned:
                self.scroll_end(animate=False, immediate=True, x_axis=False)

    def render_line(self, y: int) -> Strip:
        style = self.rich_style
        width = self.size.width
        index = self.scroll_offset.y + y
        if index >= len(self._visual):
            return Strip.blank(width, style)
        line = self._visual[index]
        return Strip([Segment(line, style)]).crop_extend(0, width, style)
