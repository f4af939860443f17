"""The history table's columns and cells: what each column shows, sorts by and how it is drawn.

A ``Column`` names the record path the store sorts by and how a run's value is shown; ``Cell`` is
the one-line renderable every table cell is; ``run_cells`` and ``group_cells`` build a whole row of
them for a run or for a group of runs. Rich only, no Textual: the screen and the tests both use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

from ...formatting import local_time, short_host
from ...safe_text import one_line
from ...schema import get_path
from .grouping import Group, grid_test, group_cell, record_machine

MACHINE_WIDTH = 14  # a host name, clipped: the machine's full line is in the run's detail
MACHINE_GROUP_WIDTH = 36  # grouped by machine, the cell names the machine in full(er)


def machine_name(record: dict[str, Any]) -> str:
    """The host name of the machine the run was measured from (``-`` when unknown)."""
    block = record_machine(record)
    return (one_line(block.get("hostname"), MACHINE_WIDTH) or "-") if block else "-"


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


BLANK = Cell("")
MARK = Cell("●", Style(bold=True))
_GREEN, _RED, _YELLOW = Style(color="green"), Style(color="red"), Style(color="yellow")
STATUS_STYLE = {"ok": _GREEN, "error": _RED, "timeout": _YELLOW, "cancelled": _YELLOW}
STATUS_STYLE["skipped"] = Style(color="yellow", dim=True)  # a conversation turn never sent

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
           lambda r: _fmt("{:.1f}")(get_path(r, "quality.score")), True, "{:.1f}"),
    Column("machine", "machine", "machine.hostname", machine_name),
    Column("prompt", "prompt", "prompt_id",
           lambda r: one_line(r.get("prompt_id") or r.get("prompt"), 14)),
    Column("where", "backend/host", "host", lambda r: one_line(short_host(r), 24)),
)  # fmt: skip
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}


def columns_for(mode: str | None) -> tuple[Column, ...]:
    """The table's columns in order: grouped by machine or by grid cell, the machine or the
    prompt (the cell's test) comes second, after the time, since it is what each row stands
    for."""
    lead = {"machine": "machine", "grid": "prompt"}.get(mode or "")
    if lead is None:
        return COLUMNS
    rest = tuple(c for c in COLUMNS if c.key not in ("time", lead))
    return (COLUMN_BY_KEY["time"], COLUMN_BY_KEY[lead], *rest)


def implausible(record: dict[str, Any]) -> frozenset[str]:
    """The figure paths the engine found physically impossible (``efficiency.implausible``)."""
    flagged = get_path(record, "efficiency.implausible")
    if not isinstance(flagged, list) or not flagged:
        return frozenset()
    return frozenset(p for p in flagged if isinstance(p, str))


def run_cells(record: dict[str, Any], marked: bool) -> list[Cell]:
    """A run's row: the mark column, then one cell per column. A physically impossible figure
    is marked ``!`` (red), never shown as if it were true."""
    cells = [MARK if marked else BLANK]
    flagged = implausible(record)
    for col in COLUMNS:
        text = col.show(record)
        if col.key == "status":
            cells.append(Cell(text, STATUS_STYLE.get(text)))
        elif col.path in flagged and text != "-":
            cells.append(Cell("!" + text, _RED, right=True))
        else:
            cells.append(Cell(text, right=col.numeric))
    return cells


def group_cells(group: Group, mode: str | None) -> list[Cell]:
    """A group's row, one cell per column of ``columns_for(mode)`` (the mark column is the
    caller's): its newest run's
    time, what it holds, ``ok/n`` and the ``mean ± stdev`` of each figure."""
    records = group.records
    ok = sum(1 for r in records if r.get("status") == "ok")
    first = records[0]
    cells: list[Cell] = []
    for col in columns_for(mode):
        if col.key == "time":
            cells.append(Cell(local_time(first.get("started_at"), short=True)))
        elif col.key == "model":
            models = {str(r.get("model")) for r in records}
            cells.append(Cell(one_line(group.label if mode == "model" else
                                    ", ".join(sorted(models)), 30)))  # fmt: skip
        elif col.key == "where":
            hosts = ", ".join(sorted({short_host(r) for r in records}))
            cells.append(Cell(one_line(hosts, 24)))
        elif col.key == "machine":
            if mode == "machine":
                cells.append(Cell(one_line(group.label, MACHINE_GROUP_WIDTH)))
            else:
                names = sorted({machine_name(r) for r in records})
                cells.append(Cell(one_line(", ".join(names), MACHINE_WIDTH)))
        elif col.key == "prompt":
            test = grid_test(first) if mode == "grid" else None
            n = len({r.get("prompt_id") for r in records})
            prompts = f"{n} prompt" + ("s" if n != 1 else "")
            if mode == "grid" and test is None:
                prompts = f"no grid: {prompts}"
            cells.append(Cell(one_line(test, 30) if test else prompts))
        elif col.key == "status":
            cells.append(Cell(f"{ok}/{len(records)} ok"))
        else:
            cells.append(Cell(group_cell(records, col), right=True))
    return cells
