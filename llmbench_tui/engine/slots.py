"""What the engine schedules: one ``Slot`` per run, its ``Outcome``, and the failure that ends a
model's runs.

Their own module, so the runner and the engine's helpers (conversations) share them without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends.base import BackendError
from ..schema import ModelSpec, PromptSpec, RunRecord
from ..workload_syntax import Cell
from .synthetic_prompts import Built


@dataclass(slots=True)
class Slot:
    """One run to perform."""

    spec: ModelSpec
    prompt: PromptSpec
    repetition: int
    warmup: bool = False
    cold: bool = False
    stream: int = 0
    history: tuple[dict[str, str], ...] = ()  # a conversation turn: the earlier messages
    conversation_id: str | None = None
    turn: int | None = None  # 1-based
    cell: Cell | None = None  # a grid cell: a synthetic prompt instead of ``prompt.text``
    level: int | None = None  # the sweep level this run belongs to
    repeat: bool = False  # prefix-cache mode: the second, cache-reusing run of a prompt
    built: Built | None = None  # the synthetic prompt, built before the round starts
    prep_error: BackendError | None = None
    # Open loop (engine.openloop): when the run should have left, when the cap let it go, when
    # it left (stamped by the runner with the instant TTFT counts from), which worker sent it.
    scheduled_ns: int | None = None
    released_ns: int | None = None
    sent_ns: int | None = None
    worker: int | None = None


@dataclass(slots=True)
class Outcome:
    """A finished run before it is stored: the record, its series, its window in time."""

    record: RunRecord
    series: dict[str, Any] | None = None
    t_send: int | None = None
    t_last: int | None = None
    model_failed: bool = False


class ModelFailed(Exception):
    """A model-level failure (unreachable, not found): skip the model's remaining runs."""
