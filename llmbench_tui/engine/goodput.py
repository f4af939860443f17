"""Service-level objectives, goodput and the knee of a concurrency sweep.

- An **SLO** is ``METRIC OP VALUE`` on one run's figure: ``ttft_s<=0.5``, ``itl_p90_s<=0.05``,
  ``decode_tok_s>=20``. A run meets the SLOs when it succeeded and every figure is present and
  within bounds; a missing figure misses its SLO.
- Per concurrency **level** (one model, one prompt or grid cell, one level), over the measured
  runs (not warm-up, not cold):

  - ``aggregate_tok_s`` = output tokens of the successful runs / the level's wall time, where the
    wall time is the sum over its rounds of (last end − first send) — the engine's
    ``concurrent.round_s``;
  - ``per_stream_decode_tok_s`` = mean of the runs' ``timings.decode_tok_s``;
  - ``ttft_p50/p90/p99_s`` over the runs' TTFTs; ``itl_pXX_s`` = the XXth percentile over the
    runs of each run's own ``itl_pXX_s`` (the gaps themselves are stored apart);
  - ``slo_met_share`` = runs meeting every SLO / all runs of the level (failed runs included);
  - ``goodput_tok_s`` = output tokens of the runs meeting every SLO / the level's wall time.

- The **knee**: throughput *stops growing* at level ``c_i`` when going to the next level tried,
  ``c_{i+1}``, raises ``aggregate_tok_s`` by less than ``KNEE_GAIN`` (10 %). The knee is the first
  such level; when every step gains 10 % or more the sweep says throughput was still growing at
  its last level.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..schema import get_path
from ..workload_syntax import Slo
from .stats import counts_in_figures
from .timing import percentile

KNEE_GAIN = 0.10

def judge(record: dict[str, Any], slos: list[Slo]) -> dict[str, Any]:
    """The record's ``slo`` object: ``{"rules": [...], "met": bool, "missed": [...]}``."""
    if record.get("status") != "ok":
        missed = [f"status {record.get('status')}"]
    else:
        missed = [s.text for s in slos if not s.holds(get_path(record, s.path))]
    return {"rules": [s.text for s in slos], "met": not missed, "missed": missed}


@dataclass(slots=True)
class Level:
    """One level of a sweep (or the single level of a plain run)."""

    model: str
    backend: str
    host: str | None
    prompt_id: str | None
    level: int
    n_runs: int
    n_ok: int
    rounds: int
    wall_s: float | None
    aggregate_tok_s: float | None
    per_stream_decode_tok_s: float | None
    ttft_s: dict[str, float | None] = field(default_factory=dict)  # p50, p90, p99
    itl_s: dict[str, float | None] = field(default_factory=dict)
    slo_met_share: float | None = None
    goodput_tok_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    ordered = sorted(values)
    return {f"p{q}": percentile(ordered, q) for q in (50, 90, 99)}


