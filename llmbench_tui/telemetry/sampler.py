"""The one background sampler: CPU, memory, the serving processes and every NVIDIA GPU.

One thread per process samples on a fixed grid (default every 0.25 s) into a ring buffer that
holds about ten minutes. Runs slice their window out of it (``window``); the dashboard's meters
read ``latest`` / ``history`` while idle. Everything blocking — psutil's ``/proc`` reads, NVML's
driver calls, RAPL's sysfs reads — happens on this thread, never on the event loop.

Each sample's percentages are averages over the interval that *ends* at the sample's instant
(they are counter deltas), which is why a run's window is the samples inside ``[t0, t1]`` plus,
for a run shorter than one interval, one extra sample taken right after ``t1`` (see
``sample_after``). Energy needs the readings on both sides of each edge of the run, so ``span``
also returns the last sample at or before ``t0`` and the first at or after ``t1``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

from .efficiency import Rapl, is_local_host
from .nvml import MIB, GpuReading, Nvml

log = logging.getLogger(__name__)

RING_SECONDS = 600.0
PROCESS_REFRESH_S = 2.0
# While other processes use this share of the machine or more, the busiest of them are named
# (a walk over every process, at most every OTHERS_WALK_S: only when there is something to name).
OTHERS_NAMED_FROM_PCT = 10.0
OTHERS_WALK_S = 2.0
OTHERS_NAMED = 10  # at most, each using 5 % of a core or more: the record's other_processes


@dataclass(frozen=True, slots=True)
class Sample:
    """One instant of machine state; ``t_ns`` is ``time.perf_counter_ns()``.

    ``t_ns`` is the midpoint of the energy-counter reads (RAPL, then NVML's energy counters, read
    back to back), since a run's energy is interpolated between samples by this instant; the
    other values are read just before (psutil) or after (the rest of NVML) it.

    ``proc_*`` are summed over the watched processes (``None`` when none is watched or readable);
    ``proc_cpu_pct`` is in "percent of one core" and so can exceed 100.

    ``other_cpu_pct`` is the share of the whole machine (0-100) that processes other than the
    serving ones and this one used over the interval: the system's busy CPU time minus theirs.
    ``None`` on a tick where some watched process had only just been found (its CPU time for
    the interval is unknown, so the rest cannot be told from it).
    """

    t_ns: int
    cpu_pct: float
    per_core_pct: tuple[float, ...]
    cpu_freq_mhz: float | None
    ram_used_mb: float
    ram_available_mb: float
    swap_used_mb: float
    proc_cpu_pct: float | None = None
    proc_rss_mb: float | None = None
    procs: int = 0
    rapl_uj: tuple[int | None, ...] | None = None
    gpus: tuple[GpuReading, ...] = ()
    other_cpu_pct: float | None = None


@dataclass(frozen=True, slots=True)
class ProcessTarget:
    """Which processes serve the model: ``self`` (in-process engine), ``port`` (the process
    listening on that local port, and its children), ``ollama`` (the process listening on
    Ollama's port, else ``ollama serve`` found by name, and its runner children), ``pid`` or
    ``name`` (a server named with ``--server-pid``, and its children), or ``none``. A server
    that runs llmbench itself (``_runs_us``) counts without its children."""

    kind: str = "none"
    value: str | int | None = None

    @classmethod
    def for_backend(cls, backend_kind: str, host: str | None, server: str | None) -> ProcessTarget:
        """The target for a backend; ``server`` is ``LLMBENCH_SERVER_PID`` or the option (a PID or
        a process name) and wins for any server backend. A server on this machine is the process
        listening on the URL's port; a remote server has no local process."""
        if backend_kind == "gguf":
            return cls("self")
        if server:
            server = server.strip()
            return cls("pid", int(server)) if server.isdigit() else cls("name", server)
        if backend_kind == "ollama" and not host:
            return cls("ollama")
        port = local_port(host)
        if port is None:
            return cls("none")
        return cls("ollama" if backend_kind == "ollama" else "port", port)


def _own_addresses() -> set[str]:
    """This machine's addresses (every interface's), for a URL that names one of them."""
    try:
        return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    except (OSError, psutil.Error):
        return set()


def local_port(host: str | None) -> int | None:
    """The TCP port of a server URL on this machine (loopback, or one of its own addresses);
    ``None`` for a remote host or a URL without a host."""
    if not host:
        return None
    try:
        parts = urlsplit(host if "//" in host else f"//{host}")
        name, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if not (is_local_host(host) or name in _own_addresses() or name == socket.gethostname()):
        return None
    return port or (443 if parts.scheme == "https" else 80)


def listener(port: int) -> psutil.Process | None:
    """The process listening on TCP ``port`` of this machine, ``None`` when none is seen.

    ``psutil.net_connections`` maps sockets to processes through ``/proc/*/fd``: without the
    rights to read another user's process (or on macOS, without root at all) it answers
    ``AccessDenied`` or no PID, and then each readable process is asked for its own sockets.
    """
    def listening(conn: Any) -> bool:
        return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and conn.laddr.port == port

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if listening(conn) and conn.pid:
                return psutil.Process(conn.pid)
    except (psutil.AccessDenied, psutil.NoSuchProcess, PermissionError):
        pass
    for proc in psutil.process_iter():
        try:
            if any(listening(c) for c in proc.net_connections(kind="tcp")):
                return proc
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return None


def cpu_busy(times: Any) -> tuple[float, float]:
    """(busy, total) seconds of one ``scputimes``; guest time is already inside user/nice."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


@dataclass(slots=True)
class _Procs:
    """The watched processes, kept as the *same* ``psutil.Process`` objects between ticks so that
    ``cpu_percent()`` measures the interval since the previous tick."""

    target: ProcessTarget = field(default_factory=ProcessTarget)
    procs: dict[int, psutil.Process] = field(default_factory=dict)
    root: psutil.Process | None = None
    found_by: str | None = None
    refreshed_ns: int = 0

    def retarget(self, target: ProcessTarget) -> None:
        if target != self.target:
            self.target, self.procs, self.root, self.refreshed_ns = target, {}, None, 0

    def refresh(self, now_ns: int) -> set[int]:
        """Re-find the processes at most every ``PROCESS_REFRESH_S`` (runners come and go).

        Returns the PIDs added now: they were just primed, so their CPU % counts from next tick.
        """
        if now_ns - self.refreshed_ns < PROCESS_REFRESH_S * 1e9 and self.refreshed_ns:
            return set()
        self.refreshed_ns = now_ns
        found = self._find()
        added = set()
        for proc in found:
            if proc.pid not in self.procs:
                try:
                    proc.cpu_percent(None)  # prime: the first call always answers 0.0
                except psutil.Error:
                    continue
                self.procs[proc.pid] = proc
                added.add(proc.pid)
        alive = {p.pid for p in found}
        for pid in [pid for pid in self.procs if pid not in alive]:
            del self.procs[pid]
        return added

    def _find(self) -> list[psutil.Process]:
        kind, value = self.target.kind, self.target.value
        if kind == "none":
            return []
        if kind == "self":
            return [self.procs.get(psutil.Process().pid) or psutil.Process()]
        if self.root is None or not self.root.is_running():
            self.root, self.found_by = self._find_root(kind, value)
        if self.root is None:
            return []
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            self.root = None
            return []
        if _runs_us(self.root):
            children = []
        return [self.procs.get(p.pid, p) for p in (self.root, *children)]

    @staticmethod
    def _find_root(kind: str, value: str | int | None) -> tuple[psutil.Process | None, str | None]:
        """The serving process and how it was found (``found_by``, as the record says it)."""
        if kind == "pid":
            try:
                return psutil.Process(int(value or 0)), "--server-pid"
            except (psutil.Error, ValueError):
                return None, None
        if kind in ("port", "ollama") and isinstance(value, int):
            proc = listener(value)
            if proc is not None:
                return proc, f"listening port {value}"
            if kind == "port":
                return None, None
        for proc in psutil.process_iter(["name", "cmdline"]):
            name = (proc.info.get("name") or "").lower()
            cmdline = proc.info.get("cmdline") or []
            # "serve" anywhere in the arguments: ``ollama serve``, or a wrapper script's
            # ``/bin/sh /usr/bin/ollama serve``; runners are found as its children
            if kind == "ollama" and name.startswith("ollama") and "serve" in cmdline[1:]:
                return proc, "ollama serve, by name"
            if kind == "name" and name == str(value).lower():
                return proc, "--server-pid"
        return None, None

    def describe(self) -> dict[str, Any] | None:
        """The serving process as the record names it: ``{pid, name, found_by, children}``
        (``children``: e.g. Ollama's runners, each ``{pid, name}``); ``None`` when none."""
        if self.target.kind == "self":
            return {"pid": psutil.Process().pid, "name": "llmbench (in-process model)",
                    "found_by": "in-process", "children": []}  # fmt: skip
        root = self.root
        if root is None:
            return None
        children = []
        for pid, proc in list(self.procs.items()):
            if pid != root.pid:
                with contextlib.suppress(psutil.Error):
                    children.append({"pid": pid, "name": proc.name()})
        try:
            name = root.name()
        except psutil.Error:
            name = "?"
        return {"pid": root.pid, "name": name, "found_by": self.found_by, "children": children}

    def read(self, just_primed: set[int]) -> tuple[float | None, float | None, int]:
        """(CPU % summed, RSS MiB summed, count) over the readable watched processes.

        CPU % is ``None`` until at least one process has a full interval behind its reading.
        """
        cpu, rss, count, _ = self.read_all(just_primed)
        return cpu, rss, count

    def read_all(self, just_primed: set[int]) -> tuple[float | None, float | None, int, bool]:
        """``read`` and whether every counted process had a full interval behind its CPU %."""
        cpu = rss = 0.0
        count = timed = 0
        for pid, proc in list(self.procs.items()):
            try:
                with proc.oneshot():
                    if pid not in just_primed:
                        cpu += proc.cpu_percent(None)
                        timed += 1
                    rss += proc.memory_info().rss / MIB
                count += 1
            except psutil.Error:  # vanished, zombie or forbidden: skip, never fatal
                del self.procs[pid]
        if not count:
            return None, None, 0, True
        return (cpu if timed else None), rss, count, timed == count


def _runs_us(proc: psutil.Process) -> bool:
    """Whether ``proc`` is this process or one of its ancestors: a server inside the process
    that runs llmbench (a test runner serving a protocol in-process) is no dedicated server, so
    its other children (the runner's CPU burners, llmbench itself) are not its load."""
    me = psutil.Process()
    try:
        return proc.pid == me.pid or proc.pid in {p.pid for p in me.parents()}
    except psutil.Error:
        return False


def serving_pids(target: ProcessTarget) -> set[int]:
    """The PIDs serving a target right now (``ollama serve`` and its runners, a named server,
    this process for in-process models); blocking ``/proc`` reads, empty when none is found."""
    try:
        return {p.pid for p in _Procs(target)._find()}
    except psutil.Error:
        return set()


class Sampler:
    """A daemon thread sampling every ``interval_s`` into a thread-safe ring buffer."""

    def __init__(
        self, interval_s: float = 0.25, *, nvml: Nvml | None = None, rapl: Rapl | None = None
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the sample interval must be positive")
        self.interval_s = interval_s
        self._interval_ns = int(interval_s * 1e9)
        self._nvml = nvml or Nvml()
        self._rapl = rapl if rapl is not None else Rapl()
        self._ring: deque[Sample] = deque(maxlen=math.ceil(RING_SECONDS / interval_s) + 1)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._procs = _Procs()
        self._pending_target: ProcessTarget | None = None
        self._prev_times: list[Any] | None = None
        self._thread: threading.Thread | None = None
        self._failed_once = False
        self._me: psutil.Process | None = None
        self._walked: tuple[int, dict[int, tuple[str, float]]] | None = None  # (t_ns, CPU s)
        self._others: tuple[int, list[dict[str, Any]]] | None = None  # (t_ns, busiest others)

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="llmbench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def watch(self, target: ProcessTarget) -> None:
        """Choose the serving processes; resolved on the sampler thread (cheap to call).

        A new target wakes the thread at once so its processes are primed before the run's
        first tick.
        """
        with self._cond:
            if target == self._procs.target and self._pending_target is None:
                return
            self._pending_target = target
        self._wake.set()

    # -- reads (any thread) ----------------------------------------------------------------
    def server_process(self) -> dict[str, Any] | None:
        """The watched serving process as last resolved (``_Procs.describe``)."""
        try:
            return self._procs.describe()
        except psutil.Error:
            return None

    def busiest_others(self, since_ns: int) -> list[dict[str, Any]]:
        """The busiest processes other than the serving ones and this one, as last named at or
        after ``since_ns`` (each ``{pid, name, cpu_pct}``, "% of one core"); empty when the
        machine was not busy with others then."""
        others = self._others
        return list(others[1]) if others is not None and others[0] >= since_ns else []

    def latest(self) -> Sample | None:
        with self._cond:
            return self._ring[-1] if self._ring else None

    def history(self, seconds: float) -> list[Sample]:
        """The samples of the last ``seconds`` (oldest first)."""
        since = time.perf_counter_ns() - int(seconds * 1e9)
        with self._cond:
            return [s for s in self._ring if s.t_ns >= since]

    def window(self, t0_ns: int, t1_ns: int) -> list[Sample]:
        """The samples taken in ``[t0_ns, t1_ns]``."""
        with self._cond:
            return [s for s in self._ring if t0_ns <= s.t_ns <= t1_ns]

    def at_or_before(self, t_ns: int) -> Sample | None:
        """The last sample taken at or before ``t_ns``."""
        with self._cond:
            prior = [s for s in self._ring if s.t_ns <= t_ns]
        return prior[-1] if prior else None

    def span(self, t0_ns: int, t1_ns: int) -> list[Sample]:
        """The samples that cover ``[t0_ns, t1_ns]``, oldest first: the last one at or before
        ``t0_ns`` (if the ring still holds one), every one inside, and the first at or after
        ``t1_ns`` — taken now by ``sample_after`` when the run has only just ended.

        May block for one sample; call it off the event loop.
        """
        start, after = self.at_or_before(t0_ns), self.sample_after(t1_ns)
        found = {s.t_ns: s for s in (start, *self.window(t0_ns, t1_ns), after) if s is not None}
        return [found[t] for t in sorted(found)]

    def sample_after(self, t_ns: int, timeout_s: float | None = None) -> Sample | None:
        """The first sample taken at or after ``t_ns``: from the ring when there is one, else
        wake the thread for an immediate sample and wait for it (``None`` if the thread is not
        running or the wait times out).

        Blocks for about one ``/proc`` round trip; call it off the event loop.
        """
        if timeout_s is None:
            timeout_s = max(1.0, 2 * self.interval_s)
        with self._cond:
            if self._ring and self._ring[-1].t_ns >= t_ns:
                return next(s for s in self._ring if s.t_ns >= t_ns)
        if not (self._thread and self._thread.is_alive()):
            return None
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not (self._ring and self._ring[-1].t_ns >= t_ns):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return next(s for s in self._ring if s.t_ns >= t_ns)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        self._nvml.open()
        self._prev_times = psutil.cpu_times(percpu=True)  # prime: discard the meaningless 0.0
        try:
            self._me = psutil.Process()
            self._me.cpu_percent(None)  # prime, like the watched processes
        except psutil.Error:
            self._me = None
        next_ns = time.perf_counter_ns() + self._interval_ns
        while not self._stop.is_set():
            woke = self._wake.wait(max(0.0, (next_ns - time.perf_counter_ns()) / 1e9))
            if self._stop.is_set():
                break
            self._wake.clear()
            self._tick()
            if not woke:
                now = time.perf_counter_ns()
                next_ns += self._interval_ns
                if next_ns <= now:  # fell behind (suspended, starved): skip, never burst
                    next_ns += ((now - next_ns) // self._interval_ns + 1) * self._interval_ns
        self._nvml.close()

    def _tick(self) -> None:
        try:
            sample = self._take()
        except Exception as exc:  # one bad tick must not end telemetry for the session
            if not self._failed_once:
                log.warning("telemetry sample failed: %s", exc)
                self._failed_once = True
            return
        with self._cond:
            self._ring.append(sample)
            self._cond.notify_all()

    def _take(self) -> Sample:
        with self._cond:
            target, self._pending_target = self._pending_target, None
        if target is not None:
            self._procs.retarget(target)
        now = time.perf_counter_ns()
        just_primed = self._procs.refresh(now)
        times = psutil.cpu_times(percpu=True)
        per_core = []
        busy_sum = total_sum = 0.0
        for prev, cur in zip(self._prev_times or times, times, strict=False):
            (b0, t0), (b1, t1) = cpu_busy(prev), cpu_busy(cur)
            busy, total = max(0.0, b1 - b0), max(0.0, t1 - t0)
            per_core.append(min(100.0, 100.0 * busy / total) if total else 0.0)
            busy_sum, total_sum = busy_sum + busy, total_sum + total
        self._prev_times = times
        proc_cpu, proc_rss, nprocs, all_timed = self._procs.read_all(just_primed)
        other = self._other_cpu(busy_sum, total_sum, len(per_core), proc_cpu, all_timed)
        self._name_others(now, other)
        vm, sw = psutil.virtual_memory(), psutil.swap_memory()
        freq = _cpu_freq()
        before = time.perf_counter_ns()
        rapl = self._rapl.read() if self._rapl.readable else None
        gpu_energy = self._nvml.read_energy()
        t_ns = (before + time.perf_counter_ns()) // 2
        return Sample(
            t_ns=t_ns,
            cpu_pct=min(100.0, 100.0 * busy_sum / total_sum) if total_sum else 0.0,
            per_core_pct=tuple(per_core),
            cpu_freq_mhz=freq,
            ram_used_mb=(vm.total - vm.available) / MIB,
            ram_available_mb=vm.available / MIB,
            swap_used_mb=sw.used / MIB,
            proc_cpu_pct=proc_cpu,
            proc_rss_mb=proc_rss,
            procs=nprocs,
            rapl_uj=rapl,
            gpus=tuple(self._nvml.read(gpu_energy)),
            other_cpu_pct=other,
        )

    def _name_others(self, now_ns: int, other_pct: float | None) -> None:
        """Every ``OTHERS_WALK_S`` while others use ``OTHERS_NAMED_FROM_PCT`` of the machine or
        more: each process's CPU time, and the busiest others since the previous walk."""
        if other_pct is None or other_pct < OTHERS_NAMED_FROM_PCT:
            self._walked = None  # quiet: the next busy spell starts a fresh pair of walks
            return
        if self._walked is not None and now_ns - self._walked[0] < OTHERS_WALK_S * 1e9:
            return
        times: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            cpu = proc.info.get("cpu_times")
            if cpu is not None:
                times[proc.pid] = (proc.info.get("name") or "?", cpu.user + cpu.system)
        before, self._walked = self._walked, (now_ns, times)
        if before is None:
            return
        ours = set(self._procs.procs) | ({self._me.pid} if self._me is not None else set())
        wall = (now_ns - before[0]) / 1e9
        shares = sorted(
            ((round(100 * (cpu - before[1].get(pid, (name, 0.0))[1]) / wall, 1), pid, name)
             for pid, (name, cpu) in times.items() if pid not in ours),
            reverse=True,
        )  # fmt: skip
        self._others = (now_ns, [{"pid": pid, "name": name, "cpu_pct": pct}
                                 for pct, pid, name in shares[:OTHERS_NAMED] if pct >= 5.0])

    def _other_cpu(
        self, busy: float, total: float, ncpu: int, proc_cpu: float | None, all_timed: bool
    ) -> float | None:
        """The machine's busy share minus the serving processes' and this process's own.

        Process CPU % is in "% of one core" over the same interval (psutil's delta since the
        previous tick), so it is divided by the CPU count to be a share of the machine. This
        process is subtracted once even when it is the watched one (in-process models). Child
        processes of ours are *not* ours: a compiler or a test's CPU burner started from here
        competes like any other.
        """
        if not total or not ncpu or not all_timed:
            return None
        ours = proc_cpu or 0.0
        me = self._me
        if me is not None and me.pid not in self._procs.procs:
            try:
                ours += me.cpu_percent(None)
            except psutil.Error:
                return None
        other = 100.0 * busy / total - ours / ncpu
        return round(min(100.0, max(0.0, other)), 2)


def _cpu_freq() -> float | None:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):
        return None
    return float(freq.current) if freq and freq.current else None
