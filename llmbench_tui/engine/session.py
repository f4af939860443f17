"""The engine's seams, typed: what it writes to, what it measures with, and the surface its
helpers use.

``Engine`` (``engine.runner``) is one ``EngineSession``; the helpers that run parts of a
session (``engine.conversation``: turns in order; ``engine.judge_runs``: the judge after the
measured runs) take an ``EngineSession`` and use only the methods below, never the engine's
private parts. ``RunSink`` is what the engine needs of a store (``store.Store`` is one) and
``TelemetrySource`` what it needs of a telemetry hub (``telemetry.TelemetryHub`` is one): the
engine imports neither, so a store on another database or a hub with other sensors fits as
long as it has these methods.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..schema import Efficiency, ModelSpec, RunRecord
from .events import Event
from .slots import Outcome, Slot

if TYPE_CHECKING:
    from ..backends import BackendPool
    from ..backends.base import Backend
    from .plan import Plan


class RunSink(Protocol):
    """Where sessions and runs are written. Each call is durable when it returns; the engine
    calls them on a worker thread and logs a failure instead of failing the run."""

    def add_session(self, session: dict[str, Any]) -> None: ...

    def add_run(self, record: dict[str, Any], series: dict[str, Any] | None = None) -> None: ...

    def update_quality(self, run_id: str, quality: dict[str, Any] | None) -> Any: ...


class TelemetrySource(Protocol):
    """The machine's side of each run: the session's environment, the window of samples a run
    spanned, and the efficiency figures derived from them."""

    data_dir: Path | None

    async def session_environment(
        self, pool: BackendPool, specs: list[ModelSpec]
    ) -> dict[str, Any]: ...

    def watch(self, spec: ModelSpec, backend: Backend) -> None: ...

    def run_window(self, t0_ns: int, t1_ns: int) -> tuple[dict[str, Any], dict[str, Any]]: ...

    def derive(
        self, record: RunRecord, env: dict[str, Any] | None
    ) -> tuple[Efficiency, list[str]]: ...


class EngineSession(Protocol):
    """What a helper may do with the running session: read the plan, the backends and the
    records so far; run rounds and single runs; finish (store and publish) a record; publish an
    event; save a re-graded quality block; register a task that ``cancel()`` must stop."""

    @property
    def plan(self) -> Plan: ...

    @property
    def pool(self) -> BackendPool: ...

    @property
    def telemetry(self) -> TelemetrySource | None: ...

    @property
    def records(self) -> list[RunRecord]: ...

    @property
    def streams(self) -> set[asyncio.Future[Any]]: ...

    @property
    def cancelled(self) -> bool: ...

    async def unload(self, slot: Slot) -> bool: ...

    async def run_round(self, slots: list[Slot]) -> None: ...

    async def run_one(self, slot: Slot) -> Outcome: ...

    async def finish(self, rec: RunRecord, series: dict[str, Any] | None) -> None: ...

    def error_record(self, slot: Slot, exc: BaseException) -> RunRecord: ...

    def emit(self, event: Event) -> None: ...

    async def save_quality(self, run_id: str, quality: dict[str, Any]) -> None: ...
