"""The syntax of controlled workloads: token sizes and llama-bench ranges, concurrency levels and
service-level objectives.

A leaf module, so suite validation (``schema``) and the engine (``engine.workload``,
``engine.goodput``) read the same syntax without importing each other.
"""

from __future__ import annotations

import math
import operator
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class WorkloadError(ValueError):
    """A grid, level list or SLO that cannot run; the message names the value."""


# ----------------------------------------------------------------------------------- grids

_RANGE = re.compile(r"^(\d+)-(\d+)(?:([*+])(\d+))?$")


def parse_values(text: str | int | Iterable[Any], flag: str, *, minimum: int) -> list[int]:
    """``64,512,2048`` and llama-bench ranges: ``a-b`` (step 1), ``a-b+step``, ``a-b*mult``.

    Lists (from a suite) may mix numbers and such strings. Duplicates are dropped, order kept.
    """
    if isinstance(text, int):
        parts: list[Any] = [text]
    elif isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
    else:
        parts = list(text)
    values: list[int] = []
    for part in parts:
        if isinstance(part, bool):
            raise WorkloadError(f"{flag} {part!r}: not a number of tokens")
        if isinstance(part, int):
            values.append(part)
            continue
        raw = str(part).strip()
        if raw.isdigit():
            values.append(int(raw))
            continue
        m = _RANGE.match(raw)
        if not m:
            raise WorkloadError(
                f"{flag} {raw!r}: expected a number, a list (64,512) or a range "
                "(a-b, a-b+step, a-b*mult)"
            )
        first, last, op, arg = int(m[1]), int(m[2]), m[3], int(m[4]) if m[4] else 1
        if last < first:
            raise WorkloadError(f"{flag} {raw!r}: the range ends before it starts")
        if op == "*" and (arg < 2 or first < 1):
            raise WorkloadError(f"{flag} {raw!r}: a multiplied range needs a start >= 1, mult >= 2")
        if op != "*" and arg < 1:
            raise WorkloadError(f"{flag} {raw!r}: the step must be >= 1")
        value = first
        while value <= last:
            values.append(value)
            value = value * arg if op == "*" else value + arg
    if not values:
        raise WorkloadError(f"{flag}: no values given")
    for value in values:
        if value < minimum:
            raise WorkloadError(f"{flag} {value}: must be >= {minimum}")
    return list(dict.fromkeys(values))


def parse_levels(text: str | int | Iterable[Any]) -> list[int]:
    """``-c 1,2,4,8`` (or a range): the concurrency levels of a sweep, ascending."""
    levels = parse_values(text, "-c", minimum=1)
    for level in levels:
        if level > 256:
            raise WorkloadError(f"-c {level}: at most 256 simultaneous streams")
    return sorted(levels)


# SLO metric → (figure path in the record, what it is). Rates are "higher is better": use >=.
SLO_METRICS: dict[str, str] = {
    "ttft_s": "timings.ttft_s",
    "ttfc_s": "timings.ttfc_s",
    "e2e_s": "timings.e2e_s",
    "tpot_s": "timings.tpot_s",
    "itl_p50_s": "timings.itl_p50_s",
    "itl_p90_s": "timings.itl_p90_s",
    "itl_p99_s": "timings.itl_p99_s",
    "itl_max_s": "timings.itl_max_s",
    "decode_tok_s": "timings.decode_tok_s",
}
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_SLO = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|<|>)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class Slo:
    metric: str
    op: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    @property
    def path(self) -> str:
        return SLO_METRICS[self.metric]

    def holds(self, value: Any) -> bool:
        """Whether a figure's value meets the objective (a missing value does not)."""
        return isinstance(value, int | float) and _OPS[self.op](value, self.value)


def parse_slo(text: str) -> Slo:
    """``"ttft_s<=0.5"`` → ``Slo``; an unknown metric or a bad form is refused naming the value."""
    m = _SLO.match(text or "")
    if not m:
        raise WorkloadError(
            f"--slo {text!r}: expected METRIC<=VALUE (or <, >=, >), e.g. ttft_s<=0.5"
        )
    metric = m[1].removeprefix("timings.")
    if metric not in SLO_METRICS:
        raise WorkloadError(
            f"--slo {text!r}: unknown metric {m[1]!r}; known: {', '.join(SLO_METRICS)}"
        )
    return Slo(metric, m[2], float(m[3]))


def depth_label(depth: int) -> str:
    return f" @ d{depth}" if depth else ""


