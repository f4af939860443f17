"""Client-side figures of one run, exactly as README Metrics defines them.

Everything here is a pure function of instants taken with ``perf_counter_ns`` (by the backend, at
chunk arrival), so the formulas can be tested with scripted instants and cannot be disturbed by
the engine's scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..schema import Timings

NS = 1e9


@dataclass(slots=True)
class Arrivals:
    """What a run received, chunk by chunk: kept by the engine while a stream runs.

    ``content_t`` is the first chunk with answer text (``t_first_content``); ``n_tokens`` holds the
    backend's per-chunk token counts, or ``None`` for a chunk whose count the backend did not say.
    """

    t_send: int
    times: list[int] = field(default_factory=list)
    n_tokens: list[int | None] = field(default_factory=list)
    content_t: int | None = None
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)

    def add(self, t_ns: int, text: str, thinking: str, n_tokens: int | None) -> None:
        self.times.append(t_ns)
        self.n_tokens.append(n_tokens)
        if text:
            self.text.append(text)
            if self.content_t is None:
                self.content_t = t_ns
        if thinking:
            self.thinking.append(thinking)

    @property
    def response(self) -> str:
        return "".join(self.text)

    def since_send_s(self, t_ns: int) -> float:
        """Seconds from ``t_send`` to the instant ``t_ns``."""
        return (t_ns - self.t_send) / NS

    @property
    def ttft_s(self) -> float | None:
        """``t_first − t_send``: the one TTFT formula (live events and the stored record)."""
        return self.since_send_s(self.times[0]) if self.times else None

    def offsets_s(self) -> list[float]:
        """Arrival instants as seconds after ``t_send`` (for tokens-vs-time charts)."""
        return [round((t - self.t_send) / NS, 6) for t in self.times]


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def inter_token_gaps(
    times: list[int], n_tokens: list[int | None]
) -> tuple[list[float], Literal["token", "chunk"]]:
    """Gaps ``t_i − t_{i−1}`` for i ≥ 1 (TTFT excluded), in seconds, and their unit.

    When the backend said how many tokens every chunk holds, a chunk's gap is divided evenly over
    its tokens ("token" unit); otherwise the gaps are per chunk ("chunk" unit).
    """
    per_token = all(n is not None and n >= 1 for n in n_tokens[1:])
    gaps: list[float] = []
    for i in range(1, len(times)):
        gap = (times[i] - times[i - 1]) / NS
        if per_token:
            n = n_tokens[i] or 1
            gaps.extend([gap / n] * n)
        else:
            gaps.append(gap)
    return gaps, ("token" if per_token else "chunk")


def client_timings(arrivals: Arrivals, t_last: int, output_tokens: int | None) -> Timings:
    """All client figures of one run (README Metrics "Client figures")."""
    a = arrivals
    timings = Timings(chunks=len(a.times))
    response = a.response
    timings.output_chars = len(response)
    e2e = (t_last - a.t_send) / NS
    timings.e2e_s = e2e
    if e2e > 0:
        timings.bytes_per_s = len(response.encode("utf-8")) / e2e
    if not a.times:
        return timings
    t_first = a.times[0]
    timings.ttft_s = a.ttft_s
    if a.content_t is not None:
        timings.ttfc_s = a.since_send_s(a.content_t)
    gaps, unit = inter_token_gaps(a.times, a.n_tokens)
    if gaps:
        ordered = sorted(gaps)
        timings.itl_p50_s = percentile(ordered, 50)
        timings.itl_p90_s = percentile(ordered, 90)
        timings.itl_p99_s = percentile(ordered, 99)
        timings.itl_max_s = ordered[-1]
        timings.itl_unit = unit
    span = (t_last - t_first) / NS
    if output_tokens is not None and output_tokens >= 2 and span > 0:
        timings.tpot_s = span / (output_tokens - 1)
        timings.decode_tok_s = (output_tokens - 1) / span
    return timings
