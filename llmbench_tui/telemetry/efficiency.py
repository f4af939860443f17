"""Derived efficiency figures (README Metrics, "Efficiency") and the telemetry warnings of a run.

Energy comes from hardware counters — NVML's total-energy counter per GPU, Linux RAPL's
``energy_uj`` per CPU package — because a counter's growth between two readings is exact where
integrating sampled power misses every spike between two samples; integration is only the fallback
for GPUs without the counter. A run's edges fall between readings, so both methods estimate the
counter (or power) at the run's first and last instant from the readings around them
(``counter_between``, ``power_between``).

Memory bandwidth is the figure that bounds decode speed: every generated token reads the whole
model once, so ``model_bytes × decode_tok_s`` is the bandwidth achieved and
``peak_gb_s / model_bytes`` the fastest decode the hardware could ever give.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..schema import Efficiency, RunRecord

POWERCAP = Path("/sys/class/powercap")
CALIBRATION_FILE = "calibration.json"
LOW_GPU_UTIL_PCT = 50.0
THROTTLE_RATIO = 0.85  # min frequency below 85 % of the run's peak frequency
SWAP_GROWTH_MB = 8.0
# Above the peak by more than this, a figure is physically impossible rather than a calibration
# a few per cent low: a memory-copy peak is a little below what streaming reads can reach.
IMPOSSIBLE_MARGIN = 1.10


def is_local_host(host: str | None) -> bool:
    """Whether a backend host (URL or name) is this machine: ``None`` is (in-process, default)."""
    if not host:
        return True
    try:
        name = urlsplit(host if "//" in host else f"//{host}").hostname or ""
    except ValueError:  # not a host at all (an imported record may hold anything): not ours
        return False
    return name in ("127.0.0.1", "localhost", "::1", "0.0.0.0") or name.startswith("127.")


@dataclass(frozen=True, slots=True)
class RaplDomain:
    name: str
    energy_path: Path
    max_range_uj: int | None


class Rapl:
    """CPU package energy counters from ``/sys/class/powercap/intel-rapl:N`` (N only, not N:M).

    Sub-domains (core, uncore, dram) are left out because the package counter already contains
    the core and uncore parts; adding them would count energy twice. Since 2020 kernels make
    ``energy_uj`` readable by root only, so "not readable" is the common case, not an error.
    """

    def __init__(self, root: Path = POWERCAP) -> None:
        self.domains: list[RaplDomain] = []
        for zone in sorted(root.glob("intel-rapl:*")):
            if zone.name.count(":") != 1:
                continue
            energy = zone / "energy_uj"
            if _read_int(energy) is None:
                continue
            name = (zone / "name").read_text().strip() if (zone / "name").exists() else zone.name
            self.domains.append(RaplDomain(name, energy, _read_int(zone / "max_energy_range_uj")))

    @property
    def readable(self) -> bool:
        return bool(self.domains)

    def read(self) -> tuple[int | None, ...]:
        """One counter value (µJ) per package; ``None`` for a counter that failed this time."""
        return tuple(_read_int(d.energy_path) for d in self.domains)

    def energy_j(
        self,
        times_s: Sequence[float],
        readings: Sequence[tuple[int | None, ...] | None],
        t0: float,
        t1: float,
    ) -> float | None:
        """Energy (J) over ``[t0, t1]``, summed over packages, from readings taken at ``times_s``.

        See ``counter_between``: the readings must bracket both ends; wraparound is handled.
        """
        total = 0.0
        for i, domain in enumerate(self.domains):
            points = [
                (t, float(value))
                for t, r in zip(times_s, readings, strict=True)
                if r is not None and i < len(r) and (value := r[i]) is not None
            ]
            delta = counter_between(points, t0, t1, domain.max_range_uj)
            if delta is None:
                return None
            total += delta / 1e6
        return total if self.domains else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _bracket(
    points: Sequence[tuple[float, float]], t0: float, t1: float
) -> list[tuple[float, float]]:
    """The points from the last at or before ``t0`` to the first at or after ``t1``.

    ``[]`` when either end is not bracketed: the run began before the first sample, or no sample
    followed its end.
    """
    lo = max((i for i, (t, _) in enumerate(points) if t <= t0), default=None)
    hi = min((i for i, (t, _) in enumerate(points) if t >= t1), default=None)
    if lo is None or hi is None or t1 < t0:
        return []
    return list(points[lo : hi + 1])


def _at(points: Sequence[tuple[float, float]], t: float) -> float:
    """The piecewise-linear function through ``points`` (sorted, bracketing ``t``) at ``t``."""
    for (ta, va), (tb, vb) in itertools.pairwise(points):
        if ta <= t <= tb:
            return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)
    return points[0][1]  # a single point, exactly at t


def counter_between(
    points: Sequence[tuple[float, float]], t0: float, t1: float, wrap: float | None = None
) -> float | None:
    """Growth of a cumulative counter from instant ``t0`` to instant ``t1`` (METRICS: end − start).

    ``points`` are ``(time, counter value)`` readings in time order. Samples fall on a grid, not on
    the run's edges, so the counter's value AT ``t0`` and AT ``t1`` is estimated by linear
    interpolation between the two readings bracketing each instant, and the run's energy is the
    difference. Taking the readings themselves instead would count whatever the machine spent
    between the sample before the run and its start (and after its end): for a 50 ms run inside a
    0.25 s interval, five times the run's energy.

    Error bound: the counter is monotonic, so its true value at ``t0`` lies between the two
    bracketing readings; the estimate at each end is off by at most the energy of that bracketing
    interval (in fact by at most ``max(f, 1 − f)`` of it, ``f`` the fraction of the interval before
    the instant), and by nothing when power was constant over it. So the result is exact up to
    ±(energy of the bracketing interval at each end) — at 0.25 s sampling, ±0.25 s × the power at
    the run's edges. A counter that itself updates in steps (RAPL ~1 ms, NVML every few tens of ms)
    stays within the same bound, since a step is still growth inside the bracket.

    The growth is summed reading by reading (rather than last − first) so that wraps survive: a
    backwards step is a wrap when the range is known (``wrap``: the value at which it returns to
    0); otherwise the counter was reset and the growth cannot be known (``None``). ``None`` too
    when the readings do not bracket both instants.
    """
    span = _bracket(points, t0, t1)
    if not span:
        return None
    unwrapped, total = [(span[0][0], 0.0)], 0.0
    for (_, a), (t, b) in itertools.pairwise(span):
        step = b - a
        if step < 0:
            if not wrap:
                return None
            step += wrap
        total += step
        unwrapped.append((t, total))
    return _at(unwrapped, t1) - _at(unwrapped, t0)


def power_between(
    points: Sequence[tuple[float, float | None]], t0: float, t1: float
) -> float | None:
    """Energy (J) over ``[t0, t1]`` from sampled power (W): the fallback without a counter.

    Power is taken as linear between readings (a missing reading is bridged by its neighbours)
    and integrated exactly over ``[t0, t1]`` only: the bracketing segments are clipped at ``t0``
    and ``t1`` (trapezoids whose outer heights are the interpolated power there). Unlike a counter
    this misses any spike between two readings; its error is bounded only by how far power
    strays from a straight line within each interval. ``None`` when the known readings do not
    bracket both instants.
    """
    span = _bracket([(t, w) for t, w in points if w is not None], t0, t1)
    if not span:
        return None
    edges = [t0, *(t for t, _ in span if t0 < t < t1), t1]
    return sum((_at(span, a) + _at(span, b)) / 2 * (b - a) for a, b in itertools.pairwise(edges))


def cpu_peak_gb_s(data_dir: Path | None) -> tuple[float | None, str | None]:
    """The CPU's peak memory bandwidth and where it came from.

    ``LLMBENCH_CPU_PEAK_GB_S`` wins (the user knows their DIMMs); otherwise the figure stored by
    ``llmbench calibrate``; otherwise unknown.
    """
    raw = os.environ.get("LLMBENCH_CPU_PEAK_GB_S")
    if raw:
        try:
            value = float(raw)
            if value > 0:
                return value, "env"
        except ValueError:
            pass
    if data_dir is not None:
        try:
            data = json.loads((data_dir / CALIBRATION_FILE).read_text())
            value = float(data["peak_gb_s"])
            if value > 0:
                return value, "calibration"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return None, None


def model_env(env: dict[str, Any] | None, record: RunRecord) -> dict[str, Any]:
    """The per-model part of a session environment for this record's model (``{}`` if none)."""
    env = env or {}
    models = env.get("models") or {}
    for key in (record.model_spec, record.model):
        if key and isinstance(models.get(key), dict):
            return models[key]
    own = (record.environment or {}).get("model")
    return own if isinstance(own, dict) else {}