def _measured(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measured runs: not warm-up, not cold (failed runs kept: they count against goodput)."""
    return [r for r in records if not r.get("warmup") and not r.get("cold")]


def levels(records: Iterable[dict[str, Any]], slos: list[Slo] | None = None) -> list[Level]:
    """Per (model, host, prompt/cell, level) figures over the measured runs, levels ascending."""
    slos = slos or []
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in _measured(records):
        if (rec.get("workload") or {}).get("cache_role") == "repeat":
            continue  # prefix-cache repeats are judged apart, never part of a level
        key = (
            rec.get("model_spec") or rec.get("model"),
            rec.get("backend"),
            rec.get("host"),
            rec.get("prompt_id"),
            rec.get("concurrency") or 1,
        )
        groups.setdefault(key, []).append(rec)
    out = []
    for (model, backend, host, prompt_id, level), recs in groups.items():
        ok = [r for r in recs if counts_in_figures(r)]
        rounds: dict[Any, float] = {}
        for r in recs:
            conc = r.get("concurrent") or {}
            span = conc.get("round_s")
            if span is None:
                span = get_path(r, "timings.e2e_s") if level == 1 else None
            if span is not None:
                rounds[conc.get("round", r.get("repetition"))] = max(
                    rounds.get(conc.get("round", r.get("repetition")), 0.0), float(span)
                )
        wall = sum(rounds.values()) if rounds else None
        tokens = sum((get_path(r, "tokens.output") or 0) for r in ok)
        good = ok if not slos else [r for r in ok if judge(r, slos)["met"]]
        good_tokens = sum((get_path(r, "tokens.output") or 0) for r in good)
        decode = [v for r in ok if isinstance(v := get_path(r, "timings.decode_tok_s"), float)]
        itl: dict[str, float | None] = {}
        for q in (50, 90, 99):
            vals = sorted(
                v for r in ok if isinstance(v := get_path(r, f"timings.itl_p{q}_s"), int | float)
            )
            itl[f"p{q}"] = percentile(vals, q) if vals else None
        out.append(
            Level(
                model=model,
                backend=backend,
                host=host,
                prompt_id=prompt_id,
                level=level,
                n_runs=len(recs),
                n_ok=len(ok),
                rounds=len(rounds),
                wall_s=wall,
                aggregate_tok_s=tokens / wall if wall else None,
                per_stream_decode_tok_s=statistics.fmean(decode) if decode else None,
                ttft_s=_pcts(
                    [v for r in ok if isinstance(v := get_path(r, "timings.ttft_s"), int | float)]
                ),
                itl_s=itl,
                slo_met_share=len(good) / len(recs) if recs else None,
                goodput_tok_s=good_tokens / wall if wall else None,
            )
        )
    first_seen = {key[:4]: i for i, key in reversed(list(enumerate(groups)))}
    out.sort(key=lambda lv: (first_seen[(lv.model, lv.backend, lv.host, lv.prompt_id)], lv.level))
    return out


@dataclass(slots=True)
class Knee:
    level: int | None  # None: still growing at the last level tried
    sentence: str


def knee(sweep: list[Level], gain: float = KNEE_GAIN) -> Knee:
    """Where throughput stops growing (module docstring) among the levels of one sweep."""
    pts = [lv for lv in sorted(sweep, key=lambda lv: lv.level) if lv.aggregate_tok_s]
    if len(pts) < 2:
        return Knee(None, "fewer than two levels with a throughput: no knee to find")
    for here, nxt in itertools.pairwise(pts):
        step = nxt.aggregate_tok_s / here.aggregate_tok_s - 1  # type: ignore[operator]
        if step < gain:
            return Knee(
                here.level,
                f"throughput stops growing at c={here.level} "
                f"({here.aggregate_tok_s:.1f} tok/s): c={nxt.level} adds {step:+.0%} "
                f"(< {gain:.0%})",
            )
    last = pts[-1]
    return Knee(
        None,
        f"throughput still growing at c={last.level} ({last.aggregate_tok_s:.1f} tok/s, "
        f"every step +{gain:.0%} or more): try higher levels",
    )


def sweeps(levels_: list[Level]) -> dict[tuple, list[Level]]:
    """Levels grouped by (model, host, prompt): each value is one sweep."""
    out: dict[tuple, list[Level]] = {}
    for lv in levels_:
        out.setdefault((lv.model, lv.host, lv.prompt_id), []).append(lv)
    return out


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def sweep_table(levels_: list[Level], slos: list[Slo]) -> list[list[str]]:
    """Header then one row per level: the figures ``--batch`` prints for a sweep."""
    rows = [
        [
            "model",
            "prompt",
            "c",
            "ok",
            "agg tok/s",
            "stream tok/s",
            "TTFT p50/p90/p99 s",
            "ITL p50/p90/p99 ms",
            "SLO met",
            "goodput tok/s",
        ]
    ]
    for lv in levels_:
        t, i = lv.ttft_s, lv.itl_s
        rows.append(
            [
                str(lv.model),
                str(lv.prompt_id or "-"),
                str(lv.level),
                f"{lv.n_ok}/{lv.n_runs}",
                _f(lv.aggregate_tok_s, "{:.1f}"),
                _f(lv.per_stream_decode_tok_s, "{:.1f}"),
                "/".join(_f(t.get(k), "{:.3f}") for k in ("p50", "p90", "p99")),
                "/".join(
                    _f(None if i.get(k) is None else i[k] * 1000, "{:.1f}")  # type: ignore[operator]
                    for k in ("p50", "p90", "p99")
                ),
                _f(None if lv.slo_met_share is None else lv.slo_met_share * 100, "{:.0f} %")
                if slos
                else "-",
                _f(lv.goodput_tok_s, "{:.1f}") if slos else "-",
            ]
        )
    return rows
