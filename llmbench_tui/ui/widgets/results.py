"""The result strip shown when a session finishes: the ``--batch`` summary table and two bar charts
(decode tok/s and TTFT per model), so the dashboard and the headless tool show the same figures.

When some run was scored (its prompt had checks), a line under the table gives each model's
quality score as ``mean ± stdev (n=N)`` over its counted runs (warm-up, cold and failed runs left
out, as in every statistic); the table itself has the score per model and prompt.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from ...engine.report import cell, footnotes, group_label, summary_table
from ...engine.stats import GroupSummary, counted, describe
from ...safe_text import inert, one_line, strip_controls
from .session_extras import SessionExtras


class GroupMeansChart(PlotextPlot):
    """A horizontal bar chart of one figure's mean per group."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title

    def show(self, labels: list[str], values: list[float]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        if labels:
            plt.bar(labels, values, orientation="horizontal", width=0.4)
        self.refresh()


def score_line(records: list) -> str | None:
    """``score (0-10): embedded 7.5 ± 1.2 (n=3) · …`` over the counted runs that were scored,
    per model in the order they ran; ``None`` when no run has a score. ``records`` are
    ``RunRecord``s or their JSON form."""
    rows = [r.to_json() if hasattr(r, "to_json") else r for r in records]
    scores: dict[str, list[float]] = {}
    for record in counted(rows):
        quality = record.get("quality")
        score = quality.get("score") if isinstance(quality, dict) else None
        label = str(record.get("model_spec") or record.get("model"))
        if isinstance(score, int | float) and not isinstance(score, bool):
            scores.setdefault(label, []).append(float(score))
    if not scores:
        return None
    parts = [f"{one_line(label, 40)} {cell(describe(xs), '{:.1f}')}"
             for label, xs in scores.items()]  # fmt: skip
    return "score (0-10): " + " · ".join(parts)


def _short(label: str, width: int = 18) -> str:
    # Plotext's picture is read back with ``Text.from_ansi``: an escape in a label would style it.
    label = strip_controls(label)
    return label if len(label) <= width else "…" + label[-(width - 1) :]


class ResultStrip(Vertical):
    """Summary table over two charts; hidden until a session has finished."""

    DEFAULT_CSS = """
    ResultStrip { height: 14; display: none; border-top: solid $primary; }
    ResultStrip.-shown { display: block; }
    ResultStrip.-scored { height: 15; }
    ResultStrip > DataTable { height: auto; max-height: 6; }
    ResultStrip > .score { height: auto; max-height: 2; display: none; }
    ResultStrip.-scored > .score { display: block; }
    ResultStrip > .notes { height: auto; max-height: 2; color: $text-muted; }
    ResultStrip > Horizontal { height: 1fr; min-height: 6; }
    ResultStrip.-extras { height: 55%; min-height: 14; }
    ResultStrip.-extras > Horizontal { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield DataTable(zebra_stripes=True, cursor_type="row", id="summary-table")
        yield Static("", classes="score", id="score-line")
        yield Static("", classes="notes")
        yield SessionExtras(id="extras")
        with Horizontal():
            yield GroupMeansChart("decode tok/s (mean)", id="chart-decode")
            yield GroupMeansChart("TTFT s (mean)", id="chart-ttft")

    def show(self, groups: list[GroupSummary], records: list | None = None) -> None:
        """Fill the strip from a finished session's groups (and its records, for the per-model
        score line) and show it."""
        scores = score_line(records or [])
        self.query_one("#score-line", Static).update(inert(scores or ""))
        self.set_class(scores is not None, "-scored")
        rows = summary_table(groups)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*(Text(h) for h in rows[0]))
        for row in rows[1:]:
            table.add_row(*(inert(c) for c in row))  # model names, prompt ids
        # Footnotes carry model names and the servers' error sentences.
        self.query_one(".notes", Static).update(inert("\n".join(footnotes(groups))))
        labels, decode, ttft_labels, ttft = [], [], [], []
        for g in groups:
            label = _short(group_label(g))
            if (s := g.figures.get("timings.decode_tok_s")) is not None:
                labels.append(label)
                decode.append(s.mean)
            if (s := g.figures.get("timings.ttft_s")) is not None:
                ttft_labels.append(label)
                ttft.append(s.mean)
        self.query_one("#chart-decode", GroupMeansChart).show(labels, decode)
        self.query_one("#chart-ttft", GroupMeansChart).show(ttft_labels, ttft)
        self.add_class("-shown")