def _device(model: dict[str, Any], env: dict[str, Any]) -> str | None:
    """Where the weights live: "gpu", "cpu", "mixed", or ``None`` when it cannot be told."""
    fraction = model.get("vram_fraction")
    if not env.get("gpus"):
        return "cpu"
    if model.get("n_gpu_layers") == 0:
        return "cpu"
    if fraction is None:
        return None
    if fraction >= 0.99:
        return "gpu"
    return "cpu" if fraction <= 0.01 else "mixed"


def _peak(
    device: str | None, model: dict[str, Any], env: dict[str, Any]
) -> tuple[float | None, str | None]:
    """Peak bandwidth seen by the model's bytes.

    A partly offloaded model reads its GPU share at GPU speed and the rest at CPU speed, one after
    the other, so the effective peak is ``1 / (f/Pg + (1−f)/Pc)``.
    """
    gpu_peaks = [g.get("peak_gb_s") for g in env.get("gpus") or [] if g.get("peak_gb_s")]
    gpu_peak = gpu_peaks[0] if gpu_peaks else None
    cpu_peak, cpu_source = env.get("cpu_peak_gb_s"), env.get("cpu_peak_source")
    if device == "gpu":
        return gpu_peak, "nvml" if gpu_peak else None
    if device == "cpu":
        return cpu_peak, cpu_source
    if device == "mixed" and gpu_peak and cpu_peak:
        f = float(model["vram_fraction"])
        return 1.0 / (f / gpu_peak + (1 - f) / cpu_peak), "nvml+" + (cpu_source or "cpu")
    return None, None


