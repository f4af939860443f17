"""Plotext chart widgets for the history screens: telemetry, tokens vs time, bars, trends.

Each chart is a ``PlotextPlot`` that owns its data and redraws from it, so a resize re-renders the
same picture. Data is prepared by small pure functions (``telemetry_lines``, ``cumulative_tokens``)
that tests can check without a terminal. Charts never raise on odd data: a run without series
shows a one-line "no data" note instead of an empty frame, because many runs (errors, old imports)
legitimately have none. Labels (model names, series keys of imported records) are stripped of
control characters: the plot is read back with ``Text.from_ansi``, so an escape in a label would
be acted on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from textual_plotext import PlotextPlot

from ..safe_text import strip_controls

_TIME_KEYS = ("t_s", "t", "time_s", "elapsed_s", "offset_s")

# Labels for the series names the telemetry sampler stores (README Metrics, "Telemetry").
_LABELS = {
    "cpu_pct": "CPU %",
    "proc_cpu_pct": "proc CPU %",
    "ram_used_mb": "RAM MB",
    "proc_rss_mb": "proc RSS MB",
    "swap_used_mb": "swap MB",
    "util_pct": "util %",
    "mem_used_mb": "mem MB",
    "power_w": "power W",
    "temp_c": "temp °C",
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numeric_list(value: object) -> list[float] | None:
    """The list as floats (``None`` entries become NaN, dropped when plotted), or None."""
    if not isinstance(value, list) or not value:
        return None
    if not all(v is None or _is_number(v) for v in value):
        return None
    if not any(_is_number(v) for v in value):
        return None
    return [float(v) if v is not None else math.nan for v in value]


def _flatten(prefix: str, data: object, out: dict[str, list[float]]) -> None:
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in ("index", "name", "interval_s"):
                continue
            _flatten(f"{prefix}{key}" if not prefix else f"{prefix}.{key}", value, out)
        return
    if isinstance(data, list) and data and all(isinstance(d, Mapping) for d in data):
        for pos, item in enumerate(data):
            index = item.get("index", pos)
            _flatten(f"{prefix.rstrip('s') or 'gpu'}{index}", item, out)
        return
    values = _numeric_list(data)
    if values is not None and prefix:
        out[prefix] = values


def telemetry_lines(telemetry: Mapping | None) -> tuple[list[float], dict[str, list[float]]]:
    """Time axis (seconds from the run's start) and every numeric series, flattened and labelled.

    Accepts the stored series shape: flat lists keyed by name plus a ``gpus`` list of per-GPU dicts
    of lists. Without a time key, samples are taken as ``interval_s`` apart (default 0.25 s).
    """
    if not telemetry:
        return [], {}
    flat: dict[str, list[float]] = {}
    _flatten("", telemetry, flat)
    time: list[float] | None = None
    for key in _TIME_KEYS:
        if key in flat:
            time = flat.pop(key)
            break
    if not flat:
        return [], {}
    length = max(len(v) for v in flat.values())
    if time is None:
        step = telemetry.get("interval_s") if isinstance(telemetry, Mapping) else None
        step = float(step) if _is_number(step) else 0.25
        time = [i * step for i in range(length)]
    lines = {}
    for key, values in flat.items():
        leaf = key.rsplit(".", 1)[-1]
        head = key.rsplit(".", 1)[0] if "." in key else ""
        label = _LABELS.get(leaf, leaf)
        lines[f"{head} {label}".strip()] = values[: len(time)]
    return time, lines


def cumulative_tokens(arrivals_s: Sequence[float] | None) -> tuple[list[float], list[int]]:
    """Tokens received so far at each arrival instant (seconds from send): flat steps are stalls."""
    if not arrivals_s:
        return [], []
    times = sorted(float(t) for t in arrivals_s if _is_number(t))
    return times, list(range(1, len(times) + 1))


def _points(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if _is_number(x) and _is_number(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class Chart(PlotextPlot):
    """A plot drawn from data held by the widget; ``has_data`` says whether anything was drawn."""

    DEFAULT_CSS = """
    Chart { height: 12; min-height: 6; }
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.has_data = False

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        self.has_data = self.draw(plt)
        plt.title(self.title if self.has_data else f"{self.title}: no data recorded")
        self.refresh()

    def draw(self, plt) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


class LinesChart(Chart):
    """Several named series over one x axis (seconds)."""

    def __init__(
        self,
        title: str,
        x: Sequence[float],
        lines: Mapping[str, Sequence[float]],
        *,
        xlabel: str = "s",
        id: str | None = None,
    ) -> None:
        super().__init__(title, id=id)
        self.x = list(x)
        self.lines = {strip_controls(k): list(v) for k, v in lines.items()}
        self.xlabel = xlabel

    def draw(self, plt) -> bool:
        drawn = False
        for label, values in self.lines.items():
            xs, ys = _points(self.x, values)
            if xs:
                plt.plot(xs, ys, label=label, marker="braille")
                drawn = True
        plt.xlabel(self.xlabel)
        return drawn


def telemetry_charts(telemetry: Mapping | None) -> list[LinesChart]:
    """Two charts for a run's telemetry: percentages (CPU, GPU util) and the rest (MB, W, °C)."""
    time, lines = telemetry_lines(telemetry)
    pct = {k: v for k, v in lines.items() if k.endswith("%")}
    other = {k: v for k, v in lines.items() if not k.endswith("%")}
    mem = {k: v for k, v in other.items() if k.endswith("MB")}
    rest = {k: v for k, v in other.items() if not k.endswith("MB")}
    charts = [
        LinesChart("CPU / GPU utilisation %", time, pct, id="chart-util"),
        LinesChart("Memory MB", time, mem, id="chart-mem"),
    ]
    if rest:
        charts.append(LinesChart("GPU power W / temperature", time, rest, id="chart-power"))
    return charts


class TokensChart(Chart):
    """Tokens received vs time since send: steady slope = smooth decoding, flat step = stall."""

    def __init__(self, arrivals_s: Sequence[float] | None, *, id: str | None = None) -> None:
        super().__init__("Tokens vs time (s since send)", id=id)
        self.times, self.counts = cumulative_tokens(arrivals_s)

    def draw(self, plt) -> bool:
        if not self.times:
            return False
        plt.plot(self.times, self.counts, marker="braille", label="tokens")
        plt.xlabel("s")
        return True


class BarChart(Chart):
    """One bar per label (e.g. mean decode tok/s per model); labels are shortened to fit."""

    def __init__(
        self,
        title: str,
        labels: Sequence[str],
        values: Sequence[float | None],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(title, id=id)
        pairs = [
            (strip_controls(str(lab)), float(v))
            for lab, v in zip(labels, values, strict=False)
            if _is_number(v)
        ]
        self.labels = [p[0] for p in pairs]
        self.values = [p[1] for p in pairs]

    def draw(self, plt) -> bool:
        if not self.values:
            return False
        labels = [lab if len(lab) <= 18 else lab[:17] + "…" for lab in self.labels]
        plt.bar(labels, self.values, orientation="horizontal", width=0.3)
        return True


class TrendChart(Chart):
    """Values over calendar time (one point per run); a regression shows as a step down or up."""

    def __init__(
        self,
        title: str,
        when: Sequence[datetime] = (),
        values: Sequence[float | None] = (),
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(title, id=id)
        self.when: list[datetime] = []
        self.values: list[float] = []
        self._keep(when, values)

    def _keep(self, when: Sequence[datetime], values: Sequence[float | None]) -> None:
        pairs = sorted(
            ((w, float(v)) for w, v in zip(when, values, strict=False) if _is_number(v)),
            key=lambda p: p[0],
        )
        self.when = [p[0] for p in pairs]
        self.values = [p[1] for p in pairs]

    def set_points(self, when: Sequence[datetime], values: Sequence[float | None]) -> None:
        """Replace the points (e.g. another prompt scope) and draw again."""
        self._keep(when, values)
        self.redraw()

    def draw(self, plt) -> bool:
        if not self.values:
            return False
        plt.date_form("d/m/Y H:M:S", "d/m")
        dates = [w.strftime("%d/%m/%Y %H:%M:%S") for w in self.when]
        plt.plot(dates, self.values, marker="braille")
        return True
