"""The summary table shared by ``--batch`` and the dashboard: one row per group, llama-bench
style ``mean ± stdev`` cells, so both faces print the very same figures.

The row's ``ok`` column says how many runs the figures rest on; a cell whose figure exists for
fewer runs (a server that did not report it every time) says its own ``(n=k)``.

Size grids (``engine.workload``) also get a llama-bench-shaped table (``llamabench_rows``): one
run of cell (pp, tg, depth) gives ``pp{pp} @ d{depth}`` (prefill rate), ``tg{tg} @ d{depth+pp}``
(decode rate: llama-bench's tg at the depth the decode really runs at) and ``pp{pp}+tg{tg} @
d{depth}`` (both together); ``@ d0`` is left out as llama-bench does."""

from __future__ import annotations

import statistics
from typing import Any

from ..schema import get_path
from ..workload_syntax import depth_label
from .stats import GroupSummary, Stats, busy_line, counts_in_figures

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
            streams = "1 stream" if g.concurrency == 1 else f"{g.concurrency} streams"
            line = f"{group_label(g)} {g.prompt_id}: aggregate {cell(agg, '{:.1f}')} tok/s " \
                   f"over {streams}"  # fmt: skip
            if g.throughput is not None:
                t = g.throughput
                line += (f"; throughput {t['tok_s']:.1f} tok/s ({t['output_tokens']} output "
                         f"tokens / {t['wall_s']:.2f} s over {t['rounds']} rounds)")  # fmt: skip
            notes.append(line)
        for err in g.errors:
            notes.append(f"{group_label(g)}: {err}")
        for warning in g.warnings:
            notes.append(f"{group_label(g)}: warning: {warning}")
        for check in g.checks_not_run:
            notes.append(f"{group_label(g)} {g.prompt_id}: check not run, left out of the score: "
                         f"{check}")
    # Runs measured beside other work: one line per model, over all its groups (prompts, cells,
    # levels), not one per run or per distinct share.
    busy: dict[str, list[dict]] = {}
    for g in groups:
        if g.busy is not None:
            busy.setdefault(g.model, []).append(g.busy)
    notes += [f"{model}: warning: {busy_line(parts)}" for model, parts in busy.items()]
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


# ------------------------------------------------------------------ the llama-bench-shaped table

LLAMABENCH_HEADER = ["model", "backend", "test", "t/s", "client t/s", "n"]


def _rate(num: float | None, den: float | None) -> float | None:
    return num / den if num and den and den > 0 else None


def _run_rates(rec: dict[str, Any]) -> list[tuple[str, int, int, int, float | None, float | None]]:
    """One run of a grid cell as llama-bench rows: (test, n_prompt, n_gen, n_depth, backend-
    reported t/s, client t/s). The backend figure is the engine's own counter (llama.cpp perf
    counters in-process, Ollama's durations, llama.cpp server ``timings``); the client figure is
    measured from the stream (TTFT and arrivals)."""
    w = rec.get("workload") or {}
    pp, tg, depth = w.get("pp"), w.get("tg"), w.get("depth") or 0
    if not pp or not tg:
        return []
    server = rec.get("server") or {}
    timings = rec.get("timings") or {}
    out_tokens = get_path(rec, "tokens.output")
    ttft, e2e = timings.get("ttft_s"), timings.get("e2e_s")
    suffix = " (cached)" if w.get("cache_role") == "repeat" else ""
    p_n, p_s = server.get("prompt_eval_count"), server.get("prompt_eval_s")
    e_n, e_s = server.get("eval_count"), server.get("eval_s")
    pg_server = None
    if p_n is not None and e_n is not None and p_s and e_s:
        pg_server = (p_n + e_n) / (p_s + e_s)
    return [
        (f"pp{pp}{depth_label(depth)}{suffix}", pp, 0, depth, server.get("prompt_tok_s"),
         _rate(pp, ttft)),
        (f"tg{tg}{depth_label(depth + pp)}{suffix}", 0, tg, depth + pp,
         server.get("decode_tok_s"), timings.get("decode_tok_s")),
        (f"pp{pp}+tg{tg}{depth_label(depth)}{suffix}", pp, tg, depth, pg_server,
         _rate(pp + (out_tokens or 0), e2e)),
    ]  # fmt: skip


def llamabench_results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grid's figures in llama-bench's shape, one entry per (model, backend, host, test):
    ``avg_ts``/``stddev_ts`` (backend-reported), ``client_avg_ts``/``client_stddev_ts``, ``n``
    (measured successful runs), in the order the tests first appear."""
    groups: dict[tuple, dict[str, Any]] = {}
    for rec in records:
        if not counts_in_figures(rec) or not rec.get("workload"):
            continue
        for test, n_prompt, n_gen, n_depth, server_ts, client_ts in _run_rates(rec):
            key = (rec.get("model_spec") or rec.get("model"), rec.get("backend"),
                   rec.get("host"), rec.get("concurrency") or 1, test)  # fmt: skip
            entry = groups.setdefault(
                key,
                {"model": key[0], "backend": key[1], "host": key[2], "concurrency": key[3],
                 "test": test, "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": n_depth,
                 "server": [], "client": []},
            )
            if isinstance(server_ts, int | float):
                entry["server"].append(float(server_ts))
            if isinstance(client_ts, int | float):
                entry["client"].append(float(client_ts))
    out = []
    for entry in groups.values():
        server, client = entry.pop("server"), entry.pop("client")
        entry["n"] = max(len(server), len(client))
        for name, values in (("", server), ("client_", client)):
            entry[f"{name}avg_ts"] = statistics.fmean(values) if values else None
            entry[f"{name}stddev_ts"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


def _ts(avg: float | None, sd: float | None) -> str:
    if avg is None:
        return "-"
    return f"{avg:.2f} ± {sd:.2f}" if sd is not None else f"{avg:.2f}"


def llamabench_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Header then one row per test, as llama-bench prints them (t/s mean ± stdev)."""
    rows = [list(LLAMABENCH_HEADER)]
    for e in llamabench_results(records):
        model = str(e["model"]) + (f" [x{e['concurrency']}]" if e["concurrency"] > 1 else "")
        rows.append([model, str(e["backend"]), e["test"], _ts(e["avg_ts"], e["stddev_ts"]),
                     _ts(e["client_avg_ts"], e["client_stddev_ts"]), str(e["n"])])  # fmt: skip
    return rows


def workload_notes(records: list[dict[str, Any]]) -> list[str]:
    """Each distinct workload flag once, with the model and test it concerns."""
    seen: dict[str, None] = {}
    for rec in records:
        w = rec.get("workload") or {}
        for flag in w.get("flags") or []:
            label = f"{rec.get('model_spec') or rec.get('model')} {w.get('test')}: {flag}"
            seen.setdefault(label, None)
    return list(seen)
