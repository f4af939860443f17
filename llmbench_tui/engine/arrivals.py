"""Open-loop arrival schedules: when each request of a rate level should leave.

A closed loop (``-c 4``) sends a new request only when one ends, so a slow server slows its own
load down and queueing never shows. An **open loop** sends on a schedule fixed in advance:

- ``constant``: one request every ``1/R`` seconds;
- ``poisson``: exponential gaps of mean ``1/R`` (a Poisson process, coefficient of variation 1);
- ``gamma:SHAPE``: gamma-distributed gaps of mean ``1/R`` and shape ``k`` — the burstiness of
  vLLM's ``benchmark_serving --burstiness``: the gaps' coefficient of variation is ``1/sqrt(k)``,
  so ``k < 1`` is burstier than Poisson, ``k > 1`` smoother, ``k = 1`` is Poisson.

The first request leaves at offset 0; each next one a drawn gap later. A level lasts ``duration``
seconds (requests whose offset falls before it) or ``requests`` requests. Every level's gaps come
from ``random.Random`` seeded with ``(seed, level index)``, so a stored seed replays the exact
schedule of every level.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..workload_syntax import Arrival, WorkloadError, parse_arrival, parse_rates

MAX_REQUESTS = 100_000  # per level


@dataclass(slots=True)
class LoadSpec:
    """An open-loop workload: offered rates, the arrival law, how long each level lasts, the cap
    on requests in flight (``None``: none), the schedule seed and the worker processes."""

    rates: list[float]
    arrival: Arrival = field(default_factory=lambda: Arrival("poisson"))
    duration_s: float | None = None
    requests: int | None = None
    cap: int | None = None
    seed: int = 0
    workers: int | None = None  # None: chosen from the load (engine.openloop.auto_workers)

    def __post_init__(self) -> None:
        if (self.duration_s is None) == (self.requests is None):
            raise WorkloadError("--rate needs exactly one of --duration S or --requests N")
        if self.duration_s is not None and not 0 < self.duration_s <= 86_400:
            raise WorkloadError(f"--duration {self.duration_s:g}: must be in (0, 86400] seconds")
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise WorkloadError(f"--requests {self.requests}: must be in 1..{MAX_REQUESTS}")
        if self.cap is not None and self.cap < 1:
            raise WorkloadError(f"-c {self.cap}: the cap on requests in flight must be >= 1")
        if self.workers is not None and not 1 <= self.workers <= 64:
            raise WorkloadError(f"--workers {self.workers}: must be in 1..64")
        if self.cap is not None and (self.workers or 1) > 1:
            raise WorkloadError(
                f"-c {self.cap} with --workers {self.workers}: the cap on requests in flight "
                "holds in one process only; use --workers 1"
            )
        for rate in self.rates:
            n = self.requests or rate * (self.duration_s or 0)
            if n > MAX_REQUESTS:
                raise WorkloadError(
                    f"--rate {rate:g}: {n:.0f} requests in one level, at most {MAX_REQUESTS}"
                )

    @property
    def sweep(self) -> bool:
        return len(self.rates) > 1

    def schedule(self, index: int) -> list[float]:
        """The send offsets (seconds from the level's start) of level ``index``."""
        return schedule(
            self.rates[index],
            self.arrival,
            random.Random(f"{self.seed}:{index}"),
            duration_s=self.duration_s,
            requests=self.requests,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "rates": self.rates,
            "arrival": self.arrival.text,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "cap": self.cap,
            "seed": self.seed,
            "workers": self.workers,
        }


def schedule(
    rate: float,
    arrival: Arrival,
    rng: random.Random,
    *,
    duration_s: float | None = None,
    requests: int | None = None,
) -> list[float]:
    """Offsets of the sends: 0, then cumulative gaps; ``requests`` of them, or every one before
    ``duration_s``."""
    if requests is not None:
        gaps = arrival.gaps(rate, requests - 1, rng)
        offsets = [0.0]
        for gap in gaps:
            offsets.append(offsets[-1] + gap)
        return offsets
    assert duration_s is not None
    offsets, t = [], 0.0
    while t < duration_s and len(offsets) < MAX_REQUESTS:
        offsets.append(t)
        t += arrival.gaps(rate, 1, rng)[0]
    return offsets


def build_load(
    rate: Any,
    *,
    arrival: str | None = None,
    duration: float | None = None,
    requests: int | None = None,
    cap: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
) -> LoadSpec:
    """A ``LoadSpec`` from flag/suite values; a fresh random seed when none is given (it is
    stored with the session's plan, so the schedule can still be replayed)."""
    return LoadSpec(
        rates=parse_rates(rate),
        arrival=parse_arrival(arrival or "poisson"),
        duration_s=float(duration) if duration is not None else None,
        requests=int(requests) if requests is not None else None,
        cap=cap,
        seed=seed if seed is not None else random.SystemRandom().randrange(2**31),
        workers=workers,
    )


def load_from(ws: Any, given: dict[str, Any], levels: list[int], capped: bool) -> LoadSpec | None:
    """The open-loop load from the command line (``given``) over a suite's ``[workload]``
    (``ws``: its ``rate``, ``arrival``, ...); ``None`` without a rate. ``levels``: the ``-c``
    values, then the cap on requests in flight (one value, ``capped`` when one was given)."""
    names = ("rate", "arrival", "duration", "requests", "seed", "workers")
    values = {n: given.get(n) if given.get(n) is not None else getattr(ws, n, None) for n in names}
    if values["rate"] is None:
        flag = {"seed": "--arrival-seed"}
        extra = [flag.get(n, f"--{n}") for n in names[1:] if given.get(n) is not None]
        if extra:
            raise WorkloadError(f"{', '.join(extra)}: only with an open-loop --rate")
        return None
    if len(levels) > 1:
        raise WorkloadError(
            "-c with --rate is the cap on requests in flight: give one number, not a list"
        )
    if given.get("duration") is not None and values["requests"] is not None:
        values["requests"] = None if given.get("requests") is None else values["requests"]
    if given.get("requests") is not None and values["duration"] is not None:
        values["duration"] = None if given.get("duration") is None else values["duration"]
    return build_load(
        values["rate"],
        arrival=values["arrival"],
        duration=values["duration"],
        requests=values["requests"],
        cap=levels[0] if capped else None,
        seed=values["seed"],
        workers=values["workers"],
    )
