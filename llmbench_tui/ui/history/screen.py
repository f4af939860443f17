"""The history screen: every stored run, searchable, filterable, sortable, groupable.

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
  screen only through ``safe_text``.
- Whatever finishes later (a worker's result, a timer) may find the screen gone: workers hand their
  results over with ``call_from_thread``, which runs them as tasks of the app, not as messages of
  this screen, so they can arrive after a dismiss, even while its widgets are being removed. Each
  of them asks ``is_open`` first, and leaving cancels the screen's workers and timers at once
  (``on_screen_suspend``) rather than when Textual unmounts it, after its widgets are gone.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from ... import config
from ...safe_text import notify_inert, one_line, strip_controls
from ...store import RunQuery, RunStore, StoreError
from ..compare_view import CompareScreen
from ..run_detail import RunDetailScreen
from ..trends import TrendsScreen
from .columns import (
    BLANK,
    COLUMN_BY_KEY,
    COLUMNS,
    MARK,
    Column,
    columns_for,
    group_cells,
    run_cells,
)
from .filters import Filters
from .grouping import GROUP_MODES, UNKNOWN_MACHINE, Group, group_runs
from .modals import FilterScreen
from .run_actions import RunActions
from .widgets import KeyFooter, RunTable, SearchInput

PAGE = 100
DEBOUNCE_S = 0.15


def machine_choice(block: dict[str, Any], runs: int) -> str:
    """A machine in the filter's list, on one line of the dialog: host, CPU, id, runs."""
    host = one_line(block.get("hostname") or "?", 15)
    cpu = one_line(block.get("cpu") or "unknown CPU", 16)
    return f"{host} · {cpu} · {str(block.get('machine_id'))[:8]} ({runs} runs)"


@dataclass
class _Result:
    """What one query worker hands back to the event loop."""

    rows: list[dict[str, Any]]
    more: bool
    total: int  # runs matching the query, on every page
    groups: list[Group] | None
    query_ms: float


