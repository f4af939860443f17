"""Chart primitives as SVG text: bars with error bars, box plots, scatter with a front, lines
with reference lines, heat maps.

Drawn here in Python, not in the browser: the same string goes inline into the HTML report and,
with ``--svg DIR``, into a file of its own, and the page reads fine with scripts off and printed.
The page's script (``assets/report.js``) only adds hover (each mark's ``<title>``, shown as a
tooltip) and zoom (drag a box on a chart with ``data-zoom``; double-click resets).

Every label is record text (model names, prompt ids, host names): it goes through ``esc`` (XML
escaping of a control-free single line) and nowhere else, and no attribute ever holds a URL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from llmbench_tui.safe_text import one_line

WIDTH = 720
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
_FONT = 12
_LABEL_W = 230  # room for the category labels of horizontal charts
_ROW_H = 22


def esc(text: object, width: int | None = None) -> str:
    """Record text as one escaped line, safe in SVG/HTML text and in quoted attributes."""
    return escape(one_line(text, width), quote=True)


def num(value: float | None, digits: int = 3) -> str:
    """A figure for a label: ``digits`` significant digits, ``-`` when absent."""
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 10**digits:
        return f"{value:.0f}"  # 34930, never 3.493e+04
    return f"{value:.{digits}g}"


def _f(value: float) -> str:
    return f"{value:.1f}"


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (whole numbers only with ``integer``)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


@dataclass
class Scale:
    """A linear (or, with ``log``, logarithmic) map from data [lo, hi] onto pixels [a, b]
    (b < a flips, for y). A log scale needs lo > 0."""

    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    def __call__(self, v: float) -> float:
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, self.lo))
        else:
            lo, hi = self.lo, self.hi
        span = hi - lo or 1.0
        return self.a + (v - lo) / span * (self.b - self.a)

    def ticks(self, integer: bool = False) -> list[float]:
        if not self.log:
            return nice_ticks(self.lo, self.hi, integer=integer)
        first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
        return [m * 10.0**k for k in range(first, last + 1) for m in (1, 2, 5)
                if self.lo <= m * 10.0**k <= self.hi]  # fmt: skip


def _svg(height: float, body: list[str], *, title: str, zoom: bool = False) -> str:
    zoomable = ' data-zoom="1"' if zoom else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} '
        f'{_f(height)}" width="{WIDTH}" height="{_f(height)}" role="img" '
        f'aria-label="{esc(title)}" font-family="sans-serif" font-size="{_FONT}"{zoomable}>'
        f"<title>{esc(title)}</title>" + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{klass}>{text}</text>'
    )


def _x_axis(scale: Scale, y: float, label: str, top: float, integer: bool = False) -> list[str]:
    out = [f'<line class="axis" x1="{_f(scale.a)}" y1="{_f(y)}" x2="{_f(scale.b)}" '
           f'y2="{_f(y)}"/>']  # fmt: skip
    for t in scale.ticks(integer):
        if scale.lo - 1e-12 <= t <= scale.hi + 1e-12:
            x = scale(t)
            out.append(f'<line class="grid" x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" '
                       f'y2="{_f(y)}"/>')  # fmt: skip
            out.append(_text(x, y + 14, num(t), "middle"))
    out.append(_text((scale.a + scale.b) / 2, y + 30, esc(label), "middle", "axis-label"))
    return out


def _y_axis(scale: Scale, x: float, label: str, right: float) -> list[str]:
    out = [f'<line class="axis" x1="{_f(x)}" y1="{_f(scale.a)}" x2="{_f(x)}" '
           f'y2="{_f(scale.b)}"/>']  # fmt: skip
    for t in scale.ticks():
        if scale.lo - 1e-12 <= t <= scale.hi + 1e-12:
            y = scale(t)
            out.append(f'<line class="grid" x1="{_f(x)}" y1="{_f(y)}" x2="{_f(right)}" '
                       f'y2="{_f(y)}"/>')  # fmt: skip
            out.append(_text(x - 4, y + 4, num(t), "end"))
    mid = (scale.a + scale.b) / 2
    out.append(f'<text class="axis-label" transform="translate(14 {_f(mid)}) rotate(-90)" '
               f'text-anchor="middle">{esc(label)}</text>')  # fmt: skip
    return out


def legend_height(names: Sequence[str]) -> float:
    """The height ``_legend`` takes for these names (it wraps)."""
    return 18.0 * len(_legend_rows(names))


def _legend_rows(names: Sequence[str]) -> list[list[tuple[int, str, float]]]:
    rows: list[list[tuple[int, str, float]]] = [[]]
    x = 60.0
    for i, name in enumerate(names):
        w = 24 + 7 * min(len(one_line(name)), 40)
        if rows[-1] and x + w > WIDTH - 10:
            rows.append([])
            x = 60.0
        rows[-1].append((i, name, x))
        x += w
    return rows if rows[0] else []


def _legend(names: Sequence[str], y: float, colours: Sequence[str] = PALETTE) -> list[str]:
    """Colour keys from ``y`` down, wrapping to new lines as needed."""
    out = []
    for r, row in enumerate(_legend_rows(names)):
        yy = y + 18 * r
        for i, name, x in row:
            colour = colours[i % len(colours)]
            out.append(f'<rect x="{_f(x)}" y="{_f(yy - 9)}" width="10" height="10" '
                       f'fill="{colour}"/>')  # fmt: skip
            out.append(_text(x + 14, yy, esc(name, 40)))
    return out


# -- horizontal bars with error bars ---------------------------------------------------------


@dataclass
class Bar:
    label: str
    mean: float | None
    sd: float | None
    n: int
    tip: str = ""
    colour: int = 0  # index into PALETTE (one per model)


def bar_chart(title: str, unit: str, bars: Sequence[Bar]) -> str:
    """One horizontal bar per row (mean), a whisker of ± one standard deviation."""
    top, rows = 10.0, [b for b in bars if b.mean is not None]
    height = top + _ROW_H * max(len(rows), 1) + 44
    hi = max([(b.mean or 0) + (b.sd or 0) for b in rows] or [1.0])
    x = Scale(0.0, hi * 1.05 or 1.0, _LABEL_W, WIDTH - 20)
    body = _x_axis(x, height - 40, unit, top)
    for i, b in enumerate(rows):
        assert b.mean is not None
        y = top + i * _ROW_H
        tip = b.tip or f"{b.label}: {num(b.mean)} ± {num(b.sd)} {unit} (n={b.n})"
        body.append(_text(_LABEL_W - 6, y + 15, esc(b.label, 32), "end"))
        body.append(
            f'<rect class="mark bar" x="{_f(x(0))}" y="{_f(y + 3)}" '
            f'width="{_f(max(x(b.mean) - x(0), 0.5))}" height="{_ROW_H - 6}" '
            f'fill="{PALETTE[b.colour % len(PALETTE)]}"><title>{esc(tip)}</title></rect>'
        )
        if b.sd:
            lo, hi_ = x(max(b.mean - b.sd, 0.0)), x(b.mean + b.sd)
            mid = y + _ROW_H / 2
            body.append(f'<path class="err" d="M{_f(lo)} {_f(mid)}H{_f(hi_)}M{_f(lo)} '
                        f'{_f(mid - 5)}V{_f(mid + 5)}M{_f(hi_)} {_f(mid - 5)}V{_f(mid + 5)}"/>')
    if not rows:
        body.append(_text(WIDTH / 2, top + 14, "no figures", "middle"))
    return _svg(height, body, title=title)


# -- box plots -------------------------------------------------------------------------------


@dataclass
class Box:
    label: str
    n: int
    min: float
    q1: float
    median: float
    q3: float
    max: float
    marks: dict[str, float | None] = field(default_factory=dict)  # p50, p90, p99


def box_chart(title: str, unit: str, boxes: Sequence[Box]) -> str:
    """One horizontal box per row (quartiles, whiskers min-max) with p50/p90/p99 ticks."""
    top = 10.0
    height = top + (_ROW_H + 6) * max(len(boxes), 1) + 58
    values = [v for b in boxes for v in (b.min, b.max, *[m for m in b.marks.values() if m])]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if lo > 0 and hi / lo > 50:  # rows apart by orders of magnitude: each readable on a log axis
        x = Scale(lo / 1.2, hi * 1.2, _LABEL_W, WIDTH - 20, log=True)
    else:
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        x = Scale(max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad, _LABEL_W, WIDTH - 20)
    body = _x_axis(x, height - 54, unit + (" (log scale)" if x.log else ""), top)
    for i, b in enumerate(boxes):
        y = top + i * (_ROW_H + 6)
        mid = y + _ROW_H / 2
        marks = ", ".join(f"{k} {num(v)}" for k, v in b.marks.items())
        tip = (f"{b.label} (n={b.n}): min {num(b.min)}, q1 {num(b.q1)}, median {num(b.median)}, "
               f"q3 {num(b.q3)}, max {num(b.max)} {unit}; {marks}")  # fmt: skip
        body.append(_text(_LABEL_W - 6, mid + 4, esc(b.label, 32), "end"))
        body.append(f'<path class="whisker" d="M{_f(x(b.min))} {_f(mid)}H{_f(x(b.q1))}'
                    f'M{_f(x(b.q3))} {_f(mid)}H{_f(x(b.max))}M{_f(x(b.min))} {_f(mid - 5)}'
                    f'V{_f(mid + 5)}M{_f(x(b.max))} {_f(mid - 5)}V{_f(mid + 5)}"/>')  # fmt: skip
        body.append(
            f'<rect class="mark box" x="{_f(x(b.q1))}" y="{_f(y + 2)}" '
            f'width="{_f(max(x(b.q3) - x(b.q1), 1.0))}" height="{_ROW_H - 4}" '
            f'fill="{PALETTE[0]}" fill-opacity="0.25" stroke="{PALETTE[0]}">'
            f"<title>{esc(tip)}</title></rect>"
        )
        body.append(f'<line class="median" x1="{_f(x(b.median))}" y1="{_f(y + 2)}" '
                    f'x2="{_f(x(b.median))}" y2="{_f(y + _ROW_H - 2)}"/>')  # fmt: skip
        for k, (name, v) in enumerate(b.marks.items()):
            if v is None:
                continue
            colour = PALETTE[1 + k]
            body.append(
                f'<path class="mark pmark" d="M{_f(x(v))} {_f(y - 1)}l-4 -6h8z" fill="{colour}">'
                f"<title>{esc(f'{b.label} {name}: {num(v)} {unit}')}</title></path>"
            )
    names = [f"{k} (triangle)" for k in (boxes[0].marks if boxes else {})]
    body += _legend(names, height - 8, PALETTE[1:])
    if not boxes:
        body.append(_text(WIDTH / 2, top + 14, "no figures", "middle"))
    return _svg(height, body, title=title)


# -- scatter and lines (numeric x and y, zoomable) ---------------------------------------------


@dataclass
class Point:
    x: float
    y: float
    label: str
    tip: str = ""
    ring: bool = False  # drawn with a ring (Pareto-front member, the knee)


@dataclass
class Series:
    name: str
    points: list[Point]
    line: bool = True


@dataclass
class RefLine:
    """A vertical (``axis="x"``) or horizontal (``axis="y"``) reference line, e.g. an SLO."""

    axis: str
    value: float
    label: str


def xy_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    *,
    front: Sequence[tuple[float, float]] = (),
    refs: Sequence[RefLine] = (),
    point_labels: bool = False,
    integer_x: bool = False,
) -> str:
    """Points (joined per series when ``line``), an optional front drawn as a dashed step line,
    reference lines; zoomable."""
    names = [] if point_labels and all(len(s.points) == 1 for s in series) else [
        s.name for s in series]
    bottom = 310.0
    height = bottom + 48 + legend_height(names)
    left, right, top = 70.0, WIDTH - 20.0, 14.0
    xs = [p.x for s in series for p in s.points] + [r.value for r in refs if r.axis == "x"]
    ys = [p.y for s in series for p in s.points] + [r.value for r in refs if r.axis == "y"]
    if not xs:
        return _svg(80, [_text(WIDTH / 2, 40, "no points", "middle")], title=title)

    def span(vals: list[float]) -> tuple[float, float]:
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        return (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad

    sx, sy = Scale(*span(xs), left, right), Scale(*span(ys), bottom, top)
    body = _x_axis(sx, bottom, x_label, top, integer_x) + _y_axis(sy, left, y_label, right)
    for r in refs:
        if r.axis == "x":
            body.append(f'<line class="ref" x1="{_f(sx(r.value))}" y1="{_f(top)}" '
                        f'x2="{_f(sx(r.value))}" y2="{_f(bottom)}"/>')  # fmt: skip
            at_right = sx(r.value) > left + (right - left) * 0.6
            body.append(_text(sx(r.value) + (-3 if at_right else 3), top + 12, esc(r.label),
                              "end" if at_right else "start", "ref-label"))
        else:
            body.append(f'<line class="ref" x1="{_f(left)}" y1="{_f(sy(r.value))}" '
                        f'x2="{_f(right)}" y2="{_f(sy(r.value))}"/>')  # fmt: skip
            body.append(_text(right - 3, sy(r.value) - 4, esc(r.label), "end", "ref-label"))
    if len(front) > 1:
        path = "M" + "L".join(f"{_f(sx(x))} {_f(sy(y))}" for x, y in front)
        body.append(f'<path class="front" d="{path}"/>')
    labelled = sorted((p.y, p.x) for s in series for p in s.points)
    below = {xy for k, xy in enumerate(labelled) if k % 2}  # alternate sides: fewer overlaps
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        if s.line and len(s.points) > 1:
            path = "M" + "L".join(f"{_f(sx(p.x))} {_f(sy(p.y))}" for p in s.points)
            body.append(f'<path class="line" stroke="{colour}" d="{path}"/>')
        for p in s.points:
            cx, cy = _f(sx(p.x)), _f(sy(p.y))
            if p.ring:
                body.append(f'<circle class="ring" cx="{cx}" cy="{cy}" r="9" stroke="{colour}"/>')
            tip = p.tip or f"{p.label}: {num(p.x)}, {num(p.y)}"
            body.append(f'<circle class="mark point" cx="{cx}" cy="{cy}" r="5" fill="{colour}">'
                        f"<title>{esc(tip)}</title></circle>")  # fmt: skip
            if point_labels:
                near_right = sx(p.x) > left + (right - left) * 0.7
                dy = 16 if (p.y, p.x) in below else -8
                body.append(_text(sx(p.x) + (-8 if near_right else 8), sy(p.y) + dy,
                                  esc(p.label, 30), "end" if near_right else "start", "plabel"))
    body += _legend(names, bottom + 56)
    return _svg(height, body, title=title, zoom=True)


# -- heat map --------------------------------------------------------------------------------


def heatmap(
    title: str, unit: str, rows: Sequence[str], cols: Sequence[str],
    values: dict[tuple[int, int], float],
) -> str:  # fmt: skip
    """Cells coloured within each row (tests differ in scale: pp rates dwarf tg rates), each
    with its value written in it."""
    cell_w = max(min((WIDTH - _LABEL_W - 20) / max(len(cols), 1), 160.0), 60.0)
    width = _LABEL_W + cell_w * len(cols) + 20
    top = 30.0
    height = top + _ROW_H * max(len(rows), 1) + 10
    body = []
    for j, col in enumerate(cols):
        cx = _LABEL_W + cell_w * (j + 0.5)
        body.append(_text(cx, top - 8, esc(col, int(cell_w / 7)), "middle"))
    for i, row in enumerate(rows):
        body.append(_text(_LABEL_W - 6, top + i * _ROW_H + 15, esc(row, 32), "end"))
        row_vals = [v for (ii, _), v in values.items() if ii == i]
        lo, hi = (min(row_vals), max(row_vals)) if row_vals else (0.0, 1.0)
        for j, _ in enumerate(cols):
            v = values.get((i, j))
            if v is None:
                continue
            share = (v - lo) / (hi - lo) if hi > lo else 0.5
            fill = f"hsl(210 80% {_f(92 - 50 * share)}%)"
            tip = f"{rows[i]} · {cols[j]}: {num(v, 4)} {unit}"
            x, y = _LABEL_W + cell_w * j, top + i * _ROW_H
            body.append(f'<rect class="mark cell" x="{_f(x)}" y="{_f(y)}" width="{_f(cell_w - 2)}"'
                        f' height="{_ROW_H - 2}" fill="{fill}"><title>{esc(tip)}</title></rect>')
            ink = "on-dark" if share > 0.6 else ""
            body.append(_text(x + cell_w / 2, y + 15, num(v, 4), "middle", ink))
    svg = _svg(height, body, title=title)
    return svg.replace(f'viewBox="0 0 {WIDTH} ', f'viewBox="0 0 {_f(width)} ', 1).replace(
        f'width="{WIDTH}"', f'width="{_f(width)}"', 1
    )
