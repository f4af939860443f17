"""The open-loop driver: sends each request of a rate level at its scheduled instant.

For every prompt (or grid cell) and every offered rate of ``workload.load`` (``engine.arrivals``)
the level's schedule is drawn, every synthetic prompt is built first (no calibration beside a
measured stream), then a dispatcher sleeps until each offset and starts the request, whether or
not earlier ones have ended. With a cap (``-c N`` beside ``--rate``) the dispatcher first waits
for a free place; that wait is stored apart (``cap_wait_s``) because the cap, not the client's
speed, held the request back.

Every record gets a ``load`` object::

    rate, arrival, seed, index, scheduled_s, released_s, sent_s, lag_s, cap_wait_s, worker,
    client_bound, client_bound_why

``scheduled_s``/``sent_s`` are seconds from the level's start (``t0``); ``lag_s`` = sent −
max(scheduled, released by the cap). The send instant is the one TTFT is measured from
(``Slot.sent_ns``, stamped by the runner). ``client_bound`` comes from ``engine.saturation``
once the whole level has ended; only then are the level's runs scored and stored.

With more than one worker process (``--workers``, ``engine.workers``) the dispatching happens in
the workers; this module then only merges their outcomes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from ..backends.base import now_ns
from ..schema import ModelSpec, PromptSpec
from .dispatch import dispatch, warm
from .saturation import mark_level
from .slots import ModelFailed, Slot
from .timing import NS
from .workload import Cell, Workload, cell_prompt

LEAD_S = 0.05  # the level starts this long after its schedule is ready (tasks, imports warm)
# How many streamed tokens per second one client process takes before its send lag grows; the
# figure of bench/bench_client.py on the 2-core build machine, rounded down (bench/RESULTS.md).
TOKENS_PER_PROCESS_S = 2000.0


def auto_workers(spec: ModelSpec, workload: Workload, max_tokens: int | None) -> int:
    """Worker processes for a load when ``--workers`` is not given: one per
    ``TOKENS_PER_PROCESS_S`` of the highest offered token rate, at most one per CPU; always one
    for the in-process GGUF engine (the model lives in this process) or with a cap."""
    load = workload.load
    assert load is not None
    if spec.backend == "gguf" or load.cap is not None:
        return 1
    per_request = max((c.tg for c in workload.cells), default=max_tokens or 256)
    tokens_s = max(load.rates) * per_request
    return max(1, min(os.cpu_count() or 1, math.ceil(tokens_s / TOKENS_PER_PROCESS_S)))


def open_loop_runs(workload: Workload, n_prompts: int) -> int:
    """Measured runs of an open-loop workload: every level's schedule, every prompt or cell."""
    load = workload.load
    assert load is not None
    per_unit = sum(len(load.schedule(i)) for i in range(len(load.rates)))
    return (len(workload.cells) or n_prompts) * per_unit


def gguf_note(records: Sequence[dict[str, Any]]) -> str | None:
    """What a reader of an open-loop GGUF session must know."""
    if any(r.get("load") and r.get("backend") == "gguf" for r in records):
        return (
            "the in-process GGUF engine runs one request at a time: open-loop requests queue in "
            "this process (--workers does not apply), and their TTFT includes that wait"
        )
    return None


def load_fields(slot: Slot, t0: int, rate: float, index: int, workload: Workload) -> dict:
    """The record's ``load`` object before the level is judged (``client_bound`` comes later)."""
    load = workload.load
    assert load is not None and slot.scheduled_ns is not None
    scheduled = slot.scheduled_ns
    released = slot.released_ns or scheduled
    sent = slot.sent_ns
    due = max(scheduled, released)
    return {
        "rate": rate,
        "arrival": load.arrival.text,
        "seed": load.seed,
        "level_index": index,
        "index": slot.stream,
        "cap": load.cap,
        "scheduled_s": (scheduled - t0) / NS,
        "released_s": (released - t0) / NS,
        "sent_s": None if sent is None else (sent - t0) / NS,
        "lag_s": None if sent is None else max(0, sent - due) / NS,
        "cap_wait_s": max(0, released - scheduled) / NS,
        "worker": slot.worker,
        "client_bound": False,
        "client_bound_why": None,
    }


async def run_open_loop(engine: Any, spec: ModelSpec, workload: Workload) -> None:
    """Every prompt (or cell), every offered rate: one schedule, then the level's runs stored."""
    load = workload.load
    assert load is not None
    units: list[tuple[PromptSpec, Cell | None]] = [(cell_prompt(c), c) for c in workload.cells]
    for prompt, cell in units or [(p, None) for p in engine.plan.prompts]:
        reference: float | None = None  # the lowest rate's TTFT p10 (saturation.judge_client)
        for index, rate in enumerate(load.rates):
            if engine.cancelled:
                return
            offsets = load.schedule(index)
            slots = [Slot(spec, prompt, 0, stream=i, cell=cell) for i in range(len(offsets))]
            await engine.prepare(slots)
            await warm(engine.pool, spec)
            workers = load.workers or auto_workers(spec, workload, engine.plan.options.max_tokens)
            if spec.backend == "gguf":
                workers = 1  # the model lives in this process (gguf_note says so)
            if workers > 1:
                from .workers import run_in_workers

                outcomes = await run_in_workers(engine, slots, offsets, workers)
                t0 = min(s.scheduled_ns for s in slots if s.scheduled_ns is not None)
            else:
                t0 = now_ns() + round(LEAD_S * NS)
                outcomes = await dispatch(
                    engine.run_one, slots, offsets, t0, load.cap, lambda: engine.cancelled
                )
            kept = [(s, o) for s, o in zip(slots, outcomes, strict=True) if o is not None]
            for slot, outcome in kept:
                outcome.record.load = load_fields(slot, t0, rate, index, workload)
            level = mark_level([o.record for _, o in kept], workload.slos, reference)
            if reference is None and level is not None:
                reference = level.ttft_s.get("p10")
            await engine.keep([s for s, _ in kept], [o for _, o in kept])
            failed = [o.record for _, o in kept if o.model_failed]
            if failed:
                raise ModelFailed(failed[0].error)
