"""The history screen: every stored run, searchable, filterable, sortable, groupable (R-UI-4).

Why it is built this way:

- The table is a window, not the database: each query asks the store for one page more than is
  shown (``limit``), so opening the screen or typing a search letter costs one page of rows
  however many runs are stored. The store copies every record it returns, so asking for all
  10,000 runs per keystroke would cost a third of a second; a page costs a few milliseconds.
  Grouping, exporting and the filter choices need every matching run and ask for them only when
  the user asks for those.
- Queries run in a thread worker (``exclusive``: a newer keystroke supersedes an older query) after
  a short debounce, so typing never waits for the store.
- Every action has a key shown in the footer; nothing needs a mouse. Model output reaches the
  screen only through ``safe_text`` (R-UI-7).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.geometry import Region
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.strip import Strip
from textual.widgets import Button, DataTable, Footer, Input, Label, Select, Static
from textual.worker import get_current_worker

from ..config import db_path
from ..engine.report import cell
from ..engine.stats import counted, describe
from ..formatting import local_time, short_host
from ..safe_text import one_line, strip_controls
from ..schema import get_path
from ..store import RunQuery, Store, StoreError, freeze_loaded_runs
from .clipboard import copy_text

PAGE = 100
DEBOUNCE_S = 0.15
EXPORT_FORMATS = ("json", "jsonl", "csv", "md")


@dataclass(frozen=True)
class RerunRequest:
    """What the history screen dismisses with to ask the dashboard to run a configuration again."""

    model_spec: str
    prompt: str
    system: str | None
    options: dict[str, Any]


def rerun_request(record: dict[str, Any]) -> RerunRequest:
    """The configuration of a stored run as a re-run request (spec rebuilt for older records)."""
    spec = record.get("model_spec")
    if not spec:
        spec = f"{record.get('backend')}:{record.get('model')}"
        if record.get("host") and record.get("backend") != "gguf":
            spec += f"@{record['host']}"
    return RerunRequest(
        model_spec=spec,
        prompt=record.get("prompt") or "",
        system=record.get("system"),
        options=dict(record.get("options") or {}),
    )


# ---------------------------------------------------------------------------------------------
# Columns


def _fmt(pattern: str) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        return pattern.format(value) if isinstance(value, int | float) else "-"

    return show


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    path: str  # the record path the store sorts by
    show: Callable[[dict[str, Any]], str]
    numeric: bool = False
    fmt: str = "{:.1f}"


class Cell:
    """One line of plain text in a table cell: what every run-table cell is.

    A DataTable renders a ``Text`` cell through Rich's general machinery (markup parsing for a
    ``str``, wrapping, justifying, joining lines), about a third of a millisecond per cell here:
    ~100 ms for a 100x30 screen of runs, plus ~45 ms measuring a page's 1,200 cells. This
    renderable is one padded segment and knows its width, which cuts both by ~60%. The text is
    never parsed as markup, so a stored prompt or model name cannot style or break the table.
    """

    __slots__ = ("right", "style", "text", "width")

    def __init__(self, text: str, style: Style | None = None, right: bool = False) -> None:
        self.text = text
        self.style = style
        self.right = right
        self.width = cell_len(text)

    def __str__(self) -> str:
        return self.text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        pad = options.max_width - self.width
        if pad < 0:
            yield Segment(set_cell_size(self.text, options.max_width), self.style)
            return
        if self.right and pad:
            yield Segment(" " * pad)
        yield Segment(self.text, self.style)
        if not self.right and pad:
            yield Segment(" " * pad)


_BLANK = Cell("")
_MARK = Cell("●", Style(bold=True))
_GREEN, _RED, _YELLOW = Style(color="green"), Style(color="red"), Style(color="yellow")
STATUS_STYLE = {"ok": _GREEN, "error": _RED, "timeout": _YELLOW, "cancelled": _YELLOW}

# Figures come before prompt and host so that they fit in 80 columns; the rest scrolls.
COLUMNS: tuple[Column, ...] = (
    Column("time", "time", "started_at", lambda r: local_time(r.get("started_at"), short=True)),
    Column("model", "model", "model", lambda r: one_line(r.get("model"), 18)),
    Column("status", "status", "status", lambda r: str(r.get("status") or "-")),
    Column("ttft", "TTFT s", "timings.ttft_s",
           lambda r: _fmt("{:.3f}")(get_path(r, "timings.ttft_s")), True, "{:.3f}"),
    Column("decode", "tok/s", "timings.decode_tok_s",
           lambda r: _fmt("{:.1f}")(get_path(r, "timings.decode_tok_s")), True),
    Column("server", "srv tok/s", "server.decode_tok_s",
           lambda r: _fmt("{:.1f}")(get_path(r, "server.decode_tok_s")), True),
    Column("tokens", "tokens", "tokens.output",
           lambda r: _fmt("{:d}")(get_path(r, "tokens.output")), True, "{:.0f}"),
    Column("jtok", "J/tok", "efficiency.j_per_token",
           lambda r: _fmt("{:.2f}")(get_path(r, "efficiency.j_per_token")), True, "{:.2f}"),
    Column("score", "score", "quality.score",
           lambda r: _fmt("{:.0f}")(get_path(r, "quality.score")), True, "{:.0f}"),
    Column("prompt", "prompt", "prompt_id",
           lambda r: one_line(r.get("prompt_id") or r.get("prompt"), 14)),
    Column("where", "backend/host", "host", lambda r: one_line(short_host(r), 24)),
)  # fmt: skip
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}


# ---------------------------------------------------------------------------------------------
# Filters and grouping


@dataclass(frozen=True)
class Filters:
    """The filter part of a ``RunQuery``; every set field narrows the list (they combine)."""

    model: str | None = None
    backend: str | None = None
    host: str | None = None
    status: str | None = None
    session_id: str | None = None
    since: str | None = None
    until: str | None = None

    def describe(self) -> str:
        set_fields = ((f.name, getattr(self, f.name)) for f in fields(self))
        return " ".join(f"{name}={value}" for name, value in set_fields if value)


GROUP_MODES = (None, "session", "model")


@dataclass
class Group:
    """One grouped row: the runs of a session or of a model (on one backend and host)."""

    key: str
    label: str
    records: list[dict[str, Any]] = field(default_factory=list)


def group_key(record: dict[str, Any], mode: str) -> tuple[str, str]:
    if mode == "session":
        sid = str(record.get("session_id") or "-")
        return sid, sid
    label = f"{record.get('model')} ({short_host(record)})"
    return label, str(record.get("model") or "")


def group_runs(records: list[dict[str, Any]], mode: str) -> list[Group]:
    """Groups in the order of their newest run (records arrive sorted)."""
    groups: dict[str, Group] = {}
    for record in records:
        label, key = group_key(record, mode)
        groups.setdefault(label, Group(key=key, label=label)).records.append(record)
    return list(groups.values())


def group_cell(records: list[dict[str, Any]], column: Column) -> str:
    """``mean ± stdev (n=N)`` over the group's counted runs (warm-up and cold runs left out)."""
    values = [
        float(v)
        for r in counted(records)
        for v in [get_path(r, column.path)]
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return cell(describe(values), column.fmt) if values else "-"


# ---------------------------------------------------------------------------------------------
# Modals


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
    """Model, backend, host, status and date range at once; Tab moves, Enter applies."""

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

    def __init__(self, current: Filters, choices: dict[str, list[str]]) -> None:
        super().__init__()
        self.current = current
        self.choices = choices

    def compose(self) -> ComposeResult:
        from textual.containers import Horizontal

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
            for name in ("since", "until"):
                with Horizontal(classes="row"):
                    yield Label(name)
                    yield Input(
                        getattr(self.current, name) or "",
                        placeholder="YYYY-MM-DD (UTC)",
                        id=f"f-{name}",
                        compact=True,
                    )
            yield Static("", id="filter-error")
            yield Button("Apply", id="apply", variant="primary", compact=True)

    def _collect(self) -> Filters | None:
        values: dict[str, str | None] = {}
        for name in ("model", "backend", "host", "status"):
            value = self.query_one(f"#f-{name}", Select).value
            values[name] = None if value is Select.NULL else str(value)
        for name in ("since", "until"):
            text = self.query_one(f"#f-{name}", Input).value.strip()
            if text:
                try:
                    datetime.fromisoformat(text)
                except ValueError:
                    self.query_one("#filter-error", Static).update(
                        f"{name}: {text!r} is not a date; use YYYY-MM-DD."
                    )
                    return None
            values[name] = text or None
        return replace(self.current, **values)

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


# ---------------------------------------------------------------------------------------------
# The screen


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
    """

    _shown: tuple | None = None
    held = True  # until release(): the first page of runs is painted before the footer

    def release(self) -> None:
        """Build the footer now (the screen calls this once its first page is painted)."""
        if self.held:
            self.held = False
            # As the footer's own message: its key widgets bind to its reactives.
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
        if self.held:
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


@dataclass
class _Result:
    """What one query worker hands back to the event loop."""

    rows: list[dict[str, Any]]
    more: bool
    total: int  # runs matching the query, on every page
    groups: list[Group] | None
    query_ms: float


class HistoryScreen(Screen):
    """Runs newest first; dismisses with a ``RerunRequest`` when the user asks to re-run one."""

    CSS_PATH = "history.tcss"
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("space", "toggle_mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("t", "trends", "Trends"),
        Binding("s", "sort_next", "Sort"),
        Binding("S", "sort_reverse", "Sort ↕", show=False),
        Binding("f", "filters", "Filter"),
        Binding("x", "clear_filters", "Clear filters", show=False),
        Binding("g", "group", "Group"),
        Binding("r", "rerun", "Re-run"),
        Binding("e", "export", "Export"),
        Binding("d,delete", "delete", "Delete"),
        Binding("y", "copy_id", "Copy id"),
        Binding("Y", "copy_response", "Copy response", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, store: Store, *, data_dir: Path | None = None, can_rerun: bool = True):
        super().__init__()
        self.store = store
        self.data_dir = data_dir or store.path.parent
        self.can_rerun = can_rerun
        self.search = ""
        self.filters = Filters()
        self.sort_key = "time"
        self.descending = True
        self.group_mode: str | None = None
        self.page = 0
        self.rows: list[dict[str, Any]] = []
        self.groups: list[Group] | None = None
        self.more = False
        self.total = 0  # runs matching the search and filters
        self.marked: dict[str, dict[str, Any]] = {}
        self.last_query_ms = 0.0
        self.last_render_ms = 0.0
        self.loaded = 0  # results shown so far; tests and the bench wait on it
        self._debounce = None
        self._cursor_at_end = False
        self._choices: dict[str, list[str]] | None = None
        self._columns_for: str | None = None  # the group mode the table's columns were built for
        self._labels_for: tuple[str, bool] | None = None  # the sort the column labels show

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield SearchInput(
            placeholder="/ search prompt, response, model, tags, error", id="search", compact=True
        )
        yield Static("", id="history-status")
        yield RunTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(RunTable).focus()
        self.reload()

    # -- querying -----------------------------------------------------------------------------

    @property
    def sort(self) -> str:
        path = COLUMN_BY_KEY[self.sort_key].path
        return f"-{path}" if self.descending else path

    def run_query(self, limit: int | None) -> RunQuery:
        f = self.filters
        return RunQuery(
            search=self.search or None, model=f.model, backend=f.backend, host=f.host,
            status=f.status, session_id=f.session_id, since=f.since, until=f.until,
            sort=self.sort, limit=limit,
        )  # fmt: skip

    def reload(self) -> None:
        """Query the page being shown (or every match, when grouped) off the event loop."""
        if self.group_mode:
            self._query(self.run_query(None), self.group_mode, 0)
        else:
            self._query(self.run_query((self.page + 1) * PAGE + 1), None, self.page)

    @work(thread=True, exclusive=True, group="history-query")
    def _query(self, query: RunQuery, group_mode: str | None, page: int) -> None:
        """The page (or, grouped, every match) and the number of matches.

        When the query was cut at its limit only ``count`` knows the total: it filters without
        sorting or copying, so "1–100 of 2,345" costs a few milliseconds more than "100+".
        """
        worker = get_current_worker()
        start = time.perf_counter()
        try:
            found = self.store.query(query)
            cut = query.limit is not None and len(found) >= query.limit
            total = self.store.count(query) if cut else len(found)
        except StoreError as exc:
            self.app.call_from_thread(self._query_failed, str(exc))
            return
        groups = group_runs(found, group_mode) if group_mode else None
        result = _Result(
            rows=found[page * PAGE : (page + 1) * PAGE] if not group_mode else found,
            more=len(found) > (page + 1) * PAGE and not group_mode,
            total=total,
            groups=groups,
            query_ms=(time.perf_counter() - start) * 1000,
        )
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, result)

    def _query_failed(self, message: str) -> None:
        if not self.is_attached:  # dismissed while the worker ran: nothing to draw
            return
        self.query_one(KeyFooter).release()
        self.notify(strip_controls(message), severity="error", title="History", markup=False)

    def _show(self, result: _Result) -> None:
        if not self.is_attached:  # dismissed while the worker ran: nothing to draw
            return
        start = time.perf_counter()
        self.rows, self.groups, self.more = result.rows, result.groups, result.more
        self.total = result.total
        self.last_query_ms = result.query_ms
        if not self.rows and self.page > 0 and not self.groups:
            self.page -= 1
            self.reload()
            return
        table = self.query_one(RunTable)
        with self.app.batch_update():
            if self._same_rows(table):
                self._update_status()  # typing a search often narrows nothing on screen
            else:
                self._fill(table)
        self.last_render_ms = (time.perf_counter() - start) * 1000
        self.loaded += 1
        if not table.row_count:  # nothing to paint first
            self.query_one(KeyFooter).release()
        if self._choices is None and self.loaded == 1:
            self.set_timer(1.0, lambda: self._load_choices(open_after=False))

    def _same_rows(self, table: RunTable) -> bool:
        """Whether the table already shows exactly these runs, in this order, with these
        columns (then a refill would only repaint the same screen)."""
        if self.groups is not None or self._columns_for is not None or self._cursor_at_end:
            return False
        if table.row_count != len(self.rows) or self._labels_for != (
            self.sort_key,
            self.descending,
        ):
            return False
        return all(row.key == r["id"] for row, r in zip(table.ordered_rows, self.rows, strict=True))

    def _fill(self, table: RunTable) -> None:
        """Replace the shown rows, keeping the columns (and their widths) from fill to fill.

        Rebuilding the columns too made every keystroke re-measure them from scratch and made
        them jump while typing; they are rebuilt only when grouping changes what they hold.
        """
        if table.columns and self._columns_for == self.group_mode:
            table.clear()
            for col in COLUMNS:
                column = table.columns[col.key]  # type: ignore[index]
                column.label = self._column_label(col)
                column.content_width = max(column.content_width, column.label.cell_len)
        else:
            table.clear(columns=True)
            table.add_column(" ", key="mark", width=1)
            for col in COLUMNS:
                table.add_column(self._column_label(col), key=col.key)
            self._columns_for = self.group_mode
        self._labels_for = (self.sort_key, self.descending)
        if self.groups is not None:
            for group in self.groups:
                table.add_row(_BLANK, *self._group_cells(group), key=f"group:{group.label}")
        else:
            for record in self.rows:
                table.add_row(*self._cells(record), key=record["id"])
        if self._cursor_at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)
        self._cursor_at_end = False
        self._update_status()

    def _column_label(self, col: Column) -> Text:
        if col.key != self.sort_key:
            return Text(col.label)
        return Text(f"{col.label} {'▼' if self.descending else '▲'}", style="bold")

    def _cells(self, record: dict[str, Any]) -> list[Cell]:
        cells = [_MARK if record["id"] in self.marked else _BLANK]
        for col in COLUMNS:
            text = col.show(record)
            if col.key == "status":
                cells.append(Cell(text, STATUS_STYLE.get(text)))
            else:
                cells.append(Cell(text, right=col.numeric))
        return cells

    def _group_cells(self, group: Group) -> list[Cell]:
        records = group.records
        ok = sum(1 for r in records if r.get("status") == "ok")
        first = records[0]
        cells: list[Cell] = []
        for col in COLUMNS:
            if col.key == "time":
                cells.append(Cell(local_time(first.get("started_at"), short=True)))
            elif col.key == "model":
                models = {str(r.get("model")) for r in records}
                cells.append(Cell(one_line(group.label if self.group_mode == "model" else
                                        ", ".join(sorted(models)), 30)))  # fmt: skip
            elif col.key == "where":
                hosts = ", ".join(sorted({short_host(r) for r in records}))
                cells.append(Cell(one_line(hosts, 24)))
            elif col.key == "prompt":
                cells.append(Cell(f"{len({r.get('prompt_id') for r in records})} prompts"))
            elif col.key == "status":
                cells.append(Cell(f"{ok}/{len(records)} ok"))
            else:
                cells.append(Cell(group_cell(records, col), right=True))
        return cells

    def _update_status(self) -> None:
        parts = []
        if self.groups is not None:
            n = sum(len(g.records) for g in self.groups)
            parts.append(f"{len(self.groups)} {self.group_mode} groups of {n} runs")
        elif not self.rows:
            parts.append("no runs match" if (self.search or self.filters.describe()) else "no runs")
        else:
            first = self.page * PAGE + 1
            last = first + len(self.rows) - 1
            parts.append(f"runs {first:,}–{last:,} of {self.total:,}")
        col = COLUMN_BY_KEY[self.sort_key]
        parts.append(f"sort {col.label} {'▼' if self.descending else '▲'}")
        if self.filters.describe():
            parts.append(self.filters.describe())
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        self.query_one("#history-status", Static).update(Text(" · ".join(parts)))

    # -- search -------------------------------------------------------------------------------

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, lambda: self._apply_search(event.value))

    def _apply_search(self, text: str) -> None:
        self._debounce = None
        if text.strip() != self.search:
            self.search = text.strip()
            self.page = 0
            self.reload()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._apply_search(event.value)
        self.query_one(RunTable).focus()

    def action_focus_search(self) -> None:
        # Synchronous, unlike Widget.focus(): letters typed right after "/" (a pasted or fast
        # "/qwen") must land in the box, not trigger the table's single-key actions.
        self.set_focus(self.query_one("#search", Input))

    # -- paging, sorting, grouping -------------------------------------------------------------

    @on(RunTable.Painted)
    def _first_paint(self) -> None:
        self.query_one(KeyFooter).release()

    @on(RunTable.PageRequest)
    def _page_request(self, event: RunTable.PageRequest) -> None:
        self.action_page(event.delta)

    def action_page(self, delta: int) -> None:
        if self.groups is not None:
            return
        if delta > 0 and not self.more:
            return
        if delta < 0 and self.page == 0:
            return
        self.page += delta
        self._cursor_at_end = delta < 0
        self.reload()

    def action_sort_next(self) -> None:
        keys = [c.key for c in COLUMNS]
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.descending = self.sort_key in ("time",) or COLUMN_BY_KEY[self.sort_key].numeric
        self.page = 0
        self.reload()

    def action_sort_reverse(self) -> None:
        self.descending = not self.descending
        self.page = 0
        self.reload()

    def action_group(self) -> None:
        self.group_mode = GROUP_MODES[(GROUP_MODES.index(self.group_mode) + 1) % len(GROUP_MODES)]
        self.page = 0
        self.notify(f"Grouped by {self.group_mode}" if self.group_mode else "Grouping off")
        self.reload()

    # -- filters -------------------------------------------------------------------------------

    def set_filters(self, filters: Filters) -> None:
        self.filters = filters
        self.page = 0
        self.reload()

    def action_filters(self) -> None:
        if self._choices is not None:
            self._push_filters(self._choices)
        else:
            self._load_choices(open_after=True)

    @work(thread=True, exclusive=True, group="history-choices")
    def _load_choices(self, open_after: bool) -> None:
        """Distinct models, backends, hosts and statuses: needs every run, so it is done once
        (in the background after the first page is shown) and again only after a delete."""
        try:
            everything = self.store.query(RunQuery(sort="model"))
        except StoreError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self._choices = {
            name: sorted({str(r.get(name)) for r in everything if r.get(name)})
            for name in ("model", "backend", "host", "status")
        }
        if open_after:
            self.app.call_from_thread(self._push_filters, self._choices)

    def _push_filters(self, choices: dict[str, list[str]]) -> None:
        if not self.is_attached:  # dismissed while the worker ran: nothing to draw
            return
        def done(filters: Filters | None) -> None:
            if filters is not None:
                self.set_filters(filters)

        self.app.push_screen(FilterScreen(self.filters, choices), done)

    def action_clear_filters(self) -> None:
        self.set_filters(Filters())

    # -- the selection --------------------------------------------------------------------------

    def _current_key(self) -> str | None:
        table = self.query_one(RunTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def current_record(self) -> dict[str, Any] | None:
        """The run under the cursor (the newest run of a group, when grouped)."""
        key = self._current_key()
        if key is None:
            return None
        if self.groups is not None:
            group = next((g for g in self.groups if f"group:{g.label}" == key), None)
            return group.records[0] if group else None
        return next((r for r in self.rows if r["id"] == key), None)

    def _need_run(self) -> dict[str, Any] | None:
        record = self.current_record()
        if record is None:
            self.notify("No run selected.", severity="warning")
        return record

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if self.groups is not None:
            key = event.row_key.value
            group = next((g for g in self.groups if f"group:{g.label}" == key), None)
            if group is not None:
                self.group_mode = None
                if self.filters.session_id is None and group.key and group.label == group.key:
                    self.set_filters(replace(self.filters, session_id=group.key))
                else:
                    self.set_filters(replace(self.filters, model=group.key))
            return
        record = self.current_record()
        if record is not None:
            self.open_detail(record)

    @work(thread=True, exclusive=True, group="detail")
    def open_detail(self, record: dict[str, Any]) -> None:
        """Read the run's series off the event loop (the store may wait for another process's
        lock), then open the detail screen."""
        from .run_detail import RunDetailScreen

        try:
            series = self.store.series(record["id"])
        except StoreError as exc:
            self.app.call_from_thread(self._query_failed, str(exc))
            series = None
        self.app.call_from_thread(self.app.push_screen, RunDetailScreen(record, series))

    def action_toggle_mark(self) -> None:
        record = self.current_record()
        if record is None or self.groups is not None:
            return
        if self.marked.pop(record["id"], None) is None:
            self.marked[record["id"]] = record
        table = self.query_one(RunTable)
        table.update_cell(record["id"], "mark", _MARK if record["id"] in self.marked else _BLANK)
        self._update_status()
        table.action_cursor_down()

    def action_compare(self) -> None:
        from .compare_view import CompareScreen

        if len(self.marked) < 2:
            self.notify("Mark at least two runs with space, then press c.", severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked.values())))

    def action_trends(self) -> None:
        from .trends import TrendsScreen

        record = self._need_run()
        if record is not None:
            self.app.push_screen(TrendsScreen(self.store, record))

    # -- actions -------------------------------------------------------------------------------

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
        if not self.is_attached:  # dismissed while the worker ran: nothing to draw
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
                self._export(*choice)

        self.app.push_screen(ExportScreen(what, default), done)

    @work(thread=True, exclusive=True, group="history-export")
    def _export(self, fmt: str, path: Path) -> None:
        from ..exporting import write_export

        try:
            records = list(self.marked.values()) or self.store.query(self.run_query(None))
            write_export(records, fmt, path)
        except (StoreError, OSError, ValueError) as exc:
            self.app.call_from_thread(self.notify, f"Export failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"Exported {len(records)} runs to {path}")

    def action_close(self) -> None:
        self.dismiss(None)


class HistoryApp(App):
    """``llmbench history --tui``: the history screen on its own, over one data directory."""

    TITLE = "llmbench history"

    def __init__(self, store: Store, data_dir: Path) -> None:
        super().__init__()
        self.store = store
        self.data_dir = data_dir

    def on_mount(self) -> None:
        screen = HistoryScreen(self.store, data_dir=self.data_dir, can_rerun=False)
        self.push_screen(screen, lambda _result: self.exit(0))



def run_history_app(data_dir: str | Path | None) -> int:
    """Open the history screen over ``data_dir``'s database; the exit status for the CLI."""
    import sys

    path = db_path(data_dir)
    try:
        store = Store(path)
    except StoreError as exc:
        print(f"llmbench: {exc}", file=sys.stderr)
        return 2
    freeze_loaded_runs()
    try:
        result = HistoryApp(store, path.parent).run()
    finally:
        store.close()
    return result if isinstance(result, int) else 0
