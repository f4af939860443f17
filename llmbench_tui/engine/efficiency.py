"""Derived efficiency figures (METRICS.md, "Efficiency") and the telemetry warnings of a run.

Energy comes from hardware counters — NVML's total-energy counter per GPU, Linux RAPL's
``energy_uj`` per CPU package — because a counter delta is exact where integrating sampled power
misses every spike between two samples; integration is only the fallback for GPUs without the
counter. Memory bandwidth is the figure that bounds decode speed: every generated token reads the
whole model once, so ``model_bytes × decode_tok_s`` is the bandwidth achieved and
``peak_gb_s / model_bytes`` the fastest decode the hardware could ever give.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
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


def is_local_host(host: str | None) -> bool:
    """Whether a backend host (URL or name) is this machine: ``None`` is (in-process, default)."""
    if not host:
        return True
    name = urlsplit(host if "//" in host else f"//{host}").hostname or ""
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

    def energy_j(self, readings: Sequence[tuple[int | None, ...]]) -> float | None:
        """Energy over consecutive readings, summed over packages, wraparound handled."""
        total = 0.0
        for i, domain in enumerate(self.domains):
            values = [r[i] for r in readings if i < len(r) and r[i] is not None]
            delta = counter_delta(values, domain.max_range_uj)
            if delta is None:
                return None
            total += delta / 1e6
        return total if self.domains else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def counter_delta(values: Sequence[float], wrap: float | None = None) -> float | None:
    """Growth of a monotonic counter over consecutive readings.

    Summing step by step (rather than last − first) survives several wraps in a long run. A
    backwards step is a wrap when the range is known (``wrap``: the value at which it wraps to 0);
    otherwise the counter was reset and the delta cannot be known.
    """
    if len(values) < 2:
        return None
    total = 0.0
    for a, b in itertools.pairwise(values):
        step = b - a
        if step < 0:
            if not wrap:
                return None
            step += wrap
        total += step
    return total


def integrate_power(times_s: Sequence[float], watts: Sequence[float | None]) -> float | None:
    """Trapezoidal energy (J) from sampled power; gaps (``None``) break the sum into pieces."""
    total, have = 0.0, False
    for i in range(1, len(times_s)):
        a, b = watts[i - 1], watts[i]
        if a is None or b is None:
            continue
        total += (a + b) / 2 * (times_s[i] - times_s[i - 1])
        have = True
    return total if have else None


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


def derive(record: RunRecord, env: dict[str, Any] | None) -> tuple[Efficiency, list[str]]:
    """Efficiency figures and warnings for one finished run (never raises on missing data).

    A model served by another machine keeps ``achieved_gb_s`` (a property of the model and the
    rate) and the VRAM-share warning, but no energy, device, peak or machine warnings: this
    machine's counters say nothing about that one.
    """
    env = env or {}
    model = model_env(env, record)
    model_bytes = model.get("size_bytes")
    decode = record.timings.decode_tok_s
    achieved = model_bytes * decode / 1e9 if model_bytes and decode else None
    if not is_local_host(record.host):
        remote = Efficiency(achieved_gb_s=achieved, model_bytes=model_bytes, device=None)
        return remote, vram_warning(record.model, model)

    tele = record.telemetry or {}
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
    return efficiency, warnings(record, model, device)


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
        utils = [(g.get("util_pct") or {}).get("mean") for g in tele.get("gpus") or []]
        utils = [u for u in utils if u is not None]
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
