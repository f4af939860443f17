"""Sparkline meters for CPU, RAM and every GPU, fed by the shared telemetry sampler.

The sampler thread does all the reading; the dashboard calls ``MeterBar.update_from`` from a
timer with ``sampler.latest()``. Each meter keeps its own short history and hands the sparkline a
*new* list every time (a mutated list is not noticed, so it would never redraw).

Textual's ``Sparkline`` scales each picture between the data's own minimum and maximum, which
turns 2 % of CPU jitter into full-height bars. ``ScaledSparkline`` draws against a fixed range
(0..100 % or 0..total) so the height means the same thing from one second to the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from rich.color import Color as RichColor
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

_BARS = "▁▂▃▄▅▆▇█"
HISTORY = 120


class _FixedRangeBars:
    """One row of bars, newest at the right, scaled to ``0..top``."""

    def __init__(self, data: Sequence[float], width: int, top: float, low: Style, high: Style):
        self.data, self.width, self.top, self.low, self.high = data, width, top, low, high

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = self.width or options.max_width
        values = list(self.data)[-width:]
        pad = width - len(values)
        if pad:
            yield Segment(" " * pad)
        low, high = self.low.color, self.high.color
        for value in values:
            ratio = 0.0 if self.top <= 0 else max(0.0, min(1.0, value / self.top))
            color = _blend(low, high, ratio)
            yield Segment(_BARS[round(ratio * (len(_BARS) - 1))], Style(color=color))


def _blend(low: RichColor | None, high: RichColor | None, ratio: float) -> RichColor | None:
    if low is None or high is None:
        return high or low
    a, b = low.get_truecolor(), high.get_truecolor()
    return RichColor.from_rgb(*(int(x + (y - x) * ratio) for x, y in zip(a, b, strict=True)))


class ScaledSparkline(Sparkline):
    """A ``Sparkline`` (same CSS, same ``data`` reactive) drawn against a fixed range."""

    def __init__(self, top: float = 100.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.top = top

    def render(self):
        _, base = self.background_colors
        low = base + self.get_component_styles("sparkline--min-color").color
        high = base + self.get_component_styles("sparkline--max-color").color
        return _FixedRangeBars(
            self.data or [],
            self.size.width,
            self.top,
            Style(color=low.rich_color),
            Style(color=high.rich_color),
        )


class Meter(Horizontal):
    """A label with the current value, then the sparkline of recent values."""

    DEFAULT_CSS = """
    Meter { height: 1; width: 1fr; min-width: 14; padding-right: 2; }
    Meter > Label { width: auto; padding: 0 1 0 0; }
    Meter > ScaledSparkline { width: 1fr; height: 1; min-width: 4; }
    """

    def __init__(
        self, title: str, fmt: Callable[[float], str], top: float = 100.0, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.title = title
        self.fmt = fmt
        self.top = top
        self.values: deque[float] = deque(maxlen=HISTORY)
        self._label_len = 0

    def compose(self) -> ComposeResult:
        yield Label(Text(f"{self.title} -"))
        yield ScaledSparkline(top=self.top)

    def push(self, value: float | None, top: float | None = None) -> None:
        if top:
            self.top = top
            self.query_one(ScaledSparkline).top = top
        text = f"{self.title} {'n/a' if value is None else self.fmt(value)}"
        # Re-layout only when the label's width changes: layout passes are what cost CPU.
        self.query_one(Label).update(Text(text), layout=len(text) != self._label_len)
        self._label_len = len(text)
        if value is not None:
            self.values.append(value)
            self.query_one(ScaledSparkline).data = list(self.values)  # a NEW list: redraws


def _pct(v: float) -> str:
    return f"{v:3.0f}%"


def _gb(v: float) -> str:
    return f"{v / 1024:4.1f}G"


def _watts(v: float) -> str:
    return f"{v:3.0f}W"


class MeterBar(Horizontal):
    """CPU and RAM meters, plus util/mem/power meters per GPU once the sampler reports GPUs."""

    DEFAULT_CSS = """
    MeterBar { height: 1; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._gpus: set[int] = set()

    def compose(self) -> ComposeResult:
        yield Meter("CPU", _pct, id="meter-cpu")
        yield Meter("RAM", _gb, id="meter-ram")

    def update_from(self, sample) -> None:
        """Push one sampler ``Sample`` (or ``None`` before the first one) into the meters."""
        if sample is None:
            return
        with self.app.batch_update():
            self.query_one("#meter-cpu", Meter).push(sample.cpu_pct)
            total = sample.ram_used_mb + sample.ram_available_mb
            self.query_one("#meter-ram", Meter).push(sample.ram_used_mb, top=total)
            for gpu in sample.gpus:
                if gpu.index not in self._gpus:
                    self._gpus.add(gpu.index)
                    i = gpu.index
                    self.mount(
                        Meter(f"GPU{i}", _pct, id=f"meter-gpu{i}-util"),
                        Meter(f"VRAM{i}", _gb, top=gpu.mem_total_mb or 1.0, id=f"meter-gpu{i}-mem"),
                        Meter(f"PWR{i}", _watts, top=400.0, id=f"meter-gpu{i}-power"),
                    )
                    continue  # mounted widgets compose on the next tick
                self._push_gpu(gpu)

    def _push_gpu(self, gpu) -> None:
        i = gpu.index
        self.query_one(f"#meter-gpu{i}-util", Meter).push(gpu.util_pct)
        self.query_one(f"#meter-gpu{i}-mem", Meter).push(gpu.mem_used_mb, top=gpu.mem_total_mb)
        power = self.query_one(f"#meter-gpu{i}-power", Meter)
        if gpu.power_w is not None and gpu.power_w > power.top:
            power.top = gpu.power_w
        power.push(gpu.power_w, top=power.top)
