"""The engine: turns a plan into runs, measures each, stores each, publishes events.

It knows nothing of any front end. The dashboard and ``--batch`` both construct an ``Engine``
and follow its events, so a figure can never differ between them.

Order of work for each model (models run one after another, so they never compete for the same
CPU/GPU and distort each other's figures):

1. cold runs, each preceded by an unload (stored with ``cold: true``, their own statistics group);
2. warm-up runs (stored with ``warmup: true``, excluded from statistics);
3. for every prompt, ``repetitions`` measured rounds of ``concurrency`` simultaneous streams;
4. conversations (``engine.conversation``): for every repetition, each conversation's turns in
   order, one stream at a time, each turn sent with the history so far.

Once every model is done, a judge grades the answers that ask for it (``engine.judge_runs``).

A round's successful answers are scored against their prompt's checks (``quality``) once all of
its streams have ended, then its runs are stored.
   with a workload (``engine.workload``: a size grid, a concurrency sweep, LocalScore), for every
   grid cell and every level, ``repetitions`` rounds of ``level`` streams instead, each sending a
   synthetic prompt built (and calibrated) before the round starts.

A model whose backend cannot be reached or which does not exist fails once, is stored once as an
error run with the backend's sentence, and its remaining runs are skipped; the other models go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..backends import BackendPool
from ..backends.base import (
    BackendError,
    BackendTimeout,
    ModelNotFound,
    Unreachable,
    now_ns,
)
from ..fit.check import FitCheck
from ..quality import score_answer
from ..schema import ModelSpec, Options, PromptSpec, RunRecord, Tokens
from .conversation import run_conversations, warm_up
from .events import Event, RunFinished, RunStarted, SessionFinished, SessionStarted
from .judge_runs import judge_session
from .plan import Plan
from .session import RunSink, TelemetrySource
from .slots import ModelFailed, Outcome, Slot
from .stats import summarize
from .streaming import consume
from .synthetic_prompts import PromptBuilder
from .timing import NS, Arrivals, client_timings
from .workload import Cell, Workload, cell_prompt, record_fields

log = logging.getLogger(__name__)


class Engine:
    """Runs one plan. Create a new ``Engine`` per session."""

    def __init__(
        self,
        plan: Plan,
        *,
        pool: BackendPool | None = None,
        store: RunSink | None = None,
        telemetry: TelemetrySource | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.plan = plan
        self.pool = pool or BackendPool()
        self._own_pool = pool is None
        self.store = store
        self.telemetry = telemetry
        self.on_event = on_event or (lambda _event: None)
        self.session_id = uuid.uuid4().hex
        self.records: list[RunRecord] = []
        self.streams: set[asyncio.Future[Any]] = set()  # what cancel() stops
        self._cancelled = False
        self._index = 0
        self._stored = True
        self._env: dict[str, Any] = {}
        self._prompts = PromptBuilder()
        self._fit_check = FitCheck(getattr(telemetry, "data_dir", None))

    # ----------------------------------------------------------------- control

    def cancel(self) -> None:
        """Stop: running streams end as ``cancelled`` with their partial output; nothing new
        starts. Runs already finished are kept."""
        self._cancelled = True
        for task in list(self.streams):
            task.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    # ----------------------------------------------------------------- session

    async def run(self) -> SessionFinished:
        plan = self.plan
        total = plan.total_runs()
        self.emit(SessionStarted(
                session_id=self.session_id,
                total_runs=total,
                models=[m.label for m in plan.models],
            ))
        try:
            await self._start_session()
            for spec in plan.models:
                if self._cancelled:
                    break
                before = self._index
                try:
                    await self._run_model(spec)
                except ModelFailed:
                    # The model's remaining runs are skipped: count them as done for progress.
                    self._index = before + plan.runs_per_model()
            if not self._cancelled:
                await judge_session(self)  # after every measured run: never beside one
        finally:
            if self._own_pool:
                await self.pool.aclose()
        finished = SessionFinished(
            session_id=self.session_id,
            records=list(self.records),
            cancelled=self._cancelled,
            stored=self._stored,
            groups=summarize(self.records),
        )
        self.emit(finished)
        return finished

    def emit(self, event: Event) -> None:
        """Publish to the consumer; its bugs (a closed pipe under ``| head``, a widget error)
        must never turn into a failed run."""
        try:
            self.on_event(event)
        except Exception:
            log.exception("the event consumer failed on %s", type(event).__name__)

    async def _start_session(self) -> None:
        env: dict[str, Any] = {}
        if self.telemetry is not None:
            try:
                env = await self.telemetry.session_environment(self.pool, self.plan.models)
            except Exception as exc:  # a broken probe must not stop a benchmark
                log.warning("environment snapshot failed: %s", exc)
                env = {"error": str(exc)}
        self._env = env
        session = {
            "id": self.session_id,
            "started_at": _utc_now(),
            "plan": self.plan.describe(),
            "environment": env,
        }
        await self._store_call("add_session", session)

    async def _run_model(self, spec: ModelSpec) -> None:
        plan = self.plan
        if not plan.prompts:  # conversations only: cold and warm-up runs send the first turn
            await warm_up(self, spec)
            await run_conversations(self, spec)
            return
        first = plan.prompts[0]
        cell = plan.workload.cells[0] if plan.workload and plan.workload.cells else None
        if cell is not None:
            first = cell_prompt(cell)
        for i in range(plan.cold):
            if self._cancelled:
                return
            prompt = first if cell else plan.prompts[i % len(plan.prompts)]
            slot = Slot(spec, prompt, i, cold=True, cell=cell)
            if await self.unload(slot):
                await self.run_round([slot])
        for i in range(plan.warmup):
            if self._cancelled:
                return
            await self.run_round([Slot(spec, first, i, warmup=True, cell=cell)])
        if plan.workload is not None and plan.workload.load is not None:
            from .openloop import run_open_loop

            await run_open_loop(self, spec, plan.workload)
            return
        if plan.workload is not None:
            await self._run_workload(spec, plan.workload)
            return
        for prompt in plan.prompts:
            for rep in range(plan.repetitions):
                if self._cancelled:
                    return
                slots = [Slot(spec, prompt, rep, stream=s) for s in range(plan.concurrency)]
                await self.run_round(slots)
        await run_conversations(self, spec)

    async def _run_workload(self, spec: ModelSpec, workload: Workload) -> None:
        """Every cell (or, for a sweep without a grid, every prompt), every level,
        ``repetitions`` rounds of ``level`` streams; in prefix-cache mode each round is a prompt
        sent twice (the second run reuses the cache on purpose)."""
        units: list[tuple[PromptSpec, Cell | None]] = [(cell_prompt(c), c) for c in workload.cells]
        for prompt, cell in units or [(p, None) for p in self.plan.prompts]:
            for level in workload.levels:
                for rep in range(self.plan.repetitions):
                    if self._cancelled:
                        return
                    slots = [
                        Slot(spec, prompt, rep, stream=s, cell=cell, level=level)
                        for s in range(level)
                    ]
                    await self.run_round(slots)
                    if workload.prefix_cache and cell is not None and not self._cancelled:
                        repeat = cell_prompt(cell, repeat=True)
                        again = Slot(spec, repeat, rep, cell=cell, level=level, repeat=True)
                        again.built = slots[0].built
                        await self.run_round([again])

    # -- used by the open-loop driver (engine.openloop), which schedules runs itself

    async def keep(self, slots: list[Slot], outcomes: list[Outcome]) -> None:
        """Score and store runs measured with ``run_one``."""
        await self._score(slots, outcomes)
        for o in outcomes:
            await self.finish(o.record, o.series)

    def failed_record(self, slot: Slot, message: str) -> RunRecord:
        """An error run for ``slot`` that never reported back (a dead worker process)."""
        return self.error_record(slot, BackendError(message))

    def worker_plan(self) -> Plan:
        """What a worker process needs of the plan to measure runs (``engine.workers``): no
        judge, no conversations (both happen here, after the measured runs)."""
        return dataclasses.replace(self.plan, judge=None, conversations=[])

    async def prepare(self, slots: list[Slot]) -> None:
        """Build the round's synthetic prompts (calibrating if need be) before any stream starts,
        so no probe runs beside a measured stream."""
        for slot in slots:
            if slot.cell is None or self._cancelled:
                continue
            try:
                backend = self.pool.for_spec(slot.spec)
                options = self._options_for(slot.prompt, slot.cell)
                slot.built = await self._prompts.build(
                    backend,
                    slot.spec,
                    slot.cell,
                    options,
                    repeat_of=slot.built if slot.repeat else None,
                )
                if self.plan.workload and self.plan.workload.prefix_cache and not slot.repeat:
                    slot.built.meta["cache_role"] = "first"
                if self.plan.workload and self.plan.workload.api == "chat":
                    slot.built.raw.chat = True  # the user message of a chat request
                    slot.prompt = cell_prompt(slot.cell, chat=True)
            except BackendError as exc:
                slot.prep_error = exc
            except ValueError as exc:  # WorkloadError: no count to calibrate on
                slot.prep_error = BackendError(f"cannot build the {slot.cell.test} prompt: {exc}")

    async def unload(self, slot: Slot) -> bool:
        """Unload before a cold run. When the backend cannot (OpenAI-compatible servers have
        no unload), the cold run is stored as an error with that sentence and not run at all:
        running it would store a warm run marked cold."""
        try:
            await self.pool.for_spec(slot.spec).unload(slot.spec)
        except BackendError as exc:
            await self.finish(self.error_record(slot, exc), None)
            if isinstance(exc, Unreachable | ModelNotFound):
                raise ModelFailed from exc
            return False
        return True

    async def run_round(self, slots: list[Slot]) -> None:
        """Run the slots' streams at once; every measured round (one stream included) records
        its aggregate throughput: output tokens over the round's wall time, first request sent
        to last token received (docs/metrics-throughput.md)."""
        await self.prepare(slots)
        outcomes = await asyncio.gather(*(self.run_one(s) for s in slots))
        if not (slots[0].warmup or slots[0].cold):
            ok = [o.record for o in outcomes if o.record.status == "ok"]
            starts = [o.t_send for o in outcomes if o.t_send is not None]
            ends = [o.t_last for o in outcomes if o.t_last is not None]
            agg = None
            if ok and starts and ends and max(ends) > min(starts):
                agg = sum(r.tokens.output or 0 for r in ok) / ((max(ends) - min(starts)) / NS)
            span = (max(ends) - min(starts)) / NS if starts and ends else None
            for o in outcomes:
                o.record.concurrent = {
                    "streams": len(slots),
                    "aggregate_tok_s": agg,
                    "round_s": span,
                    "round": slots[0].repetition,
                }
        await self._score(slots, outcomes)
        for o in outcomes:
            await self.finish(o.record, o.series)
        failed = [o.record for o in outcomes if o.model_failed]
        if failed:
            raise ModelFailed(failed[0].error)

    async def _score(self, slots: list[Slot], outcomes: list[Outcome]) -> None:
        """Answer quality, once every stream of the round has ended (a scorer never shares the
        machine with a measured stream): each successful run's answer against its prompt's
        checks, on a worker thread (``tsc`` and the code sandbox take seconds). Failed, timed
        out and cancelled runs keep ``quality=None``; a scorer failure never loses the run."""
        for slot, outcome in zip(slots, outcomes, strict=True):
            rec = outcome.record
            if rec.status != "ok" or not slot.prompt.checks:
                continue
            try:
                rec.quality = await asyncio.to_thread(
                    score_answer,
                    rec.response,
                    slot.prompt.checks,
                    allow_code_exec=self.plan.allow_code_exec,
                )
            except Exception:
                log.exception("scoring run %s failed", rec.id)

    async def finish(self, rec: RunRecord, series: dict[str, Any] | None) -> None:
        self._index += 1
        await self._store_call("add_run", rec.to_json(), series)
        self.records.append(rec)
        self.emit(RunFinished(record=rec, index=self._index, total_runs=self.plan.total_runs()))

    async def _store_call(self, method: str, *args: Any) -> None:
        """Store writes run on a thread (they fsync); a failure is logged, never fatal: the
        records stay in memory and ``--batch`` can still write them to files."""
        if self.store is None:
            return
        try:
            await asyncio.shield(asyncio.to_thread(getattr(self.store, method), *args))
        except Exception as exc:
            self._stored = False
            log.error("could not store %s: %s", method, exc)

    async def save_quality(self, run_id: str, quality: dict[str, Any]) -> None:
        """A run's quality block graded after it was stored (the judge), written like every
        store call."""
        await self._store_call("update_quality", run_id, quality)

    # ----------------------------------------------------------------- one run

    async def run_one(self, slot: Slot) -> Outcome:
        plan = self.plan
        run_id = uuid.uuid4().hex
        spec, prompt = slot.spec, slot.prompt
        self.emit(
            RunStarted(
                run_id=run_id,
                session_id=self.session_id,
                model=spec.label,
                prompt_id=prompt.id,
                repetition=slot.repetition,
                warmup=slot.warmup,
                cold=slot.cold,
                stream=slot.stream,
                index=self._index + 1,
                total_runs=plan.total_runs(),
            )
        )
        options = self._options_for(prompt, slot.cell)
        started_at = _utc_now()
        try:
            backend = self.pool.for_spec(spec)
            effective = backend.effective_options(spec, options)
            if slot.cell is not None:
                effective["prompt_format"] = (
                    "chat, the model's chat template (pp counts the user message)"
                    if slot.built is not None and slot.built.raw.chat
                    else "raw completion, no chat template"
                )
            if slot.prep_error is not None:
                raise slot.prep_error
        except BackendError as exc:
            rec = self.error_record(slot, exc, run_id=run_id, started_at=started_at)
            failed = slot.prep_error is None or isinstance(exc, Unreachable | ModelNotFound)
            return Outcome(rec, model_failed=failed)
        if self.telemetry is not None:
            self.telemetry.watch(spec, backend)

        t_send = slot.sent_ns = now_ns()
        arrivals = Arrivals(t_send)
        primed: dict[str, Any] = {}
        if slot.built is not None:
            stream = backend.stream_raw(spec, slot.built.raw, options)
        else:
            stream = backend.stream(spec, prompt.text, options, history=slot.history)
        task = asyncio.ensure_future(consume(
            stream, arrivals, run_id, ttft=plan.ttft_timeout_s, stall=plan.stall_timeout_s,
            emit=self.emit, primed=primed,
        ))  # fmt: skip
        self.streams.add(task)
        status, error, final = "ok", None, None
        model_failed = False
        try:
            final = await task
        except asyncio.CancelledError:
            if not task.cancelled():  # we ourselves are being cancelled: stop the stream too
                task.cancel()
                raise
            status, error = "cancelled", "cancelled by the user"
        except BackendTimeout as exc:
            status, error = "timeout", str(exc)
        except BackendError as exc:
            status, error = "error", str(exc)
            model_failed = isinstance(exc, Unreachable | ModelNotFound)
        except Exception as exc:  # a backend bug must not take the session down
            log.exception("unexpected failure in %s", spec.label)
            status, error = "error", f"unexpected error from the {spec.backend} backend: {exc!r}"
        finally:
            self.streams.discard(task)
        t_last = final.t_ns if final else (arrivals.times[-1] if arrivals.times else now_ns())

        if final is not None and final.output_tokens is not None:
            tokens = Tokens(prompt=final.prompt_tokens, output=final.output_tokens, source="server")
        else:
            tokens = Tokens(
                prompt=final.prompt_tokens if final else None,
                output=len(arrivals.times),
                source="client",
            )
        rec = self._record(
            slot,
            run_id,
            started_at,
            host=backend.host,
            options=effective,
            system=options.system,
            status=status,
            error=error,
            response=arrivals.response,
            thinking="".join(arrivals.thinking) or None,
            tokens=tokens,
            timings=client_timings(arrivals, t_last, tokens.output),
            server=final.server if final else None,
        )
        if final is not None and final.done_reason:
            rec.done_reason = final.done_reason
        if slot.cell is not None and slot.built is not None:
            workload = self.plan.workload
            rec.workload = record_fields(
                slot.cell,
                slot.built,
                backend_kind=backend.kind,
                grid=f"{self.session_id[:12]}-{workload.grid_id if workload else ''}",
                prompt_reported=final.prompt_tokens if final else None,
                output_tokens=tokens.output if status == "ok" else None,
                cached_tokens=final.cached_tokens if final else None,
                context_prime_s=primed.get("context_prime_s"),
                localscore=bool(workload and workload.localscore),
            )
        if self.plan.workload is not None and self.plan.workload.slos:
            from .goodput import judge

            rec.slo = judge(rec.to_json(), self.plan.workload.slos)
        t_send = arrivals.t_send  # moved past the primed context, if there was one
        series: dict[str, Any] = {"arrivals_s": arrivals.offsets_s()}
        if self.telemetry is not None:
            await self._add_telemetry(self.telemetry, rec, series, spec, t_send, t_last)
        if status == "ok":
            rec.fit = await self._fit_check.check(rec, spec, backend)
        return Outcome(rec, series, t_send, t_last, model_failed)

    async def _add_telemetry(
        self,
        telemetry: TelemetrySource,
        rec: RunRecord,
        series: dict[str, Any],
        spec: ModelSpec,
        t0: int,
        t1: int,
    ) -> None:
        try:
            # Off the loop: a run shorter than one interval waits for the sampler's next tick.
            summary, tseries = await asyncio.to_thread(telemetry.run_window, t0, t1)
            rec.telemetry = summary
            if tseries:
                series["telemetry"] = tseries
            models = self._env.get("models") or {}
            rec.environment = {"session_id": self.session_id, "model": models.get(spec.label)}
            efficiency, warnings = telemetry.derive(rec, self._env)
            rec.efficiency = efficiency
            if warnings:
                rec.warnings = warnings
        except Exception as exc:  # telemetry must never lose a run
            log.warning("telemetry for run %s failed: %s", rec.id, exc)

    def _options_for(self, prompt: PromptSpec, cell: Cell | None = None) -> Options:
        """The plan's options with the prompt's own system prompt, if it has one; a grid cell
        asks for its ``tg`` tokens."""
        options = self.plan.options
        if cell is not None:
            options = options.merged(Options(max_tokens=cell.tg))
        if prompt.system is None:
            return options
        return options.merged(Options(system=prompt.system))

    def _record(self, slot: Slot, run_id: str, started_at: str, **fields: Any) -> RunRecord:
        """The one place a run record is built, so error runs land in the same statistics group
        (host, options, concurrency) as the model's successful runs."""
        spec, prompt = slot.spec, slot.prompt
        rec = RunRecord(
            id=run_id,
            session_id=self.session_id,
            started_at=started_at,
            model=_model_name(spec),
            model_spec=spec.label,
            backend=spec.backend,
            prompt_id=prompt.id,
            prompt=prompt.text,
            repetition=slot.repetition,
            warmup=slot.warmup,
            cold=slot.cold,
            concurrency=(slot.level or self.plan.concurrency)
            if not (slot.warmup or slot.cold)
            else 1,
            tags=sorted({*self.plan.tags, *prompt.tags}),
            **fields,
        )
        if slot.turn is not None:  # a conversation turn: one stream at a time
            rec.conversation_id, rec.turn, rec.concurrency = slot.conversation_id, slot.turn, 1
        return rec

    def error_record(
        self,
        slot: Slot,
        exc: BaseException,
        *,
        run_id: str | None = None,
        started_at: str | None = None,
    ) -> RunRecord:
        options = self._options_for(slot.prompt, slot.cell)
        host, effective = slot.spec.host, options.model_dump(exclude_none=True)
        # As much context as the backend can still give (it may be the thing that failed).
        with contextlib.suppress(BackendError):
            backend = self.pool.for_spec(slot.spec)
            host = backend.host
            effective = backend.effective_options(slot.spec, options)
        return self._record(
            slot,
            run_id or uuid.uuid4().hex,
            started_at or _utc_now(),
            host=host,
            options=effective,
            system=options.system,
            status="timeout" if isinstance(exc, BackendTimeout) else "error",
            error=str(exc),
        )


def _model_name(spec: ModelSpec) -> str:
    """The name people search for: the Ollama/OpenAI model name, or a GGUF file's stem."""
    if spec.backend != "gguf":
        return spec.name
    if spec.embedded:
        try:
            from ..backends.embedded import embedded_model_path

            return embedded_model_path().stem
        except Exception:
            return "embedded"
    return Path(spec.name).stem


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
