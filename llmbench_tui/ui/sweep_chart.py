"""Charts of a workload session (concurrency sweep or llama-bench-style grid) and a general
chart of named series, each with its own x values (``SeriesChart``).

A sweep: aggregate tok/s (and goodput, when SLOs were set) against the concurrency level, one
line per (model, host, prompt), with the knee sentence of ``engine.goodput.knee``. An open-loop
rate sweep: latency against throughput, one point per offered rate, with the saturation point
and every client-bound level named (``rate_parts``). A grid: the
prefill rate (``pp`` tests of ``engine.report.llamabench_results``) against the depth, one line
per (model, pp). Labels are stripped of control characters (the plot is read back with
``Text.from_ansi``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..engine.goodput import knee, levels, sweeps
from ..engine.report import llamabench_results, llamabench_rows
from ..safe_text import one_line, strip_controls
from .charts import Chart


class SeriesChart(Chart):
    """Named series of (x, y) points; ``right`` series use the right-hand y axis."""

    def __init__(
        self,
        title: str,
        series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
        *,
        right: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
        xlabel: str = "",
        integer_x: bool = False,
        id: str | None = None,
    ) -> None:
        super().__init__(title, id=id)
        self.series = {strip_controls(k): (list(x), list(y)) for k, (x, y) in series.items()}
        self.right = {strip_controls(k): (list(x), list(y)) for k, (x, y) in (right or {}).items()}
        self.xlabel = xlabel
        self.integer_x = integer_x

    def draw(self, plt) -> bool:
        drawn = False
        xs_all: set[float] = set()
        for side, group in (("left", self.series), ("right", self.right)):
            for label, (xs, ys) in group.items():
                if xs:
                    plt.plot(xs, ys, label=label, marker="braille", yside=side)
                    plt.scatter(xs, ys, marker="●", yside=side)
                    xs_all.update(xs)
                    drawn = True
        if self.integer_x and xs_all:
            ticks = sorted(xs_all)
            plt.xticks(ticks, [f"{t:g}" for t in ticks])
        plt.xlabel(self.xlabel)
        return drawn


def record_dicts(records: Sequence[Any]) -> list[dict[str, Any]]:
    """The session's records as stored dicts (the dashboard holds ``RunRecord`` objects)."""
    return [r.to_json() if hasattr(r, "to_json") else r for r in records]


def is_workload_session(records: Sequence[Any]) -> bool:
    return any(
        (r.get(key) if isinstance(r, dict) else getattr(r, key, None))
        for r in records
        for key in ("workload", "load")
    )


def rate_parts(
    data: list[dict[str, Any]], slos: list[Any]
) -> tuple[SeriesChart, list[str]] | None:
    """An open-loop session: output tok/s against latency p50 (one point per offered rate, one
    line per model and prompt), with the saturation point and the client-bound levels under it
    (``engine.saturation``); ``None`` when the records have no open-loop levels."""
    from ..engine.saturation import rate_levels, report_lines

    levels = rate_levels(data, slos)
    if not levels:
        return None
    series: dict[str, tuple[list[float], list[float]]] = {}
    for lv in levels:
        latency = lv.latency_s.get("p50")
        if lv.output_tok_s is None or latency is None:
            continue
        name = one_line(f"{lv.model} {lv.prompt_id or ''}".strip(), 40)
        xs, ys = series.setdefault(name, ([], []))
        xs.append(lv.output_tok_s)
        ys.append(latency)
    _, notes = report_lines(data, slos)
    chart = SeriesChart("latency p50 s vs output tok/s (one point per offered rate)", series,
                        xlabel="output tok/s")  # fmt: skip
    return chart, notes


def sweep_parts(
    records: Sequence[Any], slos: list[Any] | None = None
) -> tuple[SeriesChart, list[str]]:
    """The chart of a workload session and the sentences under it (the knee of each sweep)."""
    data = record_dicts(records)
    if (open_loop := rate_parts(data, slos or [])) is not None:
        return open_loop
    lv = levels(data, slos or [])
    by_sweep = sweeps(lv)
    if any(len({x.level for x in s}) > 1 for s in by_sweep.values()):
        series, notes = {}, []
        for (model, _host, prompt), sweep in by_sweep.items():
            pts = [(float(x.level), x.aggregate_tok_s) for x in sweep if x.aggregate_tok_s]
            name = one_line(f"{model} {prompt or ''}".strip(), 40)
            series[f"{name} agg"] = ([p[0] for p in pts], [p[1] for p in pts])
            if slos:
                good = [(float(x.level), x.goodput_tok_s) for x in sweep
                        if x.goodput_tok_s is not None]
                series[f"{name} goodput"] = ([p[0] for p in good], [p[1] for p in good])
            notes.append(f"{name}: {knee(sweep).sentence}")
        chart = SeriesChart("aggregate tok/s vs concurrency", series, xlabel="concurrency",
                            integer_x=True)
        return chart, notes
    series = {}
    for e in llamabench_results(data):
        if e["n_gen"] or "(cached)" in e["test"]:
            continue
        rate = e["avg_ts"] if e["avg_ts"] is not None else e["client_avg_ts"]
        if rate is None:
            continue
        name = one_line(f"{e['model']} pp{e['n_prompt']}", 40)
        xs, ys = series.setdefault(name, ([], []))
        xs.append(float(e["n_depth"]))
        ys.append(float(rate))
    chart = SeriesChart("prompt tok/s vs depth", series, xlabel="depth (tokens)",
                        integer_x=True)
    return chart, []


def llamabench_table_rows(records: Sequence[Any]) -> list[list[str]]:
    rows = llamabench_rows(record_dicts(records))
    return rows if len(rows) > 1 else []
