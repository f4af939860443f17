"""Statistics across repetitions (README Metrics "Statistics across repetitions").

Pure standard library: the Student t quantiles for the 95 % confidence interval come from a table
(two-sided, 0.975), which is exact at the listed degrees of freedom and conservative between them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..schema import RunRecord, get_path
from ..telemetry.efficiency import BUSY_WARNING_START
from .timing import percentile

# Figures summarised per group, as dotted paths into a run record's JSON form.
FIGURES = (
    "timings.ttft_s",
    "timings.decode_tok_s",
    "server.decode_tok_s",
    "server.prompt_tok_s",
    "server.load_s",
    "tokens.output",
    "timings.e2e_s",
    "timings.tpot_s",
    "timings.itl_p50_s",
    "timings.itl_p99_s",
    "efficiency.j_per_token",
    "telemetry.cpu_pct.mean",
    "telemetry.proc_rss_mb.max",
    "concurrent.aggregate_tok_s",
    "efficiency.ceiling_tok_s",
    "efficiency.achieved_gb_s",
    "efficiency.mbu",
    "quality.score",
)

# Figures of a round, not of a run: every stream of one round of ``concurrency`` streams carries
# the same value, so they are summarised one value per round (``figure_values``), never once per
# stream (which would count each round ``concurrency`` times: a smaller CI on duplicates).
ROUND_PREFIX = "concurrent."

OUTLIER_MIN_N = 5
OUTLIER_MIN_REL = 0.02

_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    21: 2.080,
    22: 2.074,
    23: 2.069,
    24: 2.064,
    25: 2.060,
    26: 2.056,
    27: 2.052,
    28: 2.048,
    29: 2.045,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t_critical(df: int) -> float:
    """Two-sided 95 % Student t quantile; the nearest tabulated df at or below ``df``."""
    if df < 1:
        raise ValueError("t quantile needs at least one degree of freedom")
    if df in _T975:
        return _T975[df]
    if df > 120:
        return 1.960
    return _T975[max(k for k in _T975 if k <= df)]


@dataclass(slots=True)
class Stats:
    """``describe``'s figures; the fields in the order of their JSON form."""

    n: int
    mean: float
    median: float
    stdev: float | None
    min: float
    max: float
    p95: float
    ci95: list[float | None]  # [low, high] of the mean; [None, None] with one value
    outliers: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def describe(values: list[float]) -> Stats:
    """n, mean, median, sample stdev, min, max, p95, 95 % CI of the mean, outliers.

    An outlier is a value farther than 3 × MAD from the median; it is flagged, never dropped.
    Two guards keep the flag meaningful: it needs at least ``OUTLIER_MIN_N`` values (with three,
    the MAD is set by a single neighbour and flags ordinary jitter), and the distance must also
    exceed ``OUTLIER_MIN_REL`` of the median (a near-zero MAD of very stable figures would
    otherwise flag a 0.1 % wobble). When the MAD is zero nothing is flagged.
    """
    if not values:
        raise ValueError("describe() needs at least one value")
    ordered = sorted(values)
    n = len(ordered)
    mean = statistics.fmean(ordered)
    median = statistics.median(ordered)
    stdev = statistics.stdev(ordered) if n >= 2 else None
    lo = hi = None
    if stdev is not None:
        half = t_critical(n - 1) * stdev / math.sqrt(n)
        lo, hi = mean - half, mean + half
    mad = statistics.median([abs(v - median) for v in ordered])
    floor = max(3 * mad, OUTLIER_MIN_REL * abs(median))
    outliers = [v for v in values if n >= OUTLIER_MIN_N and mad > 0 and abs(v - median) > floor]
    return Stats(
        n, mean, median, stdev, ordered[0], ordered[-1], percentile(ordered, 95), [lo, hi], outliers
    )



def round_key(record: dict[str, Any]) -> tuple:
    """What identifies the round a run was one stream of: its session, model, host, prompt (or
    grid cell), level and round number (a prefix-cache repeat is a round of its own)."""
    conc = record.get("concurrent") or {}
    return (
        record.get("session_id"),
        record.get("model_spec") or record.get("model"),
        record.get("host"),
        record.get("prompt_id"),
        record.get("concurrency") or 1,
        conc.get("round", record.get("repetition")),
        (record.get("workload") or {}).get("cache_role"),
    )


def figure_values(records: Iterable[dict[str, Any]], path: str) -> list[float]:
    """The finite numbers at ``path``: one per run, or, for a round's figure
    (``concurrent.*``), one per round — the one home of that rule for every summary."""
    out: list[float] = []
    seen: set[tuple] = set()
    per_round = path.startswith(ROUND_PREFIX)
    for record in records:
        value = get_path(record, path)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not math.isfinite(value):
            continue
        if per_round:
            key = round_key(record)
            if key in seen:
                continue
            seen.add(key)
        out.append(float(value))
    return out


def throughput(records: Iterable[dict[str, Any]]) -> dict[str, float] | None:
    """Output throughput over the rounds' wall time: ``{"tok_s", "output_tokens", "wall_s",
    "rounds"}`` — the successful runs' output tokens over the sum, across rounds, of each round's
    wall time (its first request sent to its last token received, ``concurrent.round_s``).
    ``None`` when a run has no round time (records from before it was stored at every level)."""
    rounds: dict[tuple, float] = {}
    tokens = 0
    for record in records:
        span = (record.get("concurrent") or {}).get("round_s")
        if not isinstance(span, int | float) or isinstance(span, bool):
            return None
        rounds[round_key(record)] = float(span)
        if record.get("status") == "ok":
            tokens += int(get_path(record, "tokens.output") or 0)
    wall = sum(rounds.values())
    if not rounds or wall <= 0:
        return None
    return {"tok_s": tokens / wall, "output_tokens": tokens, "wall_s": wall, "rounds": len(rounds)}


