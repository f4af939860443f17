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
from time import monotonic

from rich.cells import cell_len, chop_cells
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

_WORDS = re.compile(r"\S+\s*|\s+")
SCROLLBAR_PERIOD_S = 1.0  # how often the scrollbar follows a stream (see ``sync_scrollbar``)


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
        self._line_style: Style = Style()
        self._bar_synced_at = 0.0

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
        first_changed = len(self._visual) - 1  # the old last line is re-wrapped
        last = self._visual.pop()
        self._logical[-1] += parts[0]
        self._visual.extend(wrap_line(last + parts[0], width))
        for part in parts[1:]:
            self._logical.append(part)
            self._visual.extend(wrap_line(part, width))
        if not (self.is_mounted and self.show_vertical_scrollbar):
            self._update_virtual_size()
            return
        # Quietly (no layout, no scrollbar repaint): see ``_update_virtual_size``.
        self.set_reactive(StreamLog.virtual_size, Size(width, len(self._visual)))
        top = self.scroll_offset.y
        if pinned and self.max_scroll_y != top:
            self.set_reactive(StreamLog.scroll_y, float(self.max_scroll_y))
            self.set_reactive(StreamLog.scroll_target_y, float(self.max_scroll_y))
            self.refresh()  # every row moved
        else:
            # Only the re-wrapped last line and the new ones changed: repaint just those rows.
            self.refresh_lines(first_changed, len(self._visual) - first_changed)
        now = monotonic()
        if now - self._bar_synced_at >= SCROLLBAR_PERIOD_S:
            self.sync_scrollbar()

    def sync_scrollbar(self) -> None:
        """Bring the scrollbar up to date with the text and the scroll position.

        Textual repaints a frame as the box around every changed region, and the scrollbar spans
        the log's full height; repainting it with every flush made each frame re-render every row
        of the screen (and the scrollbar itself is costly to draw). So while text streams in it
        follows at ``SCROLLBAR_PERIOD_S``; the pane calls this once more when the stream ends.
        """
        self._bar_synced_at = monotonic()
        if self.is_mounted and self.show_vertical_scrollbar:
            self._scroll_update(self.virtual_size)
            self.vertical_scrollbar.position = self.scroll_y

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
            self.sync_scrollbar()
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

    def render_lines(self, crop: Region) -> list[Strip]:
        # ``rich_style`` walks every ancestor's styles: compute it once per frame, not per row.
        self._line_style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        style = self._line_style
        width = self.size.width
        index = self.scroll_offset.y + y
        if index >= len(self._visual):
            return Strip.blank(width, style)
        line = self._visual[index]
        return Strip([Segment(line, style)]).crop_extend(0, width, style)
