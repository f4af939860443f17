"""Typed events the engine publishes; the dashboard and ``--batch`` are two consumers of them.

Events are delivered synchronously, on the event loop, to the ``on_event`` callback given to the
engine. A consumer must return quickly (buffer, post a message) — the engine calls it once per
chunk.

Every event is built with keyword arguments only (``kw_only=True``): ``RunStarted`` has ten
fields, two of them adjacent booleans, and a positional call could swap them silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..schema import RunRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted:
    session_id: str
    total_runs: int
    models: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """A run was handed to its backend. ``model`` is the spec label; ``index`` counts from 1."""

    run_id: str
    session_id: str
    model: str
    prompt_id: str
    repetition: int
    warmup: bool
    cold: bool
    stream: int
    index: int
    total_runs: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkReceived:
    """Text arrived for a run; ``t_ns`` is the backend's arrival instant (perf_counter_ns)."""

    run_id: str
    text: str
    thinking: str
    t_ns: int
    elapsed_s: float
    chunks: int
    ttft_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    """A run ended (any status); the record has already been stored when this is published."""

    record: RunRecord
    index: int
    total_runs: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunJudged:
    """A judge graded a stored run after the measured runs (``engine.judge_runs``): ``record``
    carries the new ``quality`` (already stored); ``index`` counts judged runs from 1."""

    record: RunRecord
    index: int
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFinished:
    session_id: str
    records: list[RunRecord]
    cancelled: bool
    stored: bool
    groups: list = field(default_factory=list)  # list[engine.stats.GroupSummary]


Event = SessionStarted | RunStarted | ChunkReceived | RunFinished | RunJudged | SessionFinished