def counts_in_figures(record: dict[str, Any]) -> bool:
    """The one rule for which runs a mean is taken over: successful, not warm-up (excluded from
    statistics) and not cold (a cold run's TTFT includes the model load, so cold runs are
    reported apart and never averaged with warm ones)."""
    return record.get("status") == "ok" and not record.get("warmup") and not record.get("cold")


def counted(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of ``records`` that ``counts_in_figures``."""
    return [r for r in records if counts_in_figures(r)]


@dataclass(slots=True, kw_only=True)
class GroupSummary:
    """One (model, prompt, options, cold, concurrency) group of runs and its statistics; the
    fields in the order of the JSON form."""

    model: str
    backend: str
    host: str | None
    prompt_id: str | None
    cold: bool
    concurrency: int
    n_runs: int
    n_ok: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks_not_run: list[str] = field(default_factory=list)  # quality checks that could not run
    throughput: dict[str, float] | None = None  # ``throughput()`` over the counted runs
    busy: dict[str, Any] | None = None  # ``busy_runs()``: its busy-run warnings, summed up
    figures: dict[str, Stats]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _group_key(rec: dict[str, Any]) -> tuple:
    options = json.dumps(rec.get("options") or {}, sort_keys=True, default=str)
    return (
        rec.get("model_spec") or rec["model"],
        rec["backend"],
        rec.get("host"),
        rec.get("prompt_id"),
        options,
        bool(rec.get("cold")),
        rec.get("concurrency", 1),
        (rec.get("load") or {}).get("rate"),  # open loop: each offered rate is its own group
    )


def busy_runs(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The runs measured beside other work (``efficiency.conditions.busy``), summed up:
    ``{"low", "high"}`` (their other-processes shares, %), ``"runs"`` (how many) of ``"of"``
    (all the records), ``"named"`` (the busiest other processes named during them: name → the
    highest % of one core); ``None`` when no run was busy."""
    busy = [r for r in records if get_path(r, "efficiency.conditions.busy") is True]
    shares = [v for r in busy
              if isinstance(v := get_path(r, "efficiency.conditions.other_cpu_pct"), int | float)]
    if not shares:
        return None
    named: dict[str, float] = {}
    for record in busy:
        for proc in get_path(record, "telemetry.other_processes") or []:
            if isinstance(proc, dict) and isinstance(proc.get("cpu_pct"), int | float):
                name = str(proc.get("name"))
                named[name] = max(named.get(name, 0.0), float(proc["cpu_pct"]))
    return {"low": min(shares), "high": max(shares), "runs": len(busy), "of": len(records),
            "named": named}  # fmt: skip


def busy_line(parts: Iterable[dict[str, Any]]) -> str:
    """One warning for several ``busy_runs`` (a model's groups): each busy run has its own
    (``other processes used 51 % ...``); together they say the range of shares, in how many
    runs, and the three busiest other processes named during them."""
    parts = list(parts)
    named: dict[str, float] = {}
    for part in parts:
        for name, pct in part["named"].items():
            named[name] = max(named.get(name, 0.0), pct)
    low = f"{min(p['low'] for p in parts):.0f}"
    high = f"{max(p['high'] for p in parts):.0f}"
    line = f"{BUSY_WARNING_START}{low if low == high else f'{low}–{high}'} % of the CPU during "
    line += f"{sum(p['runs'] for p in parts)} of {sum(p['of'] for p in parts)} runs"
    if named:
        top = sorted(named.items(), key=lambda kv: -kv[1])[:3]
        line += " (busiest: " + ", ".join(f"{n} {c:.0f} % of a core" for n, c in top) + ")"
    return line + "; their figures are not comparable"


def summarize(records: list[RunRecord] | list[dict[str, Any]]) -> list[GroupSummary]:
    """Group non-warm-up runs and describe each figure over the group's successful runs.

    Failed runs count in ``n_runs`` and their distinct errors are kept, but never enter the
    figures; cold runs form their own groups so load time is never averaged into warm runs.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        data = rec.to_json() if isinstance(rec, RunRecord) else rec
        if data.get("warmup"):
            continue
        groups.setdefault(_group_key(data), []).append(data)
    out = []
    for recs in groups.values():
        ok = [r for r in recs if r["status"] == "ok"]
        figures = {}
        for path in FIGURES:
            values = figure_values(ok, path)
            if values:
                figures[path] = describe(values)
        errors = sorted({r["error"] or r["status"] for r in recs if r["status"] != "ok"})
        busy = busy_runs(recs)
        warnings = sorted({w for r in recs for w in r.get("warnings") or []
                           if busy is None or not w.startswith(BUSY_WARNING_START)})
        not_run = sorted(
            {
                f"{c.get('name')}: {c.get('detail')}"
                for r in ok
                for c in (r.get("quality") or {}).get("checks") or []
                if isinstance(c, dict) and c.get("passed") is None
            }
        )
        first = recs[0]
        out.append(
            GroupSummary(
                model=first.get("model_spec") or first["model"],
                backend=first["backend"],
                host=first.get("host"),
                prompt_id=first.get("prompt_id"),
                cold=bool(first.get("cold")),
                concurrency=first.get("concurrency", 1),
                n_runs=len(recs),
                n_ok=len(ok),
                figures=figures,
                errors=errors,
                warnings=warnings,
                checks_not_run=not_run,
                throughput=throughput(ok) if ok else None,
                busy=busy,
            )
        )
    return out


# -- Welch's t-test (``compare``: is a difference larger than the noise?) ---------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Numerical Recipes, modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):  # fmt: skip
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def welch(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; ``None`` when a side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return _betai(df / 2.0, 0.5, df / (df + t * t))
