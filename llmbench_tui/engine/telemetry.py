"""``TelemetryHub``: the sampler, the environment snapshot and the derived figures behind one door.

The engine talks only to the hub (see BRIEF_API "Telemetry"): ``session_environment`` once,
``watch`` before each run, ``run_window`` and ``derive`` after it. ``run_window`` turns the
sampler's ring buffer into the record's ``telemetry`` summary (METRICS.md) and the series stored
apart from the record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..schema import Efficiency, ModelSpec, RunRecord
from . import efficiency
from .efficiency import Rapl, counter_delta, integrate_power
from .nvml import Nvml
from .sampler import ProcessTarget, Sample, Sampler


def _stats(values: Sequence[float | None], *, extra: bool = False) -> dict[str, float] | None:
    """``{mean, max}`` of the known values (``None`` when there are none); ``extra`` adds min."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    out = {"mean": round(sum(known) / len(known), 3), "max": round(max(known), 3)}
    if extra:
        out["min"] = round(min(known), 3)
    return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class TelemetryHub:
    """Owns the process's one ``Sampler`` thread; start it once, share it with everyone.

    ``server`` names the process of an OpenAI-compatible (or remote-looking) server to watch: a PID
    or a process name; default ``LLMBENCH_SERVER_PID``.
    """

    def __init__(
        self,
        interval_s: float = 0.25,
        *,
        data_dir: Path | None = None,
        server: str | None = None,
        nvml: Nvml | None = None,
        rapl: Rapl | None = None,
    ) -> None:
        self.nvml = nvml or Nvml()
        self.rapl = rapl if rapl is not None else Rapl()
        self.sampler = Sampler(interval_s, nvml=self.nvml, rapl=self.rapl)
        self.data_dir = data_dir
        self.server = server or os.environ.get("LLMBENCH_SERVER_PID") or None
        self._gpu_names: dict[int, str | None] = {}

    @property
    def interval_s(self) -> float:
        return self.sampler.interval_s

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.sampler.stop()

    async def session_environment(self, pool: Any, specs: list[ModelSpec]) -> dict[str, Any]:
        """The session's environment snapshot (see ``environment.snapshot``); never raises."""
        from .environment import snapshot

        env = await snapshot(pool, specs, nvml=self.nvml, rapl=self.rapl, data_dir=self.data_dir)
        self._gpu_names = {g["index"]: g.get("name") for g in env.get("gpus", [])}
        return env

    def watch(self, spec: ModelSpec, backend: Any) -> None:
        """Point the sampler at the processes serving ``spec`` before its run starts."""
        host = getattr(backend, "host", None) or spec.host
        self.sampler.watch(ProcessTarget.for_backend(spec.backend, host, self.server))

    def run_window(self, t0_ns: int, t1_ns: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record's ``telemetry`` summary and the series for a run that spanned ``[t0, t1]``.

        A run shorter than one interval may contain no tick, so one extra sample is taken right
        after ``t1`` (its CPU % covers the interval that ends there, i.e. the run); this waits for
        the sampler thread, so call it via ``asyncio.to_thread`` from the event loop.
        """
        samples = self.sampler.window(t0_ns, t1_ns)
        if not samples:
            extra = self.sampler.sample_after(t1_ns)
            samples = [extra] if extra else []
        prior = self.sampler.before(samples[0].t_ns) if samples else None
        return self._summary(samples, prior), self._series(samples, t0_ns)

    def _summary(self, samples: list[Sample], prior: Sample | None) -> dict[str, Any]:
        edge = ([prior] if prior else []) + samples  # prior: where the first interval began
        swap = [s.swap_used_mb for s in edge]
        summary: dict[str, Any] = {
            "interval_s": self.interval_s,
            "samples": len(samples),
            "cpu_pct": _stats([s.cpu_pct for s in samples]),
            "cpu_per_core_pct_max": [
                round(max(core), 1)
                for core in zip(*(s.per_core_pct for s in samples), strict=False)
            ],
            "cpu_freq_mhz": _stats([s.cpu_freq_mhz for s in samples], extra=True),
            "ram_used_mb": _stats([s.ram_used_mb for s in samples]),
            "swap_used_mb": None,
            "proc_cpu_pct": _stats([s.proc_cpu_pct for s in samples]),
            "proc_rss_mb": _stats([s.proc_rss_mb for s in samples]),
            "procs": max((s.procs for s in samples), default=0),
            "cpu_energy_j": None,
            "gpus": [],
        }
        if swap:
            summary["swap_used_mb"] = {**_stats(swap), "delta": round(swap[-1] - swap[0], 3)}
        if self.rapl.readable and len(edge) >= 2:
            summary["cpu_energy_j"] = _r(self.rapl.energy_j([s.rapl_uj or () for s in edge]))
        if samples:
            summary["gpus"] = [
                self._gpu_summary(i, edge, samples) for i in range(len(samples[-1].gpus))
            ]
        return summary

    def _gpu_summary(self, i: int, edge: list[Sample], samples: list[Sample]) -> dict[str, Any]:
        reads = [s.gpus[i] for s in samples if i < len(s.gpus)]
        edge_reads = [(s.t_ns / 1e9, s.gpus[i]) for s in edge if i < len(s.gpus)]
        energy_mj = [g.energy_mj for _, g in edge_reads]
        if (
            all(e is not None for e in energy_mj)
            and (delta := counter_delta(energy_mj)) is not None
        ):
            energy_j, source = delta / 1000.0, "counter"
        else:
            energy_j = integrate_power(
                [t for t, _ in edge_reads], [g.power_w for _, g in edge_reads]
            )
            source = "power" if energy_j is not None else None
        return {
            "index": i,
            "name": self._gpu_names.get(i) or self._gpu_name(i),
            "util_pct": _stats([g.util_pct for g in reads]),
            "mem_used_mb": _stats([g.mem_used_mb for g in reads]),
            "power_w": _stats([g.power_w for g in reads]),
            "energy_j": _r(energy_j),
            "energy_source": source,
            "temp_c": _stats([g.temp_c for g in reads]),
            "sm_clock_mhz": _stats([g.sm_clock_mhz for g in reads]),
            "mem_clock_mhz": _stats([g.mem_clock_mhz for g in reads]),
        }

    def _gpu_name(self, index: int) -> str | None:
        gpus = {g.index: g.name for g in self.nvml.open()}  # already open: no driver call
        return gpus.get(index)

    @staticmethod
    def _series(samples: list[Sample], t0_ns: int) -> dict[str, Any]:
        series: dict[str, Any] = {
            "t_s": [round((s.t_ns - t0_ns) / 1e9, 4) for s in samples],
            "cpu_pct": [_r(s.cpu_pct) for s in samples],
            "ram_used_mb": [_r(s.ram_used_mb) for s in samples],
            "proc_cpu_pct": [_r(s.proc_cpu_pct) for s in samples],
            "proc_rss_mb": [_r(s.proc_rss_mb) for s in samples],
            "cpu_freq_mhz": [_r(s.cpu_freq_mhz) for s in samples],
            "gpus": [],
        }
        n_gpus = len(samples[-1].gpus) if samples else 0
        for i in range(n_gpus):
            reads = [s.gpus[i] if i < len(s.gpus) else None for s in samples]
            series["gpus"].append(
                {
                    "index": i,
                    **{
                        key: [_r(getattr(g, key)) if g else None for g in reads]
                        for key in ("util_pct", "mem_used_mb", "power_w", "temp_c")
                    },
                }
            )
        return series

    def derive(self, record: RunRecord, env: dict[str, Any] | None) -> tuple[Efficiency, list[str]]:
        """Efficiency figures and warnings for a finished run (``record.telemetry`` filled in)."""
        return efficiency.derive(record, env)
