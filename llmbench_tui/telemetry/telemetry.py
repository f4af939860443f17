"""``TelemetryHub``: the sampler, the environment snapshot and the derived figures behind one door.

The engine talks only to the hub, in this order: ``start`` once per process;
``session_environment`` once per session (the snapshot stored with it); ``watch`` before each run,
so the serving processes are primed before the run's first tick; after the run, ``run_window``
with the run's first and last instants (``perf_counter_ns``: the request sent, the last token
received), called off the event loop, then ``derive`` with the finished record; ``stop`` at exit.
``run_window`` turns the sampler's ring buffer into the record's ``telemetry`` summary
(README Metrics) and the series stored apart from the record; ``derive`` gives the record's
``efficiency`` and warnings.

Beside the local sampler the hub owns the run conditions and the telemetry of other hosts:
``session_environment`` adds ``conditions`` (how busy the machine was with other work as the
session began: ``conditions.Busy``); every run's summary has ``other_cpu_pct`` (the machine's
share used by processes other than the serving ones and this one), ``remote`` (one summary per
``--telemetry-url`` source, see ``remote_telemetry``) and, for Ollama, ``ollama_ps`` (what
``/api/ps`` says of the model right after the run: VRAM share, context allocated).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..schema import Efficiency, ModelSpec, RunRecord
from . import efficiency
from .efficiency import Rapl, counter_between, power_between
from .nvml import Nvml
from .sampler import OTHERS_WALK_S, ProcessTarget, Sample, Sampler

RECENT_BUSY_S = 1.0  # the sampler's last second stands in for a pre-session measurement


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

    ``telemetry_urls``: Prometheus endpoints to scrape during runs, a list (every run) or a
    ``{url: host}`` mapping (only runs against that host; ``None`` for every run).
    ``pre_session``: a ``conditions.Busy`` measured by the caller just before the session
    (``--batch`` does, to warn or ``--wait-idle``); the next session's environment records it.
    """

    def __init__(
        self,
        interval_s: float = 0.25,
        *,
        data_dir: Path | None = None,
        server: str | None = None,
        nvml: Nvml | None = None,
        rapl: Rapl | None = None,
        telemetry_urls: Sequence[str] | dict[str, str | None] | None = None,
        scrape_interval_s: float | None = None,
    ) -> None:
        from .remote_telemetry import DEFAULT_INTERVAL_S, RemoteTelemetry

        self.nvml = nvml or Nvml()
        self.rapl = rapl if rapl is not None else Rapl()
        self.sampler = Sampler(interval_s, nvml=self.nvml, rapl=self.rapl)
        self.data_dir = data_dir
        self.server = server or os.environ.get("LLMBENCH_SERVER_PID") or None
        self._gpu_names: dict[int, str | None] = {}
        self.remote = RemoteTelemetry(
            telemetry_urls or [], interval_s=scrape_interval_s or DEFAULT_INTERVAL_S
        )
        self.pre_session: Any = None
        self.last_environment: dict[str, Any] | None = None  # the last session's snapshot
        self._watched: tuple[ModelSpec, str | None] | None = None

    @property
    def interval_s(self) -> float:
        return self.sampler.interval_s

    def start(self) -> None:
        self.sampler.start()
        self.remote.start()

    def stop(self) -> None:
        self.sampler.stop()
        self.remote.stop()

    def targets(self, specs: Sequence[ModelSpec]) -> list[ProcessTarget]:
        """The serving processes of every model of a plan (for ``conditions.measure``)."""
        return list(
            dict.fromkeys(ProcessTarget.for_backend(s.backend, s.host, self.server) for s in specs)
        )

    def recent_busy(self, seconds: float = RECENT_BUSY_S) -> Any:
        """How busy the machine was with other work over the sampler's last ``seconds``
        (a ``conditions.Busy`` without process names), or ``None`` without enough samples."""
        from .conditions import Busy, load_avg

        samples = [s for s in self.sampler.history(seconds) if s.other_cpu_pct is not None]
        if len(samples) < 2 or (samples[-1].t_ns - samples[0].t_ns) / 1e9 < seconds / 2:
            return None
        other = sum(s.other_cpu_pct or 0.0 for s in samples) / len(samples)
        cpu = sum(s.cpu_pct for s in samples) / len(samples)
        return Busy(
            other_cpu_pct=round(other, 1),
            cpu_pct=round(cpu, 1),
            ours_cpu_pct=round(max(0.0, cpu - other), 1),
            cpus=len(samples[-1].per_core_pct) or (os.cpu_count() or 1),
            seconds=round((samples[-1].t_ns - samples[0].t_ns) / 1e9, 2),
            load_avg=load_avg(),
        )

    async def session_environment(self, pool: Any, specs: list[ModelSpec]) -> dict[str, Any]:
        """The session's environment snapshot (see ``environment.snapshot``) with the machine's
        ``conditions`` as it began; never raises."""
        import asyncio

        from .conditions import measure
        from .environment import snapshot

        busy, self.pre_session = self.pre_session, None
        busy = busy or self.recent_busy()
        shot = snapshot(pool, specs, nvml=self.nvml, rapl=self.rapl, data_dir=self.data_dir)
        if busy is None:  # the sampler has not run long enough: measure beside the snapshot
            env, busy = await asyncio.gather(
                shot, asyncio.to_thread(measure, self.targets(specs), 0.5)
            )
        else:
            env = await shot
        env["conditions"] = busy.to_json()
        self.last_environment = env
        self._gpu_names = {g["index"]: g.get("name") for g in env.get("gpus", [])}
        return env

    def watch(self, spec: ModelSpec, backend: Any) -> None:
        """Point the sampler at the processes serving ``spec`` before its run starts."""
        host = getattr(backend, "host", None) or spec.host
        self.sampler.watch(ProcessTarget.for_backend(spec.backend, host, self.server))
        self._watched = (spec, host)
        if self.remote:
            self.remote.poke(host)  # a page right at the run's start

    def run_window(self, t0_ns: int, t1_ns: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record's ``telemetry`` summary and the series for a run that spanned ``[t0, t1]``.

        Waits for one extra sample right after ``t1`` (it brackets the run's end for the energy
        figures, and is the one point of a run shorter than an interval), so call it via
        ``asyncio.to_thread`` from the event loop. Remote sources are waited for the same way
        (a failing one is not waited for), and an Ollama model's ``/api/ps`` is read.
        """
        summary, series = self.summarize(self.sampler.span(t0_ns, t1_ns), t0_ns, t1_ns)
        # Which process was taken as the server (and so as the benchmark's own load), and the
        # busiest others when they were many enough to be named during the run.
        summary["server_process"] = self.sampler.server_process()
        summary["other_processes"] = self.sampler.busiest_others(
            t0_ns - int(OTHERS_WALK_S * 1.5e9)
        )
        spec, host = self._watched or (None, None)
        if self.remote:
            summary["remote"], series["remote"] = self.remote.window(host, t0_ns, t1_ns)
        if spec is not None and spec.backend == "ollama":
            from ..backends.ollama import read_ps

            summary["ollama_ps"] = read_ps(host, spec.name)
        return summary, series

    def summarize(
        self, span: list[Sample], t0_ns: int, t1_ns: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``run_window`` on given samples (``Sampler.span``: oldest first, covering the run).

        Means and maxima use the samples inside ``[t0, t1]``: each describes the interval ending
        at it. A run shorter than one interval has none inside, so the first sample after ``t1``
        stands in (its interval contains the run). Energy is the counter growth from ``t0`` to
        ``t1`` exactly, interpolated at both edges (``efficiency.counter_between``).
        """
        samples = [s for s in span if t0_ns <= s.t_ns <= t1_ns]
        if not samples:
            samples = [s for s in span if s.t_ns > t1_ns][:1]
        return self._summary(span, samples, t0_ns, t1_ns), self._series(samples, t0_ns)

    def _summary(
        self, span: list[Sample], samples: list[Sample], t0_ns: int, t1_ns: int
    ) -> dict[str, Any]:
        start = [s for s in span if s.t_ns <= t0_ns][-1:]  # the machine's state as the run began
        swap = [s.swap_used_mb for s in start + samples]
        times = [(s.t_ns - t0_ns) / 1e9 for s in span]  # seconds since t0: the run is [0, end]
        end = (t1_ns - t0_ns) / 1e9
        summary: dict[str, Any] = {
            "interval_s": self.interval_s,
            "samples": len(samples),
            "cpu_pct": _stats([s.cpu_pct for s in samples]),
            "other_cpu_pct": _stats([s.other_cpu_pct for s in samples]),
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
            delta = round(swap[-1] - swap[0], 3)
            summary["swap_used_mb"] = {**(_stats(swap) or {}), "delta": delta}
        if self.rapl.readable:
            energy = self.rapl.energy_j(times, [s.rapl_uj for s in span], 0.0, end)
            summary["cpu_energy_j"] = _r(energy)
        if samples:
            summary["gpus"] = [
                self._gpu_summary(i, times, span, samples, end)
                for i in range(len(samples[-1].gpus))
            ]
        return summary

    def _gpu_summary(
        self, i: int, times: list[float], span: list[Sample], samples: list[Sample], end: float
    ) -> dict[str, Any]:
        reads = [s.gpus[i] for s in samples if i < len(s.gpus)]
        edge = [(t, s.gpus[i]) for t, s in zip(times, span, strict=True) if i < len(s.gpus)]
        counter = [(t, g.energy_mj) for t, g in edge if g.energy_mj is not None]
        energy_j, source = None, None
        if (delta := counter_between(counter, 0.0, end)) is not None:
            energy_j, source = delta / 1000.0, "counter"
        elif (joules := power_between([(t, g.power_w) for t, g in edge], 0.0, end)) is not None:
            energy_j, source = joules, "power"
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
            "other_cpu_pct": [_r(s.other_cpu_pct) for s in samples],
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
