"""Open-loop requests spread over worker processes, so one event loop is not the bottleneck.

One Python process reads a few thousand streamed chunks per second before its timers start
firing late (``bench/bench_client.py``); past that the *client* decides when requests leave.
With ``--workers N`` (or ``engine.openloop.auto_workers``) a level's requests are dealt round-
robin to N processes (started with ``spawn``: no copy of this process's event loop or threads).
Each worker builds its own backends, says it is ready, waits for the common start instant
``t0`` and dispatches its share of the schedule exactly as the single-process driver does
(``openloop.dispatch``).

**One clock.** Instants are ``time.perf_counter_ns`` (``backends.base.now_ns``), which on Linux
is ``clock_gettime(CLOCK_MONOTONIC)``: one clock for the whole system, so ``t0`` set here means
the same instant in every worker and the send times they stamp compare directly
(``tests/test_openloop_workers.py`` checks the clock is the system-wide one).

**One writer.** Workers never touch the store: each finished run goes back through a queue as
its record (JSON) and series, and this process scores and stores the level as usual.

**A worker that dies** (killed, out of memory, a crash) is noticed when its process ends without
saying it finished; every request it was given whose result did not come back becomes a failed
run naming the worker and how it ended. Nothing else is lost: the other workers' runs and the
dead worker's runs that had already come back are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue as queue_mod
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.base import now_ns
from ..schema import RunRecord
from .dispatch import dispatch, warm
from .slots import Slot
from .timing import NS

READY_TIMEOUT_S = 120.0  # a busy machine takes seconds to start a Python process
START_LEAD_S = 0.2  # t0 is this long after the last worker said it is ready
POLL_S = 0.2


@dataclass(slots=True)
class RemoteOutcome:
    """A run measured in a worker, as ``Engine.keep`` and the driver read it."""

    record: RunRecord
    series: dict[str, Any] | None = None
    model_failed: bool = False


def deal(n: int, workers: int) -> list[list[int]]:
    """Request indices per worker, round-robin: each worker gets every ``workers``-th request,
    so all of them stay busy through the whole level."""
    return [list(range(w, n, workers)) for w in range(workers)]


def how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def worker_main(
    engine_cls: Any,
    wid: int,
    plan: Any,
    session_id: str,
    slots: list[Slot],
    offsets: list[float],
    go: Any,
    start: Any,
    out: Any,
) -> None:
    """A worker process: warm its backends, say ready, wait for ``t0``, dispatch, report.
    ``engine_cls`` is the runner's ``Engine``, passed in (pickled by name) rather than imported:
    the runner is what starts the open loop that starts the workers."""
    engine = engine_cls(plan)
    engine.session_id = session_id

    async def measure(slot: Slot) -> None:
        slot.worker = wid
        outcome = await engine.run_one(slot)
        times = (slot.scheduled_ns, slot.released_ns, slot.sent_ns)
        out.put(("run", wid, (slot.stream, outcome.record.to_json(), outcome.series,
                              outcome.model_failed, times)))  # fmt: skip

    async def main() -> None:
        try:
            for spec in plan.models:  # imports, HTTP client, first connection: before t0
                await warm(engine.pool, spec)
            out.put(("ready", wid, None))
            await asyncio.to_thread(go.wait)
            await dispatch(measure, slots, offsets, int(start.value), None)
        finally:
            await engine.pool.aclose()

    asyncio.run(main())
    out.put(("done", wid, None))


def _collect(
    procs: list[Any], out: Any, go: Any, start: Any, cancelled: Any
) -> tuple[dict[int, tuple], dict[int, str]]:
    """Runs by request index, and the workers that died (with how), reading until every worker
    said done or ended. Sets ``t0`` once every worker is ready."""
    ready: set[int] = set()
    done: set[int] = set()
    dead: dict[int, str] = {}
    runs: dict[int, tuple] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S

    def handle(msg: tuple) -> None:
        kind, wid, body = msg
        if kind == "ready":
            ready.add(wid)
        elif kind == "run":
            runs[body[0]] = body
        elif kind == "done":
            done.add(wid)

    while len(done | set(dead)) < len(procs):
        with contextlib.suppress(queue_mod.Empty):
            handle(out.get(timeout=POLL_S))
        if not go.is_set() and len(ready | set(dead)) == len(procs):
            start.value = now_ns() + round(START_LEAD_S * NS)
            go.set()
        if not go.is_set() and time.monotonic() > deadline:
            for wid, proc in enumerate(procs):
                if wid not in ready:
                    proc.kill()
        if cancelled():
            for proc in procs:
                proc.terminate()
        for wid, proc in enumerate(procs):
            if wid in done or wid in dead or proc.is_alive():
                continue
            while True:  # what it sent before it ended is still in the pipe
                try:
                    handle(out.get(timeout=POLL_S))
                except queue_mod.Empty:
                    break
            if wid not in done:
                dead[wid] = how_it_ended(proc.exitcode)
    return runs, dead


async def run_in_workers(
    engine: Any, slots: Sequence[Slot], offsets: Sequence[float], workers: int
) -> list[Any]:
    """Measure the level's slots in ``workers`` processes; outcomes in slot order (a request a
    dead worker took with it is a failed run; one never started after a cancel is ``None``)."""
    ctx = multiprocessing.get_context("spawn")
    out, go, start = ctx.Queue(), ctx.Event(), ctx.Value("q", 0)
    shares = deal(len(slots), workers)
    procs = []
    for wid, share in enumerate(shares):
        proc = ctx.Process(
            target=worker_main,
            args=(type(engine), wid, engine.worker_plan(), engine.session_id,
                  [slots[i] for i in share], [offsets[i] for i in share], go, start, out),
            name=f"llmbench-worker-{wid}",
            daemon=True,
        )  # fmt: skip
        proc.start()
        procs.append(proc)
    try:
        runs, dead = await asyncio.to_thread(
            _collect, procs, out, go, start, lambda: engine.cancelled
        )
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    t0 = int(start.value)
    outcomes: list[Any] = []
    for i, slot in enumerate(slots):
        wid = i % workers
        slot.worker = wid
        if i in runs:
            _, record, series, failed, (scheduled, released, sent) = runs[i]
            slot.scheduled_ns, slot.released_ns, slot.sent_ns = scheduled, released, sent
            outcomes.append(RemoteOutcome(RunRecord.model_validate(record), series, failed))
        elif wid in dead and not engine.cancelled:
            slot.scheduled_ns = t0 + round(offsets[i] * NS)
            message = (f"worker process {wid} died ({dead[wid]}) before this request's result "
                       "came back: counted as a failed run")  # fmt: skip
            outcomes.append(RemoteOutcome(engine.failed_record(slot, message)))
        else:
            outcomes.append(None)
    return outcomes
