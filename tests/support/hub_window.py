"""A telemetry hub measured over a window the way the engine measures a run: started, left to
take its first samples, then the window's edges taken around the work (here, a sleep)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmbench_tui.telemetry.telemetry import TelemetryHub


@contextmanager
def running(hub: TelemetryHub) -> Iterator[TelemetryHub]:
    """``hub`` sampling for the ``with`` block, stopped however the block ends."""
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def measure_window(
    hub: TelemetryHub, *, settle_s: float, length_s: float
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """After ``settle_s`` (the first samples), ``length_s`` of sleep: the hub's summary and
    series over exactly that window, and its length in seconds."""
    time.sleep(settle_s)
    t0 = time.perf_counter_ns()
    time.sleep(length_s)
    t1 = time.perf_counter_ns()
    summary, series = hub.run_window(t0, t1)
    return summary, series, (t1 - t0) / 1e9