def remote_warnings(summaries: Iterable[dict[str, Any]]) -> list[str]:
    """One sentence per source that gave nothing (or stopped answering) during the run."""
    out = []
    for summary in summaries:
        if summary.get("error"):
            out.append(f"remote telemetry incomplete: {summary['error']}")
    return out


def derive(record: RunRecord, env: dict[str, Any] | None) -> tuple[Efficiency, list[str]]:
    """Efficiency figures and warnings for one finished run (never raises on missing data).

    A model served by another machine keeps ``achieved_gb_s`` (a property of the model and the
    rate) and the VRAM-share warning, but no energy, device, peak or machine warnings: this
    machine's counters say nothing about that one.
    """
    env = env or {}
    tele = record.telemetry or {}
    model = model_env(env, record)
    ps = v if isinstance(v := tele.get("ollama_ps"), dict) else {}
    if ps.get("vram_fraction") is not None:  # measured at the run, not at the session's start
        model = {**model, "vram_fraction": ps["vram_fraction"]}
    model_bytes = model.get("size_bytes")
    decode = record.timings.decode_tok_s
    achieved = model_bytes * decode / 1e9 if model_bytes and decode else None
    remote_notes = remote_warnings(tele.get("remote") or [])
    if not is_local_host(record.host):
        remote = Efficiency(achieved_gb_s=achieved, model_bytes=model_bytes, device=None)
        conditions = {"context_length": ps.get("context_length")} if ps.get("loaded") else {}
        if conditions:
            remote.conditions = conditions  # type: ignore[attr-defined]
        return remote, vram_warning(record.model, model) + remote_notes

    gpu_energy = [g.get("energy_j") for g in tele.get("gpus") or []]
    known = [e for e in gpu_energy if e is not None]
    gpu_j = sum(known) if known else None
    cpu_j = tele.get("cpu_energy_j")
    parts = [e for e in (gpu_j, cpu_j) if e is not None]
    energy_j = sum(parts) if parts else None
    tokens = record.tokens.output
    device = _device(model, env)
    peak, peak_source = _peak(device, model, env)
    efficiency = Efficiency(
        j_per_token=energy_j / tokens if energy_j is not None and tokens else None,
        achieved_gb_s=achieved,
        mbu=achieved / peak if achieved is not None and peak else None,
        energy_j=energy_j,
        gpu_energy_j=gpu_j,
        cpu_energy_j=cpu_j,
        model_bytes=model_bytes,
        device=device,
        peak_gb_s=peak,
        peak_source=peak_source,
        ceiling_tok_s=peak * 1e9 / model_bytes if peak and model_bytes else None,
    )
    notes = warnings(record, model, device)
    implausible, sentence = impossible(record, efficiency)
    if implausible:
        efficiency.implausible = implausible  # type: ignore[attr-defined]
        notes.append(sentence)
    conditions, more = run_conditions(record, ps)
    efficiency.conditions = conditions  # type: ignore[attr-defined]
    return efficiency, notes + more + remote_notes


def impossible(record: RunRecord, eff: Efficiency) -> tuple[list[str], str]:
    """Figures that no hardware could give: a decode rate (client or server) above the bandwidth
    ceiling, i.e. more bytes per second than the measured peak. They are flagged — the figure
    paths, and a sentence — rather than shown as if true: the peak is underestimated (calibrate
    again) or the model's size is wrong (a different file than the one described)."""
    extra = eff.model_extra or {}
    ceiling, peak = extra.get("ceiling_tok_s"), extra.get("peak_gb_s")
    if not ceiling or not peak:
        return [], ""
    flagged: list[str] = []
    rates = {
        "timings.decode_tok_s": record.timings.decode_tok_s,
        "server.decode_tok_s": record.server.decode_tok_s if record.server else None,
    }
    for path, rate in rates.items():
        if rate and rate > ceiling * IMPOSSIBLE_MARGIN:
            flagged.append(path)
    if not flagged:
        return [], ""
    fastest = max(r for p, r in rates.items() if p in flagged and r)
    flagged += ["efficiency.achieved_gb_s", "efficiency.mbu"]
    source = extra.get("peak_source") or "unknown"
    return flagged, (
        f"decode rate {fastest:.1f} tok/s is above the bandwidth ceiling of {ceiling:.1f} tok/s "
        f"(it would read {fastest * (extra.get('model_bytes') or 0) / 1e9:.1f} GB/s, the peak is "
        f"{peak:.1f} GB/s from {source}): physically impossible, so the peak or the model size "
        "is wrong (run `llmbench calibrate` again); MBU and bandwidth are not meaningful here."
    )


