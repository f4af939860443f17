"""Compare marked runs: side-by-side figures, % differences, noise verdicts, bars per side.

The sides are chosen from what was marked: one side per model when several models are marked,
else one per machine (the same model measured on different machines), else one per session, else
one per run. The first side is the baseline; every other side is
compared with it through ``compare.compare_records`` (Welch's t-test over the repetitions, the
same logic as ``llmbench compare``), so the screen and the command line never disagree. With one
counted run a side there is no spread, and the verdict column says ``n<2`` instead of guessing.

Above the table, the same sentences as ``llmbench compare`` when a comparison rests on shaky
ground: sides measured on different machines (or one machine whose driver, kernel or OS changed:
``compare.machine_notes``), and runs measured beside other work or holding physically impossible
figures (``compare.condition_notes``). The machine of each run is its ``machine`` block, which
the history screen fills in from the session for runs stored before runs carried one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..compare import (
    FigureDiff,
    compare_records,
    condition_notes,
    machine_key,
    machine_label,
    machine_notes,
    record_machines,
    values,
)
from ..engine.stats import counted
from ..formatting import local_time, short_host
from ..safe_text import inert, strip_controls
from .charts import BarChart

# Figures shown, in order (client and server side by side, as everywhere else).
FIGURES = (
    ("TTFT s", "timings.ttft_s", "{:.3f}"),
    ("decode tok/s", "timings.decode_tok_s", "{:.1f}"),
    ("server tok/s", "server.decode_tok_s", "{:.1f}"),
    ("prompt tok/s", "server.prompt_tok_s", "{:.1f}"),
    ("load s", "server.load_s", "{:.3f}"),
    ("e2e s", "timings.e2e_s", "{:.3f}"),
    ("TPOT s", "timings.tpot_s", "{:.4f}"),
    ("out tokens", "tokens.output", "{:.0f}"),
    ("J/token", "efficiency.j_per_token", "{:.3f}"),
    ("score", "quality.score", "{:.1f}"),
)
VERDICT_STYLE = {"real": "bold", "noise": "dim", "n<2": "dim italic"}


def _machine(record: dict[str, Any]) -> dict[str, Any] | None:
    block = record.get("machine")
    return block if isinstance(block, dict) else None


def machine_side(record: dict[str, Any]) -> str:
    """The machine that did the work, named (``compare.machine_label``)."""
    block = _machine(record)
    key = machine_key(record, block) or "?"
    return machine_label(key, block)


def side_key(records: list[dict[str, Any]]) -> tuple[str, Callable[[dict[str, Any]], str]]:
    """How to split the marked runs into sides: by model, else machine, else session, else run."""
    models = {f"{r.get('model')} ({short_host(r)})" for r in records}
    if len(models) > 1:
        return "model", lambda r: f"{r.get('model')} ({short_host(r)})"
    machines = {machine_key(r, _machine(r)) for r in records}
    if len(machines - {None}) > 1:
        return "machine", machine_side
    if len({r.get("session_id") for r in records}) > 1:
        return "session", lambda r: str(r.get("session_id"))
    # The whole id keys the side (prefixes of ids made in the same second can collide).
    return "run", lambda r: f"{local_time(r.get('started_at'), short=True)} {r.get('id')}"


def split_sides(records: list[dict[str, Any]]) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """Sides in the order their first run was marked."""
    kind, key = side_key(records)
    sides: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        sides.setdefault(key(record), []).append(record)
    return kind, sides


def diffs_against_base(sides: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, FigureDiff]]:
    """For every side after the first: figure path -> its diff against the first side."""
    names = list(sides)
    base = sides[names[0]]
    out: dict[str, dict[str, FigureDiff]] = {}
    for name in names[1:]:
        out[name] = {d.figure: d for d in compare_records(base, sides[name])}
    return out


def caution_notes(
    sides: dict[str, list[dict[str, Any]]], short: Callable[[str], str], kind: str = "model"
) -> list[str]:
    """``machine_notes`` and ``condition_notes`` of every side against the first (the baseline),
    each sentence once. Sides split by machine are each one machine by construction: the title
    says so, and "ran on different machines" would only repeat it."""
    names = list(sides)
    base = sides[names[0]]
    base_machines = record_machines(base)
    notes: list[str] = []
    for name in names[1:]:
        pair = (short(names[0]), short(name))
        found = []
        if kind != "machine":
            found = machine_notes(base_machines, record_machines(sides[name]), pair)
        found += condition_notes(base, sides[name], pair)
        notes.extend(n for n in found if n not in notes)
    return notes


def mean_sd(records: list[dict[str, Any]], path: str, fmt: str) -> str:
    xs = values(counted(records), path)
    if not xs:
        return "-"
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return f"{fmt.format(mean)} (n=1)"
    sd = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5
    return f"{fmt.format(mean)} ± {fmt.format(sd)} (n={len(xs)})"


class CompareScreen(Screen):
    """Side-by-side figures of the marked runs; Escape goes back."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    CompareScreen #compare-title { height: auto; background: $boost; padding: 0 1; }
    CompareScreen #compare-table { height: auto; max-height: 14; }
    CompareScreen #compare-note { height: auto; color: $text-muted; padding: 0 1; }
    CompareScreen #compare-cautions { height: auto; color: $warning; padding: 0 1; }
    CompareScreen #bars { height: 12; }
    CompareScreen #bars BarChart { width: 1fr; height: 12; }
    """

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__()
        self.records = records
        self.kind, self.sides = split_sides(records)
        self.diffs = diffs_against_base(self.sides)

    def compose(self) -> ComposeResult:
        names = list(self.sides)
        yield Static(
            Text(f"{len(self.records)} runs in {len(names)} sides by {self.kind}; "
                 f"baseline: {strip_controls(names[0])}"), id="compare-title",
        )  # fmt: skip
        with VerticalScroll():
            cautions = caution_notes(self.sides, self._short, self.kind)
            if cautions:
                # Host names and CPU models can come from another machine's export: inert.
                yield Static(inert("\n".join(f"! {n}" for n in cautions)), id="compare-cautions")
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            excluded = len(self.records) - len(counted(self.records))
            note = (
                "Δ% is each side against the baseline; 'real' means Welch's t-test p < 0.05 over "
                "the repetitions, 'noise' means the difference is within run-to-run spread, "
                "'n<2' that a side has too few runs to tell."
            )
            if excluded:
                note += (
                    f" {excluded} warm-up, cold or failed runs are left out, as in every statistic."
                )
            yield Static(Text(note), id="compare-note")
            with Horizontal(id="bars"):
                yield self._bars("decode tok/s (mean)", "timings.decode_tok_s", "bar-decode")
                yield self._bars("TTFT s (mean)", "timings.ttft_s", "bar-ttft")
        yield Footer()

    def _bars(self, title: str, path: str, id: str) -> BarChart:
        labels, means = [], []
        for name, records in self.sides.items():
            xs = values(counted(records), path)
            labels.append(self._short(name))
            means.append(sum(xs) / len(xs) if xs else None)
        return BarChart(title, labels, means, id=id)

    def _short(self, name: str) -> str:
        """A column-sized side name; a run keeps its id's end, which differs between runs."""
        name = strip_controls(name)
        if len(name) <= 28:
            return name
        return name[:11] + " …" + name[-15:] if self.kind == "run" else name[:27] + "…"

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        names = list(self.sides)
        table.add_column("figure", key="figure")
        for i, name in enumerate(names):
            table.add_column(Text(self._short(name)), key=f"side{i}")
            if i:
                table.add_column(f"Δ% {i}", key=f"pct{i}")
                table.add_column(f"noise? {i}", key=f"verdict{i}")
        for label, path, fmt in FIGURES:
            cells: list[Any] = [label]
            for i, name in enumerate(names):
                cells.append(Text(mean_sd(self.sides[name], path, fmt), justify="right"))
                if i:
                    diff = self.diffs[name].get(path)
                    cells.extend(self._diff_cells(diff))
            if any(str(c) not in ("-", "") for c in cells[1:]):
                table.add_row(*cells, key=path)
        table.focus()

    @staticmethod
    def _diff_cells(diff: FigureDiff | None) -> list[Text]:
        if diff is None or diff.change_pct is None:
            return [Text("-", justify="right"), Text("-")]
        style = ""
        if diff.verdict == "real" and diff.better is not None:
            style = "green" if diff.better else "red"
        return [
            Text(f"{diff.change_pct:+.1f}", style=style, justify="right"),
            Text(diff.verdict, style=VERDICT_STYLE.get(diff.verdict, "")),
        ]