class HistoryScreen(RunActions, Screen):
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
        Binding("H", "html_report", "HTML report", show=False),
        Binding("d,delete", "delete", "Delete"),
        Binding("y", "copy_id", "Copy id"),
        Binding("Y", "copy_response", "Copy response", show=False),
        Binding("J", "judge", "Judge", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, store: RunStore, *, data_dir: Path | None = None, can_rerun: bool = True):
        super().__init__()
        self.store = store
        self.data_dir = data_dir or config.data_dir()
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
        self._debounce: Timer | None = None
        self._choices_timer: Timer | None = None
        self._cursor_at_end = False
        self._choices: dict[str, list[str]] | None = None
        self._machines: list[tuple[str, str]] | None = None  # (label, machine id), for the filter
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

    # -- leaving --------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether results may still be drawn here: the screen is on the app's screen stack (shown,
        or under a view it opened) and running. A dismissed screen leaves the stack at once; its
        message loop stops before its widgets are removed. (Textual's own signals skip a node on
        the same terms.)"""
        return self.is_attached and self.is_running and self in self.app.screen_stack

    def on_screen_suspend(self) -> None:
        """Covered by a view it opened, or dismissed: once dismissed, nothing it started may
        finish here (Textual cancels a node's workers only on unmount, after its widgets went)."""
        if self.is_attached and self not in self.app.screen_stack:
            for timer in (self._debounce, self._choices_timer):
                if timer is not None:
                    timer.stop()
            self.workers.cancel_node(self)

    # -- querying -----------------------------------------------------------------------------

    @property
    def sort(self) -> str:
        path = COLUMN_BY_KEY[self.sort_key].path
        return f"-{path}" if self.descending else path

    def run_query(self, limit: int | None, offset: int = 0) -> RunQuery:
        f = self.filters
        return RunQuery(
            search=self.search or None, model=f.model, backend=f.backend, host=f.host,
            status=f.status, session_id=f.session_id, since=f.since, until=f.until,
            machine=f.machine, min_score=f.min_score, sort=self.sort, limit=limit, offset=offset,
        )  # fmt: skip

    def reload(self) -> None:
        """Query the page being shown (or every match, when grouped) off the event loop."""
        if self.group_mode:
            self._query(self.run_query(None), self.group_mode, 0)
        else:
            # One page (and one run more, to know there is a next) from the store: a database
            # pages in SQL, so a late page costs what the first does.
            self._query(self.run_query(PAGE + 1, self.page * PAGE), None, self.page)

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
            total = self.store.count(query) if cut else query.offset + len(found)
        except StoreError as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._query_failed, str(exc))
            return
        rows = found[:PAGE] if not group_mode else found
        with contextlib.suppress(StoreError):  # then the machine column says "-", that is all
            self._with_machines(rows)
        groups = group_runs(found, group_mode) if group_mode else None
        result = _Result(
            rows=rows,
            more=len(found) > PAGE and not group_mode,
            total=total,
            groups=groups,
            query_ms=(time.perf_counter() - start) * 1000,
        )
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, result)

    def _with_machines(self, rows: list[dict[str, Any]]) -> None:
        """Give each shown run its machine block: runs stored before runs carried one take their
        session's (``Store.machine_of``). The rows are the query's own copies, so the stored
        runs are not touched; the detail, compare and grouping read the block from the row."""
        sessions = None
        for record in rows:
            if isinstance(record.get("machine"), dict) or not record.get("session_id"):
                continue
            if sessions is None:
                sessions = self.store.sessions_by_id()
            block = self.store.machine_of(record, sessions)
            if block:
                record["machine"] = block

    def _query_failed(self, message: str) -> None:
        if not self.is_open:  # dismissed while the worker ran: nothing to draw
            return
        self.query_one(KeyFooter).release()
        self.notify(strip_controls(message), severity="error", title="History", markup=False)

    def _show(self, result: _Result) -> None:
        if not self.is_open:  # dismissed while the worker ran: nothing to draw
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
            self._choices_timer = self.set_timer(1.0, self._load_choices_later)

    def _load_choices_later(self) -> None:
        self._choices_timer = None
        if self.is_open and self._choices is None:
            self._load_choices(open_after=False)

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
        columns = columns_for(self.group_mode)
        if table.columns and self._columns_for == self.group_mode:
            table.clear()
            for col in columns:
                column = table.columns[col.key]  # type: ignore[index]
                column.label = self._column_label(col)
                column.content_width = max(column.content_width, column.label.cell_len)
        else:
            table.clear(columns=True)
            table.add_column(" ", key="mark", width=1)
            for col in columns:
                table.add_column(self._column_label(col), key=col.key)
            self._columns_for = self.group_mode
        self._labels_for = (self.sort_key, self.descending)
        if self.groups is not None:
            for group in self.groups:
                cells = group_cells(group, self.group_mode)
                table.add_row(BLANK, *cells, key=f"group:{group.label}")
        else:
            for record in self.rows:
                table.add_row(*run_cells(record, record["id"] in self.marked), key=record["id"])
        if self._cursor_at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)
        self._cursor_at_end = False
        self._update_status()

    def _column_label(self, col: Column) -> Text:
        if col.key != self.sort_key:
            return Text(col.label)
        return Text(f"{col.label} {'▼' if self.descending else '▲'}", style="bold")

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
            parts.append(self._filters_shown())
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        # Filter values can be stored strings (a model or host name): no escapes reach the line.
        self.query_one("#history-status", Static).update(Text(strip_controls(" · ".join(parts))))

    def _filters_shown(self) -> str:
        """The filters for the status line; a machine chosen from the list by its id is named by
        its host too."""
        shown = self.filters.describe()
        machine = self.filters.machine
        name = next((label for label, mid in self._machines or [] if mid == machine), None)
        if machine and name:
            host = name.split(" · ", 1)[0]
            shown = shown.replace(f"machine={machine}", f"machine={host} ({machine})")
        return shown

    # -- search -------------------------------------------------------------------------------

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, lambda: self._apply_search(event.value))

    def _apply_search(self, text: str) -> None:
        self._debounce = None
        if self.is_open and text.strip() != self.search:
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
        try:  # asked of the store: a database answers without sending every run
            choices = {name: self.store.distinct(name)
                       for name in ("model", "backend", "host", "status")}  # fmt: skip
        except StoreError as exc:
            self.app.call_from_thread(self._choices_failed, str(exc))
            return
        try:
            machines = self.store.machines()
        except StoreError:
            machines = []
        self._machines = [(machine_choice(block, runs), str(block["machine_id"]))
                          for block, runs in machines]  # fmt: skip
        self._choices = choices
        if open_after:
            self.app.call_from_thread(self._push_filters, self._choices)

    def _choices_failed(self, message: str) -> None:
        if self.is_open:  # dismissed while the worker ran: nobody asked any more
            notify_inert(self, message, severity="error")

    def _push_filters(self, choices: dict[str, list[str]]) -> None:
        if not self.is_active:  # dismissed, or another view opened, while the worker ran
            return

        def done(filters: Filters | None) -> None:
            if filters is not None:
                self.set_filters(filters)

        self.app.push_screen(FilterScreen(self.filters, choices, self._machines), done)

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
                mode, self.group_mode = self.group_mode, None
                self.set_filters(self._group_filter(group, mode))
            return
        record = self.current_record()
        if record is not None:
            self.open_detail(record)

    def _group_filter(self, group: Group, mode: str | None) -> Filters:
        """The filters that open a group: its session, model or machine (a remote server's
        runs by their host; runs of an unknown machine cannot be filtered, only ungrouped); a
        grid cell opens as its session and model, so its neighbouring cells are listed too."""
        if mode == "session":
            return replace(self.filters, session_id=group.key or None)
        if mode == "grid":
            if not group.key:  # the runs outside any grid
                return self.filters
            model = group.records[0].get("model")
            return replace(self.filters, session_id=group.key, model=str(model) if model else None)
        if mode == "machine":
            if group.key.startswith("host:"):
                return replace(self.filters, host=group.key.removeprefix("host:"))
            if group.key == UNKNOWN_MACHINE:
                return self.filters
            return replace(self.filters, machine=group.key)
        return replace(self.filters, model=group.key)

    @work(thread=True, exclusive=True, group="detail")
    def open_detail(self, record: dict[str, Any]) -> None:
        """Read the run's series off the event loop (the store may wait for another process's
        lock), then open the detail screen."""
        try:
            series = self.store.series(record["id"])
        except StoreError as exc:
            self.app.call_from_thread(self._query_failed, str(exc))
            series = None
        session = None
        sid = record.get("session_id")
        with contextlib.suppress(StoreError):  # then the detail shows no session environment
            session = self.store.get_session(sid) if isinstance(sid, str) and sid else None
        self.app.call_from_thread(self._push_detail, record, series, session)

    def _push_detail(
        self,
        record: dict[str, Any],
        series: dict[str, Any] | None,
        session: dict[str, Any] | None = None,
    ) -> None:
        if not self.is_active:  # dismissed, or another view opened, while the worker ran
            return
        self.app.push_screen(RunDetailScreen(record, series, session=session))

    def action_toggle_mark(self) -> None:
        record = self.current_record()
        if record is None or self.groups is not None:
            return
        if self.marked.pop(record["id"], None) is None:
            self.marked[record["id"]] = record
        table = self.query_one(RunTable)
        table.update_cell(record["id"], "mark", MARK if record["id"] in self.marked else BLANK)
        self._update_status()
        table.action_cursor_down()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark at least two runs with space, then press c.", severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked.values())))

    def action_trends(self) -> None:
        record = self._need_run()
        if record is not None:
            self.app.push_screen(TrendsScreen(self.store, record))

    def action_close(self) -> None:
        self.dismiss(None)