BUSY_OTHER_CPU_PCT = 25.0  # during a run: mean share of the machine used by other processes

BUSY_WARNING_START = "other processes used "


def busy_warning(other_pct: float) -> str:
    """The record's sentence for a run measured beside other work."""
    return (
        f"{BUSY_WARNING_START}{other_pct:.0f} % of the CPU during this run; "
        "its figures are not comparable"
    )


def run_conditions(record: RunRecord, ps: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The run's conditions (``efficiency.conditions``) and the warnings they call for.

    - ``other_cpu_pct``/``other_cpu_pct_max``: the share of the machine other processes used
      during the run (the sampler's ``other_cpu_pct``), ``busy`` when the mean is above
      ``BUSY_OTHER_CPU_PCT``;
    - ``threads``: llama.cpp's thread count for in-process runs (``n_threads`` of the options);
    - ``cpu_shared_streams``: in-process streams of one model at once (concurrency > 1 on the
      GGUF backend: they share one llama.cpp instance and its threads, taking turns);
    - ``context_length``: the context Ollama allocated (``/api/ps``), when known.
    """
    tele = record.telemetry or {}
    other = tele.get("other_cpu_pct") or {}
    mean, peak = other.get("mean"), other.get("max")
    busy = mean is not None and mean > BUSY_OTHER_CPU_PCT
    threads = (record.options or {}).get("n_threads") if record.backend == "gguf" else None
    shared = record.concurrency if record.backend == "gguf" and record.concurrency > 1 else None
    conditions: dict[str, Any] = {
        "other_cpu_pct": mean,
        "other_cpu_pct_max": peak,
        "busy": busy,
        "threads": threads if isinstance(threads, int) else None,
        "cpu_shared_streams": shared,
    }
    if ps.get("loaded"):
        conditions["context_length"] = ps.get("context_length")
    notes: list[str] = []
    if busy and mean is not None:
        notes.append(busy_warning(mean))
    if shared:
        notes.append(
            f"{shared} in-process streams shared one llama.cpp instance and its "
            f"{threads or '?'} threads (concurrency {shared}): they took turns, so each "
            "stream's TTFT includes waiting for the others."
        )
    return conditions, notes


def vram_warning(name: str, model: dict[str, Any]) -> list[str]:
    """The model only partly in VRAM (Ollama ``/api/ps``; true wherever the server runs)."""
    fraction = model.get("vram_fraction")
    if fraction is not None and 0.01 < fraction < 0.99:
        return [
            f"Only {fraction * 100:.0f} % of {name} is in VRAM; the rest runs on the CPU "
            "and bounds the decode rate."
        ]
    return []


def warnings(record: RunRecord, model: dict[str, Any], device: str | None) -> list[str]:
    """Plain sentences about conditions that make this run's figures suspect."""
    out: list[str] = []
    tele = record.telemetry or {}
    name = record.model
    if device in ("gpu", "mixed"):
        means = [(g.get("util_pct") or {}).get("mean") for g in tele.get("gpus") or []]
        utils = [u for u in means if u is not None]
        if utils and max(utils) < LOW_GPU_UTIL_PCT:
            out.append(
                f"GPU utilization was low during the run ({max(utils):.0f} % mean, below "
                f"{LOW_GPU_UTIL_PCT:.0f} %): the GPU was waiting on something else."
            )
    out.extend(vram_warning(name, model))
    freq = tele.get("cpu_freq_mhz") or {}
    if freq.get("min") and freq.get("max") and freq["min"] < THROTTLE_RATIO * freq["max"]:
        out.append(
            f"CPU frequency fell to {freq['min']:.0f} MHz during the run, from a peak of "
            f"{freq['max']:.0f} MHz (throttling?)."
        )
    swap = tele.get("swap_used_mb") or {}
    if (swap.get("delta") or 0) > SWAP_GROWTH_MB:
        out.append(
            f"Swap use grew by {swap['delta']:.0f} MiB during the run: memory is short and "
            "the figures are slowed by paging."
        )
    return out
