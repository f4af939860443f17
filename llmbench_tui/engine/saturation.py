"""Figures of an open-loop rate level, whether the client limited them, and where a sweep saturates.

Per (model, host, prompt or cell, offered rate), over the level's measured runs (their ``load``
object, ``engine.openloop``):

- ``scheduled_rps`` = (n − 1) / (last scheduled − first scheduled): the rate the drawn schedule
  really offered (a 20-request Poisson schedule at 1 req/s is rarely exactly 1 req/s);
- ``achieved_rps`` = (ok − 1) / (last end − first end) over the successful runs: the rate at
  which answers came back. A server that keeps up returns them as spaced as they were sent; a
  saturated one returns them at its own pace, whatever was offered;
- ``output_tok_s`` = achieved_rps × mean output tokens of the successful runs;
- TTFT, ITL (each run's own p50 then percentiles over runs, as ``engine.goodput``) and latency
  (``e2e_s``) p50/p90/p99; goodput in requests and tokens: the same rates counting only runs
  that meet every SLO; ``slo_met_share`` = runs meeting every SLO / all runs;
- send lag p50/p99/max (``load.lag_s``: sent − due).

**Client-bound** (the load generator, not the server, limited these figures), either:

1. the send lag's p99 is above ``lag_limit_s(rate)``: ``LAG_P99_LIMIT_S`` (5 ms) or
   ``LAG_GAP_SHARE`` (5 %) of the mean gap between requests, whichever is larger. asyncio's
   timers wake within about 1 ms of their instant on an idle machine, so 5 ms means the process
   was busy with other streams (or the machine with other work) when a request was due; at low
   rates a lag that is small against the gap (10 ms late on 1 s gaps) leaves the arrival process
   intact and is not counted; or
2. the achieved rate is below ``SHORTFALL`` (95 %) of the scheduled rate while the server still
   answers promptly: TTFT p50 no more than ``PROMPT_FACTOR`` (2×) the TTFT p10 of the sweep's
   lowest rate (its unloaded answer time) plus 50 ms, and no request waited for the cap. A
   saturated server queues, and its TTFT grows; a client that falls behind reading streams
   delays answers without it.

Both rate rules (2, and the saturation point below) need ``MIN_RUNS`` successful runs in the
level: the achieved rate of a handful of requests is mostly noise.

**Saturation** of a sweep: the first rate whose achieved rate falls below ``SHORTFALL`` of the
scheduled rate, or whose SLO-meeting share falls below ``SLO_FLOOR`` (90 %) when SLOs were given,
leaving out levels client-bound by rule 2 (there the client fell short, not the server). A level
late by rule 1 can still be the saturation point (a few ms of send lag do not cut the answer
rate); the sentence then says the lag was over its limit too.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..schema import get_path
from ..workload_syntax import Slo
from .goodput import judge
from .stats import counts_in_figures
from .timing import percentile

LAG_P99_LIMIT_S = 0.005
LAG_GAP_SHARE = 0.05
SHORTFALL = 0.95
SLO_FLOOR = 0.90
PROMPT_FACTOR = 2.0
PROMPT_SLACK_S = 0.05
MIN_RUNS = 10
CLIENT_BOUND = "the load generator, not the server, limited these figures"


def lag_limit_s(rate: float) -> float:
    """The send-lag p99 above which a level at ``rate`` req/s is client-bound (rule 1)."""
    return max(LAG_P99_LIMIT_S, LAG_GAP_SHARE / rate) if rate > 0 else LAG_P99_LIMIT_S


def _pcts(values: Iterable[Any], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float | None]:
    ordered = sorted(float(v) for v in values if isinstance(v, int | float))
    out: dict[str, float | None] = {
        f"p{q}": percentile(ordered, q) if ordered else None for q in qs
    }
    out["max"] = ordered[-1] if ordered else None
    return out


def _rate(instants: list[float]) -> float | None:
    """(n − 1) / span of the instants; ``None`` for fewer than two or no span."""
    if len(instants) < 2:
        return None
    span = max(instants) - min(instants)
    return (len(instants) - 1) / span if span > 0 else None


@dataclass(slots=True)
class RateLevel:
    """One offered rate of one model and prompt."""

    model: str
    backend: str
    host: str | None
    prompt_id: str | None
    rate: float
    arrival: str
    n_runs: int
    n_ok: int
    scheduled_rps: float | None
    achieved_rps: float | None
    output_tok_s: float | None
    goodput_rps: float | None
    goodput_tok_s: float | None
    slo_met_share: float | None
    ttft_s: dict[str, float | None] = field(default_factory=dict)
    itl_s: dict[str, float | None] = field(default_factory=dict)
    latency_s: dict[str, float | None] = field(default_factory=dict)
    lag_s: dict[str, float | None] = field(default_factory=dict)
    cap_wait_max_s: float = 0.0
    workers: int = 1
    client_bound: str | None = None  # why, or None
    client_rule: str | None = None  # "lag" (rule 1) or "shortfall" (rule 2)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def level_of(recs: list[dict[str, Any]], slos: list[Slo]) -> RateLevel:
    """The figures of one level's records (module docstring); ``client_bound`` by lag only (the
    shortfall rule needs the sweep: ``judge_client``)."""
    first = recs[0]
    load = first.get("load") or {}
    ok = [r for r in recs if counts_in_figures(r)]
    good = ok if not slos else [r for r in ok if judge(r, slos)["met"]]

    def ends(rs: list[dict[str, Any]]) -> list[float]:
        out = []
        for r in rs:
            sent, e2e = get_path(r, "load.sent_s"), get_path(r, "timings.e2e_s")
            if isinstance(sent, int | float) and isinstance(e2e, int | float):
                out.append(float(sent) + float(e2e))
        return out

    achieved = _rate(ends(ok))
    good_rps = _rate(ends(good)) if len(good) == len(ok) else None
    if good_rps is None and achieved is not None:  # a thinned stream: its share of the rate
        good_rps = achieved * len(good) / len(ok) if ok else None
    tokens = [get_path(r, "tokens.output") or 0 for r in ok]
    mean_tokens = statistics.fmean(tokens) if tokens else None
    good_tokens = [get_path(r, "tokens.output") or 0 for r in good]
    lv = RateLevel(
        model=first.get("model_spec") or first.get("model") or "",
        backend=first.get("backend") or "",
        host=first.get("host"),
        prompt_id=first.get("prompt_id"),
        rate=float(load.get("rate") or 0.0),
        arrival=str(load.get("arrival") or ""),
        n_runs=len(recs),
        n_ok=len(ok),
        scheduled_rps=_rate([get_path(r, "load.scheduled_s") for r in recs]),
        achieved_rps=achieved,
        output_tok_s=achieved * mean_tokens if achieved and mean_tokens is not None else None,
        goodput_rps=good_rps,
        goodput_tok_s=(
            good_rps * statistics.fmean(good_tokens)
            if good_rps is not None and good_tokens
            else 0.0
            if slos
            else None
        ),
        slo_met_share=len(good) / len(recs) if slos and recs else None,
        ttft_s=_pcts((get_path(r, "timings.ttft_s") for r in ok), (10, 50, 90, 99)),
        itl_s=_pcts(get_path(r, "timings.itl_p50_s") for r in ok),
        latency_s=_pcts(get_path(r, "timings.e2e_s") for r in ok),
        lag_s=_pcts(get_path(r, "load.lag_s") for r in recs),
        cap_wait_max_s=max((get_path(r, "load.cap_wait_s") or 0.0 for r in recs), default=0.0),
        workers=len({get_path(r, "load.worker") for r in recs}),
    )
    lag99, limit = lv.lag_s.get("p99"), lag_limit_s(lv.rate)
    if lag99 is not None and lag99 > limit:
        lv.client_bound = (
            f"send lag p99 {lag99 * 1000:.1f} ms > {limit * 1000:.3g} ms: {CLIENT_BOUND}"
        )
        lv.client_rule = "lag"
    return lv


def judge_client(lv: RateLevel, reference_ttft_s: float | None) -> str | None:
    """The shortfall rule (module docstring, rule 2) for ``lv``, given the sweep's lowest-rate
    TTFT p10; the lag rule's verdict when that one already holds."""
    if lv.client_bound:
        return lv.client_bound
    short = _short(lv)
    ttft = lv.ttft_s.get("p50")
    if not short or ttft is None or reference_ttft_s is None:
        return None
    if lv.cap_wait_max_s > LAG_P99_LIMIT_S:
        return None  # the cap held requests back, on purpose
    if ttft <= PROMPT_FACTOR * reference_ttft_s + PROMPT_SLACK_S:
        lv.client_rule = "shortfall"
        return (
            f"achieved {lv.achieved_rps:.2f} req/s of {lv.scheduled_rps:.2f} scheduled while the "
            f"server still answered promptly (TTFT p50 {ttft:.3f} s): {CLIENT_BOUND}"
        )
    return None


