"""Sending a level's requests on their schedule: the one dispatcher of the open loop, used by the
main process (``engine.openloop``) and by each worker process (``engine.workers``).

It sleeps until each request's instant on the ``now_ns`` clock (``perf_counter_ns``, the system's
CLOCK_MONOTONIC) and starts it whether or not earlier ones have ended; with a cap it first waits
for a free place, and that wait is the cap's (``Slot.released_ns``), not the client's lag.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from ..backends.base import BackendError, now_ns
from ..schema import ModelSpec
from .slots import Slot
from .timing import NS


async def sleep_until(t_ns: int) -> None:
    delay = (t_ns - now_ns()) / NS
    if delay > 0:
        await asyncio.sleep(delay)


async def dispatch(
    measure: Any,
    slots: Sequence[Slot],
    offsets: Sequence[float],
    t0: int,
    cap: int | None,
    cancelled: Any = lambda: False,
) -> list[Any]:
    """Start ``measure(slot)`` for each slot at ``t0 + offset`` (nanoseconds, the monotonic
    ``now_ns`` clock), at most ``cap`` at once; the outcomes in slot order. A slot not started
    because the session was cancelled gets ``None``."""
    places = asyncio.Semaphore(cap) if cap else None
    tasks: list[asyncio.Task | None] = [None] * len(slots)

    async def run(slot: Slot) -> Any:
        try:
            return await measure(slot)
        finally:
            if places is not None:
                places.release()

    for i, (slot, offset) in enumerate(zip(slots, offsets, strict=True)):
        if cancelled():
            break
        slot.scheduled_ns = t0 + round(offset * NS)
        await sleep_until(slot.scheduled_ns)
        slot.released_ns = slot.scheduled_ns
        if places is not None:
            if places.locked():  # every place taken: the cap, not the client, holds it back
                await places.acquire()
                slot.released_ns = now_ns()
            else:
                await places.acquire()
        tasks[i] = asyncio.ensure_future(run(slot))
    started = [t for t in tasks if t is not None]
    if started:
        await asyncio.gather(*started, return_exceptions=False)
    return [t.result() if t is not None else None for t in tasks]


async def warm(pool: Any, spec: ModelSpec) -> None:
    """Build the backend and talk to the server once before ``t0``: the first request of a
    process pays for imports, the HTTP client and its TLS context (hundreds of ms on a busy
    machine), which would otherwise hold up the first scheduled sends."""
    with contextlib.suppress(BackendError, OSError):
        await pool.for_spec(spec).describe(spec)
