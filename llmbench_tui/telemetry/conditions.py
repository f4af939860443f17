"""Honest run conditions: how busy the machine is with work that is not the benchmark.

A decode rate measured while a compiler ran beside it is a figure about the compiler as much as
about the model. So before a session (``measure``, ``wait_idle``) and during every run (the
sampler's ``other_cpu_pct``) the CPU used by processes *other* than the serving ones and this one
is measured: the system's busy CPU time minus theirs, as a share of the whole machine. Above
``BUSY_OTHER_CPU_PCT`` during a run, the run's record carries a warning that its figures are not
comparable.

Everything here blocks (it sleeps for the measurement): call it off the event loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from .efficiency import BUSY_OTHER_CPU_PCT, busy_warning
from .sampler import ProcessTarget, cpu_busy, serving_pids

__all__ = [
    "BUSY_OTHER_CPU_PCT", "IDLE_OTHER_CPU_PCT", "Busy", "busy_warning", "load_avg", "measure",
    "wait_idle",
]  # fmt: skip

IDLE_OTHER_CPU_PCT = 10.0  # before a session: "not idle" from this share of the machine on
MEASURE_S = 1.0
DEFAULT_WAIT_S = 60.0
TOP_PROCESSES = 3



@dataclass(frozen=True, slots=True)
class Busy:
    """One measurement of how busy the machine is with other work.

    ``other_cpu_pct``, ``cpu_pct`` and ``ours_cpu_pct`` are shares of the whole machine (0-100);
    ``top`` the busiest other processes, each ``{"pid", "name", "cpu_pct"}`` in "% of one core"
    (like ``top``), so a compiler spinning two cores says 200.
    """

    other_cpu_pct: float
    cpu_pct: float
    ours_cpu_pct: float
    cpus: int
    seconds: float
    load_avg: tuple[float, float, float] | None = None
    top: list[dict[str, Any]] = field(default_factory=list)
    threshold_pct: float = IDLE_OTHER_CPU_PCT

    @property
    def idle(self) -> bool:
        return self.other_cpu_pct < self.threshold_pct

    def sentence(self) -> str:
        """``the machine is not idle: other processes used 85 % of the CPU (cc1plus 180 %, ...)``"""
        state = "idle" if self.idle else "not idle"
        text = f"the machine is {state}: other processes used {self.other_cpu_pct:.0f} % of the CPU"
        if self.top and not self.idle:
            named = ", ".join(f"{p['name']} {p['cpu_pct']:.0f} %" for p in self.top)
            text += f" ({named})"
        if self.load_avg is not None:
            text += f"; load average {self.load_avg[0]:.2f} on {self.cpus} CPUs"
        return text

    def to_json(self) -> dict[str, Any]:
        """As stored with the session environment (``environment.conditions``)."""
        return {
            "other_cpu_pct": self.other_cpu_pct,
            "cpu_pct": self.cpu_pct,
            "ours_cpu_pct": self.ours_cpu_pct,
            "cpus": self.cpus,
            "seconds": self.seconds,
            "load_avg": list(self.load_avg) if self.load_avg else None,
            "top": self.top,
            "idle": self.idle,
            "threshold_pct": self.threshold_pct,
        }


def load_avg() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages, ``None`` where the platform has none."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):
        return None
    return round(one, 2), round(five, 2), round(fifteen, 2)


def _process_times() -> dict[int, tuple[str, float]]:
    """(name, user + system CPU seconds) of every readable process, by PID."""
    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if times is None:
            continue
        out[proc.pid] = (proc.info.get("name") or "?", times.user + times.system)
    return out


def _cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User + system CPU seconds of each of ``pids`` still alive and readable."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        out[pid] = times.user + times.system
    return out


def _excluded(targets: Iterable[ProcessTarget]) -> set[int]:
    pids = {os.getpid()}
    for target in targets:
        pids |= serving_pids(target)
    return pids


def measure(
    targets: Iterable[ProcessTarget] = (),
    seconds: float = MEASURE_S,
    *,
    threshold_pct: float = IDLE_OTHER_CPU_PCT,
) -> Busy:
    """How busy the machine is over ``seconds`` with processes other than this one and the ones
    serving ``targets`` (blocking: it sleeps ``seconds``).

    The other share is the system's busy CPU time minus the excluded processes' time, over the
    machine's total: it also counts processes too short-lived to be seen by name (each
    compiler invocation of a build). ``top`` names the busiest other processes still alive.
    """
    targets = list(targets)
    excluded = _excluded(targets)
    # Our share is read right beside the machine's counters, so both cover the same window;
    # the walk over every process (slow when this process is busy, since it waits for the GIL)
    # only names the busiest others.
    cpu0, ours0, t0 = psutil.cpu_times(), _cpu_seconds(excluded), time.monotonic()
    procs0 = _process_times()
    time.sleep(seconds)
    excluded |= _excluded(targets)  # runners started meanwhile
    cpu1, ours1, t1 = psutil.cpu_times(), _cpu_seconds(excluded), time.monotonic()
    procs1 = _process_times()
    (b0, tot0), (b1, tot1) = cpu_busy(cpu0), cpu_busy(cpu1)
    busy, total = max(0.0, b1 - b0), max(0.0, tot1 - tot0)
    cpus = psutil.cpu_count() or 1
    # A process started meanwhile is counted from 0: all its CPU time fell in the window.
    ours = sum(max(0.0, after - ours0.get(pid, 0.0)) for pid, after in ours1.items())
    per_proc: list[dict[str, Any]] = []
    wall = max(t1 - t0, 1e-9)
    for pid, (name, after) in procs1.items():
        if pid in excluded:
            continue
        delta = max(0.0, after - procs0.get(pid, (name, 0.0))[1])
        if delta / wall >= 0.05:
            per_proc.append({"pid": pid, "name": name, "cpu_pct": round(100 * delta / wall, 1)})
    if not total:
        total = wall * cpus
    cpu_pct = min(100.0, 100.0 * busy / total)
    other_pct = min(100.0, max(0.0, 100.0 * (busy - ours) / total))
    load = load_avg()
    per_proc.sort(key=lambda p: -p["cpu_pct"])
    return Busy(
        other_cpu_pct=round(other_pct, 1),
        cpu_pct=round(cpu_pct, 1),
        ours_cpu_pct=round(min(100.0, 100.0 * ours / total), 1),
        cpus=cpus,
        seconds=round(wall, 2),
        load_avg=load,
        top=per_proc[:TOP_PROCESSES],
        threshold_pct=threshold_pct,
    )


def wait_idle(
    targets: Iterable[ProcessTarget] = (),
    timeout_s: float = DEFAULT_WAIT_S,
    *,
    seconds: float = MEASURE_S,
    threshold_pct: float = IDLE_OTHER_CPU_PCT,
    on_busy: Callable[[Busy, float], None] | None = None,
) -> tuple[Busy, float]:
    """Measure (``seconds`` at a time) until the machine is idle or ``timeout_s`` has passed;
    returns the last measurement and the seconds waited. ``on_busy(busy, waited_s)`` is told of
    each busy measurement after which it waits on."""
    targets = list(targets)
    start = time.monotonic()
    while True:
        busy = measure(targets, seconds, threshold_pct=threshold_pct)
        waited = time.monotonic() - start
        if busy.idle or waited >= timeout_s:
            return busy, round(waited, 1)
        if on_busy is not None:
            on_busy(busy, waited)