def _short(lv: RateLevel) -> bool:
    return (
        lv.n_ok >= MIN_RUNS
        and lv.achieved_rps is not None
        and lv.scheduled_rps is not None
        and lv.achieved_rps < SHORTFALL * lv.scheduled_rps
    )


def _group(records: Iterable[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        load = rec.get("load")
        if not load or rec.get("warmup") or rec.get("cold"):
            continue
        key = (rec.get("model_spec") or rec.get("model"), rec.get("backend"), rec.get("host"),
               rec.get("prompt_id"), load.get("rate"))  # fmt: skip
        groups.setdefault(key, []).append(rec)
    return groups


def rate_levels(
    records: Iterable[dict[str, Any]], slos: list[Slo] | None = None
) -> list[RateLevel]:
    """Every open-loop level of the records, per sweep by ascending rate, each judged for being
    client-bound against its sweep's lowest rate."""
    out = [level_of(recs, slos or []) for recs in _group(records).values()]
    out.sort(key=lambda lv: (lv.model, lv.host or "", lv.prompt_id or "", lv.rate))
    reference: dict[tuple, float | None] = {}
    for lv in out:
        key = (lv.model, lv.host, lv.prompt_id)
        reference.setdefault(key, lv.ttft_s.get("p10"))
        lv.client_bound = judge_client(lv, reference[key])
    return out


def mark_level(
    records: Sequence[Any], slos: list[Slo], reference_ttft_s: float | None
) -> RateLevel | None:
    """Judge one level as it ends and write the verdict into each record's ``load``."""
    data = [r.to_json() for r in records if getattr(r, "load", None)]
    if not data:
        return None
    lv = level_of(data, slos)
    own = lv.ttft_s.get("p10")  # the sweep's first level is its own reference
    lv.client_bound = judge_client(lv, reference_ttft_s if reference_ttft_s is not None else own)
    for rec in records:
        if getattr(rec, "load", None):
            rec.load["client_bound"] = lv.client_bound is not None
            rec.load["client_bound_why"] = lv.client_bound
    return lv


def sweeps(levels: list[RateLevel]) -> dict[tuple, list[RateLevel]]:
    out: dict[tuple, list[RateLevel]] = {}
    for lv in levels:
        out.setdefault((lv.model, lv.host, lv.prompt_id), []).append(lv)
    return out


def saturation(sweep: list[RateLevel], slos: list[Slo]) -> str:
    """The sentence naming where the sweep saturates (module docstring)."""
    for lv in sorted(sweep, key=lambda x: x.rate):
        if lv.client_rule == "shortfall":
            continue  # the client, not the server, fell short
        also = " (the client's send lag was over its limit too)" if lv.client_rule else ""
        if _short(lv):
            share = lv.achieved_rps / lv.scheduled_rps  # type: ignore[operator]
            return (
                f"saturates at {lv.rate:g} req/s: achieved {lv.achieved_rps:.2f} req/s, "
                f"{share:.0%} of the {lv.scheduled_rps:.2f} scheduled (< {SHORTFALL:.0%}){also}"
            )
        if slos and lv.slo_met_share is not None and lv.slo_met_share < SLO_FLOOR:
            return (
                f"saturates at {lv.rate:g} req/s: {lv.slo_met_share:.0%} of requests meet the "
                f"SLOs (< {SLO_FLOOR:.0%}){also}"
            )
    bound = [lv for lv in sweep if lv.client_rule == "shortfall"]
    top = max(sweep, key=lambda x: x.rate)
    tail = f" ({len(bound)} client-bound level(s) not judged)" if bound else ""
    return f"no saturation up to {top.rate:g} req/s{tail}"


def _f(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None else fmt.format(value * scale)


def _trio(
    d: dict[str, float | None],
    fmt: str,
    scale: float = 1.0,
    keys: Sequence[str] = ("p50", "p90", "p99"),
) -> str:
    return "/".join(_f(d.get(k), fmt, scale) for k in keys)


def rate_table(levels: list[RateLevel], slos: list[Slo]) -> list[list[str]]:
    """Header then one row per level: what ``--batch`` prints for an open-loop session."""
    rows = [[
        "model", "prompt", "offered r/s", "sched r/s", "achieved r/s", "ok", "out tok/s",
        "TTFT p50/p90/p99 s", "ITL p50/p90/p99 ms", "latency p50/p90/p99 s",
        "lag p50/p99/max ms", "SLO met", "goodput r/s", "goodput tok/s", "client",
    ]]  # fmt: skip
    for lv in levels:
        rows.append([
            lv.model, lv.prompt_id or "-", f"{lv.rate:g}", _f(lv.scheduled_rps, "{:.2f}"),
            _f(lv.achieved_rps, "{:.2f}"), f"{lv.n_ok}/{lv.n_runs}", _f(lv.output_tok_s, "{:.1f}"),
            _trio(lv.ttft_s, "{:.3f}"), _trio(lv.itl_s, "{:.1f}", 1000),
            _trio(lv.latency_s, "{:.2f}"), _trio(lv.lag_s, "{:.1f}", 1000, ("p50", "p99", "max")),
            _f(lv.slo_met_share, "{:.0f} %", 100) if slos else "-",
            _f(lv.goodput_rps, "{:.2f}") if slos else "-",
            _f(lv.goodput_tok_s, "{:.1f}") if slos else "-",
            "BOUND" if lv.client_bound else "ok",
        ])  # fmt: skip
    return rows


def report_lines(
    records: list[dict[str, Any]], slos: list[Slo]
) -> tuple[list[list[str]], list[str]]:
    """The rate table and the sentences under it: each sweep's saturation point and each
    client-bound level with the reason."""
    levels = rate_levels(records, slos)
    if not levels:
        return [], []
    notes = []
    for (model, _host, prompt), sweep in sweeps(levels).items():
        notes.append(f"{model} {prompt}: {saturation(sweep, slos)}")
    lost: dict[tuple, int] = {}
    for rec in records:
        if "worker process" in (rec.get("error") or "") and rec.get("load"):
            key = (rec.get("model_spec"), rec["load"].get("rate"), rec["load"].get("worker"))
            lost[key] = lost.get(key, 0) + 1
    for (model, rate, worker), n in lost.items():
        notes.append(f"{model} at {rate:g} req/s: worker process {worker} died; its {n} "
                     "unfinished request(s) are failed runs")  # fmt: skip
    for lv in levels:
        if lv.client_bound:
            notes.append(f"CLIENT-BOUND {lv.model} {lv.prompt_id} at {lv.rate:g} req/s: "
                         f"{lv.client_bound}")  # fmt: skip
    return rate_table(levels, slos), notes