@dataclass(frozen=True, slots=True)
class Cell:
    """One grid cell: ``pp`` prompt tokens after ``depth`` tokens of context, ``tg`` asked."""

    pp: int
    tg: int
    depth: int = 0

    @property
    def test(self) -> str:
        """llama-bench's name of the whole run: ``pp512+tg128 @ d4096``."""
        return f"pp{self.pp}+tg{self.tg}{depth_label(self.depth)}"

    @property
    def prompt_id(self) -> str:
        """The id runs of this cell are grouped by (no spaces: it is typed in searches)."""
        return f"pp{self.pp}+tg{self.tg}" + (f"@d{self.depth}" if self.depth else "")

    @property
    def context_needed(self) -> int:
        return self.depth + self.pp + self.tg

    def describe(self, chat: bool = False) -> str:
        ctx = f" after {self.depth} tokens of earlier context" if self.depth else ""
        sent = ("sent as a chat request's user message (the chat template around it)" if chat
                else "sent as raw completion (no chat template)")  # fmt: skip
        return f"[synthetic {self.test}] {self.pp} random-word tokens{ctx}, {sent}; {self.tg} " \
               "tokens asked"  # fmt: skip


def check_api(api: str, cells: Iterable[Cell], prefix_cache: bool) -> str:
    """``--api``: ``completions`` (raw, no template) or ``chat`` (one user message); a chat
    grid sends no earlier context and no second send of a prompt."""
    if api not in ("completions", "chat"):
        raise WorkloadError(f"--api {api}: use chat or completions")
    if api == "chat" and any(c.depth for c in cells):
        raise WorkloadError("--api chat sends one user message: leave out --depth")
    if api == "chat" and prefix_cache:
        raise WorkloadError("--api chat: --prefix-cache is for raw completions only")
    return api


# -- open-loop arrivals (--rate, --arrival; engine.arrivals draws the schedules) ------------

MAX_RATE = 10_000.0  # requests/s: beyond this the schedule itself is a typo


@dataclass(frozen=True, slots=True)
class Arrival:
    """The law of the gaps: ``kind`` is ``constant``, ``poisson`` or ``gamma`` (with ``shape``)."""

    kind: str
    shape: float = 1.0

    @property
    def text(self) -> str:
        return f"gamma:{self.shape:g}" if self.kind == "gamma" else self.kind

    def gaps(self, rate: float, n: int, rng: random.Random) -> list[float]:
        """``n`` gaps (seconds) of mean ``1/rate``."""
        if self.kind == "constant":
            return [1.0 / rate] * n
        if self.kind == "poisson":
            return [rng.expovariate(rate) for _ in range(n)]
        scale = 1.0 / (rate * self.shape)
        return [rng.gammavariate(self.shape, scale) for _ in range(n)]


_GAMMA = re.compile(r"^gamma:([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)$")


def parse_arrival(text: str) -> Arrival:
    """``poisson`` | ``constant`` | ``gamma:SHAPE``; anything else is refused naming the value."""
    raw = (text or "").strip().lower()
    if raw in ("poisson", "constant"):
        return Arrival(raw)
    m = _GAMMA.match(raw)
    if m:
        shape = float(m[1])
        if not 0.01 <= shape <= 1000:
            raise WorkloadError(f"--arrival {text!r}: the gamma shape must be in 0.01..1000")
        return Arrival("poisson") if shape == 1.0 else Arrival("gamma", shape)
    raise WorkloadError(
        f"--arrival {text!r}: expected poisson, constant or gamma:SHAPE (e.g. gamma:0.5)"
    )


def parse_rates(text: str | float | Iterable[Any]) -> list[float]:
    """``--rate 1,2,4,8`` (requests per second, decimals allowed): the levels, ascending."""
    if isinstance(text, str):
        parts: list[Any] = [p.strip() for p in text.split(",") if p.strip()]
    elif isinstance(text, int | float):
        parts = [text]
    else:
        parts = list(text)
    rates: list[float] = []
    for part in parts:
        try:
            value = float(part)
        except (TypeError, ValueError):
            raise WorkloadError(f"--rate {part!r}: not a number of requests per second") from None
        if isinstance(part, bool) or not math.isfinite(value) or value <= 0:
            raise WorkloadError(f"--rate {part!r}: must be a positive number of requests/s")
        if value > MAX_RATE:
            raise WorkloadError(f"--rate {part!r}: at most {MAX_RATE:g} requests/s")
        rates.append(value)
    if not rates:
        raise WorkloadError("--rate: no values given")
    return sorted(dict.fromkeys(rates))
