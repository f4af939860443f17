"""The history screen's own widgets: the run table, the search box and a footer that rebuilds less.

They work only inside a ``HistoryScreen`` (the table and the search box find each other through
their screen) and know nothing of the store.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable, Footer, Input


class RunTable(DataTable):
    """A page of runs; moving past its first or last row asks the screen for the next page."""

    class PageRequest(Message):
        def __init__(self, delta: int) -> None:
            super().__init__()
            self.delta = delta

    class Painted(Message):
        """The table painted rows for the first time (the screen builds its footer then)."""

    _painted = False

    def render_lines(self, crop: Region) -> list[Strip]:
        lines = super().render_lines(crop)
        if self.row_count and not self._painted:
            self._painted = True
            self.post_message(self.Painted())
        return lines

    def on_key(self, event: events.Key) -> None:
        """Pass "/" and the letters typed right after it to the search box.

        Keys are queued on the focused widget before any of them is handled, and bindings run
        only when a key has bubbled up: with "/" as a plain binding, a fast or pasted "/qwen"
        would reach this table as single-key actions (q closes, d deletes...). Handling "/" here
        moves the focus at once, and later keys already queued here are passed on to the box.
        """
        search = self.screen.query_one(SearchInput)
        if event.key == "slash" and self.screen.focused is self:
            self.screen.set_focus(search)
        elif self.screen.focused is search and event.is_printable and event.character:
            search.insert_text_at_cursor(event.character)
        else:
            return
        event.stop()
        event.prevent_default()

    def action_cursor_down(self) -> None:
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.post_message(self.PageRequest(1))
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.row_count and self.cursor_row <= 0:
            self.post_message(self.PageRequest(-1))
            return
        super().action_cursor_up()


class KeyFooter(Footer):
    """Textual's footer, minus its redundant rebuilds.

    The stock footer removes and re-mounts every key widget on each focus change or binding
    refresh; opening this screen triggers five of those (~30 ms each with its 14 keys, more
    on a loaded machine), and they ran between the first page arriving and it being painted.
    Rebuilding only when the shown keys differ keeps one, and that one is held back until
    the screen releases it: mounting 14 key widgets costs as much as painting the first page,
    and, done first, it also starved the query thread of the GIL.

    Every rebuild is deferred (``release`` uses ``call_later``; Textual's ``bindings_changed``
    uses ``call_after_refresh``, which runs the rebuild on whichever screen is active by then),
    so a rebuild can arrive after the history screen was dismissed: while its widgets are being
    removed, or once this footer is detached and has no screen at all. ``recompose`` then does
    nothing, as ``Widget.recompose`` does, instead of reading ``self.screen`` (``NoScreen``).
    """

    _shown: tuple | None = None
    held = True  # until release(): the first page of runs is painted before the footer

    @property
    def _in_dom(self) -> bool:
        """Still part of a live screen: attached through it to the app, and not being removed."""
        return self.is_attached and not self._pruning

    def release(self) -> None:
        """Build the footer now (the screen calls this once its first page is painted)."""
        if self.held:
            self.held = False
            # As the footer's own message: its key widgets bind to its reactives.
            if self._in_dom:
                self.call_later(self.recompose)

    def _keys_shown(self) -> tuple | None:
        if not self._bindings_ready:
            return None
        return tuple(
            (key, b.binding.action, b.binding.description, b.binding.group, b.enabled, b.tooltip)
            for key, b in self.screen.active_bindings.items()
            if b.binding.show
        )

    async def recompose(self) -> None:
        if self.held or not self._in_dom:
            return
        shown = self._keys_shown()
        if shown is not None and shown == self._shown:
            return
        self._shown = shown
        await super().recompose()


class SearchInput(Input):
    """The search box; Escape, Down and Enter hand the keys back to the table."""

    BINDINGS = [Binding("escape,down", "leave", "Table", show=False)]

    def action_leave(self) -> None:
        self.screen.set_focus(self.screen.query_one(RunTable))
