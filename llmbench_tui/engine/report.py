"""The summary table shared by ``--batch`` and the dashboard: one row per group, llama-bench
style ``mean ± stdev`` cells, so both faces print the very same figures.

The row's ``ok`` column says how many runs the figures rest on; a cell whose figure exists for
fewer runs (a server that did not report it every time) says its own ``(n=k)``."""

from __future__ import annotations

from .stats import GroupSummary, Stats

# (header, figure path, format) — client and server decode rates side by side, never merged.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("TTFT s", "timings.ttft_s", "{:.3f}"),
    ("decode tok/s", "timings.decode_tok_s", "{:.1f}"),
    ("server tok/s", "server.decode_tok_s", "{:.1f}"),
    ("ceiling tok/s", "efficiency.ceiling_tok_s", "{:.0f}"),
    ("prompt tok/s", "server.prompt_tok_s", "{:.1f}"),
    ("load s", "server.load_s", "{:.3f}"),
    ("out tokens", "tokens.output", "{:.0f}"),
)
# Answer quality (0-10): a column only when some group's runs were scored.
SCORE_COLUMN = ("score", "quality.score", "{:.1f}")


def cell(stats: Stats | None, fmt: str, n_row: int | None = None) -> str:
    """``mean ± stdev``, with ``(n=k)`` when k differs from the row's count (or none is given)."""
    if stats is None:
        return "-"
    text = fmt.format(stats.mean)
    if stats.stdev is not None:
        text += " ± " + fmt.format(stats.stdev)
    if stats.n != n_row:
        text += f" (n={stats.n})"
    if stats.outliers:
        text += " !"
    return text


def group_label(group: GroupSummary) -> str:
    label = group.model
    if group.cold:
        label += " [cold]"
    if group.concurrency > 1:
        label += f" [x{group.concurrency}]"
    return label


def summary_table(groups: list[GroupSummary]) -> list[list[str]]:
    """Header row, then one row per group: model, prompt, runs ok/total, then COLUMNS (and
    SCORE_COLUMN when any group has a score)."""
    columns = COLUMNS
    if any(SCORE_COLUMN[1] in g.figures for g in groups):
        columns = (*COLUMNS, SCORE_COLUMN)
    rows = [["model", "prompt", "ok", *(c[0] for c in columns)]]
    for g in groups:
        row = [group_label(g), g.prompt_id or "-", f"{g.n_ok}/{g.n_runs}"]
        row += [cell(g.figures.get(path), fmt, g.n_ok) for _, path, fmt in columns]
        rows.append(row)
    return rows


def footnotes(groups: list[GroupSummary]) -> list[str]:
    """Lines under the table: small samples, outliers, aggregate throughput, failures."""
    notes = []
    if any(0 < g.n_ok < 3 for g in groups):
        notes.append("n < 3: too few runs for a meaningful spread; raise --repetitions.")
    if any(s.outliers for g in groups for s in g.figures.values()):
        notes.append("! marks a figure with outliers (> 3 MAD from the median), kept in the mean.")
    for g in groups:
        agg = g.figures.get("concurrent.aggregate_tok_s")
        if agg is not None:
            notes.append(
                f"{group_label(g)} {g.prompt_id}: aggregate {cell(agg, '{:.1f}')} tok/s "
                f"over {g.concurrency} streams"
            )
        for err in g.errors:
            notes.append(f"{group_label(g)}: {err}")
        for warning in g.warnings:
            notes.append(f"{group_label(g)}: warning: {warning}")
        for check in g.not_run:
            notes.append(f"{group_label(g)} {g.prompt_id}: check not run, left out of the score: "
                         f"{check}")
    return notes


def render_text(rows: list[list[str]]) -> str:
    """A plain aligned text table (stdout; no colour codes so logs and pipes stay clean)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        "| " + " | ".join(esc(c) for c in rows[0]) + " |",
        "|" + "|".join("---" for _ in rows[0]) + "|",
    ]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(out)
