"""Reading one run's stream: the engine's hot loop (``Engine.run_one`` calls it).

Kept apart from the engine so the loop that touches every chunk can be read on its own: one
pass per chunk, arrival times stamped by the backend, TTFT and stall deadlines enforced here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..backends.base import BackendError, BackendTimeout, ContextReady, FinalChunk, TextChunk
from .events import ChunkReceived, Event
from .timing import NS, Arrivals


async def consume(
    stream: Any,
    arrivals: Arrivals,
    run_id: str,
    *,
    ttft: float | None,
    stall: float | None,
    emit: Callable[[Event], None],
    primed: dict[str, Any] | None = None,
) -> FinalChunk | None:
    """The hot loop: one pass per chunk, with TTFT and stall deadlines enforced here.

    A ``ContextReady`` (raw prompts with earlier context) moves ``t_send`` to the instant the
    context was in place and restarts the TTFT deadline; the priming time goes in ``primed``.
    """
    loop = asyncio.get_running_loop()
    final: FinalChunk | None = None
    add = arrivals.add
    try:
        async with asyncio.timeout_at(loop.time() + ttft if ttft else None) as deadline:
            async for item in stream:
                if type(item) is TextChunk:
                    if not (item.text or item.thinking):
                        continue
                    add(item.t_ns, item.text, item.thinking, item.n_tokens)
                    deadline.reschedule(loop.time() + stall if stall else None)
                    emit(
                        ChunkReceived(
                            run_id=run_id,
                            text=item.text,
                            thinking=item.thinking,
                            t_ns=item.t_ns,
                            elapsed_s=arrivals.since_send_s(item.t_ns),
                            chunks=len(arrivals.times),
                            ttft_s=arrivals.ttft_s,
                        )
                    )
                elif type(item) is ContextReady:
                    if primed is not None:
                        primed["context_prime_s"] = (item.t_ns - arrivals.t_send) / NS
                        primed["context_tokens"] = item.context_tokens
                    arrivals.t_send = item.t_ns
                    deadline.reschedule(loop.time() + ttft if ttft else None)
                else:
                    final = item
    except TimeoutError:
        if not deadline.expired():  # raised inside the backend, not our deadline
            raise BackendError("the backend timed out (its own limit)") from None
        if arrivals.times:
            raise BackendTimeout(
                f"no new chunk for {stall:g} s after {len(arrivals.times)} chunks "
                "(stall timeout)"
            ) from None
        raise BackendTimeout(f"no first token within {ttft:g} s (TTFT timeout)") from None
    finally:
        await stream.aclose()
    if final is None:
        raise BackendError("the stream ended without its final chunk")
    return final
