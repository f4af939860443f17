"""Honest run conditions: how busy the machine is with work that is not the benchmark.

A decode rate measured while a compiler ran beside it is a figure about the compiler as much as
about the model. So before a session (``measure``, ``wait_idle``) and during every run (the
sampler's ``other_cpu_pct``) the CPU used by processes *other* than the serving ones and this one
is measured: the system's busy CPU time minus theirs, as a share of the whole machine. Above
``BUSY_OTHER_CPU_PCT`` during a run, the run's record carries a warning that its figures are not
comparable.

Two clocks meet in that subtraction, and they differ. A process's CPU time is the scheduler's
exact run time (``sum_exec_runtime``); the machine's *busy* fields in ``/proc/stat`` are sampled
at each timer tick (``CONFIG_TICK_CPU_ACCOUNTING``, the default: the whole tick goes to whatever
runs as it fires), while its *idle* field is measured exactly (a tickless kernel times each idle
period). A process that keeps waking up for less than a tick — our own thread handing the GIL
back and forth with a spinning one — is undercounted by the busy fields, so on an otherwise idle
machine "our" time came out above the machine's busy time (issue 17: 52.2 % against 50.7 % on a
2-vCPU AMD EPYC VM). So the machine's busy time here is the exact one: elapsed time × CPUs minus
the idle time, over the same instants as the processes' reads. What is left of the difference is
the counters' unit (``1/USER_HZ``, 10 ms, per read), and within it our share is capped at the
machine's: ``cpu_pct == other_cpu_pct + ours_cpu_pct`` always, and neither is ever negative.

Everything here blocks (it sleeps for the measurement): call it off the event loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from .efficiency import BUSY_OTHER_CPU_PCT, busy_warning
from .sampler import ProcessTarget, serving_pids

__all__ = [
    "BUSY_OTHER_CPU_PCT", "CLOCK_UNIT_S", "IDLE_OTHER_CPU_PCT", "Busy", "busy_warning", "load_avg",
    "measure", "wait_idle",
]  # fmt: skip

IDLE_OTHER_CPU_PCT = 10.0  # before a session: "not idle" from this share of the machine on
MEASURE_S = 1.0
DEFAULT_WAIT_S = 60.0
TOP_PROCESSES = 3
# The unit of every CPU-time counter read here (``/proc/stat`` and ``/proc/PID/stat`` count in
# clock ticks of USER_HZ, 100 on Linux): a difference of two reads is exact to within one unit.
CLOCK_UNIT_S = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


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
        out = asdict(self)
        out["load_avg"] = list(self.load_avg) if self.load_avg else None
        out["idle"] = self.idle
        return out


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


def _machine(cpu_times: Any) -> tuple[float, float]:
    """(idle, total) seconds of one ``psutil.cpu_times()``: idle counts I/O wait, and the total
    leaves out guest time, which Linux already counts inside user and nice."""
    guest = getattr(cpu_times, "guest", 0.0) + getattr(cpu_times, "guest_nice", 0.0)
    total = sum(cpu_times) - guest
    return cpu_times.idle + getattr(cpu_times, "iowait", 0.0), total


def _read(excluded: set[int]) -> tuple[float, float, float, dict[int, float]]:
    """(monotonic instant, machine idle s, machine total s, excluded processes' CPU s), read back
    to back so that the machine and the processes are seen at the same instant."""
    t = time.monotonic()
    idle, total = _machine(psutil.cpu_times())
    return t, idle, total, _cpu_seconds(excluded)


def measure(
    targets: Iterable[ProcessTarget] = (),
    seconds: float = MEASURE_S,
    *,
    threshold_pct: float = IDLE_OTHER_CPU_PCT,
) -> Busy:
    """How busy the machine is over ``seconds`` with processes other than this one and the ones
    serving ``targets`` (blocking: it sleeps ``seconds``).

    The other share is the machine's busy CPU time minus the excluded processes' time, over the
    machine's total: it also counts processes too short-lived to be seen by name (each
    compiler invocation of a build). The machine's busy time is elapsed time × CPUs minus its
    idle time (see the module's docstring for why not its tick-sampled busy fields); our share
    is capped at it, so ``cpu_pct = other_cpu_pct + ours_cpu_pct``. ``top`` names the busiest
    other processes still alive.
    """
    targets = list(targets)
    excluded = _excluded(targets)
    # The window is between the two reads, and nothing else is done outside it: the walks over
    # every process (slow when this process is busy, since they wait for the GIL), which only
    # name the busiest others, are inside.
    t0, idle0, total0, ours0 = _read(excluded)
    procs0 = _process_times()
    time.sleep(seconds)
    procs1 = _process_times()
    excluded |= _excluded(targets)  # runners started meanwhile
    t1, idle1, total1, ours1 = _read(excluded)
    cpus = psutil.cpu_count() or 1
    wall = max(t1 - t0, 1e-9)
    # Elapsed time × CPUs, unless the counters' own total is larger (CPUs brought online
    # meanwhile): never a busy time made of idle CPUs that the counters no longer see.
    total = max(wall * cpus, total1 - total0)
    busy = min(total, max(0.0, total - (idle1 - idle0)))
    # A process started meanwhile is counted from 0: all its CPU time fell in the window.
    ours = sum(max(0.0, after - ours0.get(pid, 0.0)) for pid, after in ours1.items())
    ours = min(ours, busy)  # beyond the counters' unit, ours is part of the machine's busy time
    per_proc: list[dict[str, Any]] = []
    for pid, (name, after) in procs1.items():
        if pid in excluded:
            continue
        delta = max(0.0, after - procs0.get(pid, (name, 0.0))[1])
        if delta / wall >= 0.05:
            per_proc.append({"pid": pid, "name": name, "cpu_pct": round(100 * delta / wall, 1)})
    cpu_pct, ours_pct = round(100.0 * busy / total, 1), round(100.0 * ours / total, 1)
    per_proc.sort(key=lambda p: -p["cpu_pct"])
    return Busy(
        other_cpu_pct=round(cpu_pct - ours_pct, 1),  # the two shown shares add up exactly
        cpu_pct=cpu_pct,
        ours_cpu_pct=ours_pct,
        cpus=cpus,
        seconds=round(wall, 2),
        load_avg=load_avg(),
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
