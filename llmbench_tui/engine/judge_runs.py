"""The judging step: a judge model grades stored answers, after the measured runs.

Judge calls are not benchmark runs. They are made through the session's ``BackendPool``, one at a
time, only once every measured run of the session has ended (``Engine.run`` calls
``judge_session`` after the last model), so a judge never streams beside a measured run on the
same machine and a judge model left loaded never sits in memory while another model is measured.
Their verdicts are stored inside the graded run (``quality.judge``, see ``quality.verdicts``),
they never become run records and never enter speed statistics.

Which answers are graded: successful, non-warm-up runs whose prompt (or conversation turn) has a
``judge`` check, and — when a session judge is configured (``--judge SPEC`` or ``judge = ...``
in the suite) — every other successful run too, against ``--rubric FILE`` or the default rubric.
A judge check with no judge (none configured, no ``judge`` on the check) stays *not run* with
that reason. The judge of a check is its own ``judge`` spec, else the session's.

Each verdict is asked at temperature 0 with a fixed seed (``JUDGE_SEED``) and at most
``JUDGE_MAX_TOKENS`` tokens; repeats differ only by the prompt's random fence, so on a
deterministic backend they often agree — a spread of 0 says the judge is consistent, not right.
``llmbench judge`` (``commands/judge.py``) runs the same grading on stored runs after the fact.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import BackendPool
from ..backends.base import BackendError, Message, TextChunk
from ..quality.checks import JudgeCheck
from ..quality.judge_prompt import (
    Rubric,
    apply_judgement,
    build_prompt,
    check_result,
    judge_checks,
    make_judgement,
    parse_verdict,
    rubric_for,
)
from ..quality.results import Quality
from ..quality.verdicts import Judgement, Verdict
from ..schema import ModelSpec, Options

if TYPE_CHECKING:
    from .session import EngineSession

log = logging.getLogger(__name__)

JUDGE_SEED = 42
JUDGE_MAX_TOKENS = 256
JUDGE_TIMEOUT_S = 600.0
DEFAULT_CHECK_NAME = "judge"
_CHARS_PER_TOKEN = 3  # a conservative estimate, to size the judge's context window


@dataclass
class JudgeConfig:
    """The session's judge: ``spec`` (``None``: only checks with their own ``judge`` are
    graded), verdicts per answer, the rubric for answers with no judge check (``None``: the
    default), and the call settings."""

    spec: ModelSpec | None = None
    repeats: int = 1
    rubric: Rubric | None = None
    seed: int = JUDGE_SEED
    max_tokens: int = JUDGE_MAX_TOKENS
    timeout_s: float = JUDGE_TIMEOUT_S
    cache_dir: Path | None = None  # where the GGUF file-hash cache lives (the data dir)

    def describe(self) -> dict[str, Any]:
        """As stored with the session's plan."""
        return {
            "spec": self.spec.label if self.spec else None,
            "repeats": self.repeats,
            "rubric_source": self.rubric.source if self.rubric else "default",
            "rubric_sha256": self.rubric.sha256 if self.rubric else None,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }


def judge_config(suite: Any) -> JudgeConfig | None:
    """The session judge a suite asks for (``judge``, ``judge_repeats``); ``None`` when it asks
    for none (judge checks with their own ``judge`` are still graded)."""
    spec = getattr(suite, "judge", None)
    repeats = getattr(suite, "judge_repeats", 1)
    if spec is None and repeats == 1:
        return None
    return JudgeConfig(spec=ModelSpec.parse(spec) if spec else None, repeats=repeats)


@dataclass
class Job:
    """One answer to grade."""

    run_id: str
    task: str
    answer: str
    check: JudgeCheck | None = None  # None: graded because a session judge is configured
    context: list[Message] = field(default_factory=list)
    quality: Quality | dict[str, Any] | None = None


@dataclass
class Graded:
    """A job's outcome: the run's new quality block and the judgement inside it."""

    run_id: str
    quality: Quality
    judgement: Judgement


def conversation_context(
    record: dict[str, Any], records: Sequence[dict[str, Any]]
) -> list[Message]:
    """The earlier turns of ``record``'s conversation (same session, model, conversation and
    repetition), as the model was sent them: user prompt, then its answer."""
    turn = record.get("turn")
    if not record.get("conversation_id") or not isinstance(turn, int):
        return []
    same = ("session_id", "model_spec", "conversation_id", "repetition")
    earlier = sorted(
        (
            r
            for r in records
            if all(r.get(k) == record.get(k) for k in same)
            and isinstance(r.get("turn"), int)
            and r["turn"] < turn
            and r.get("status") == "ok"
        ),
        key=lambda r: r["turn"],
    )
    messages: list[Message] = []
    for r in earlier:
        messages.append({"role": "user", "content": str(r.get("prompt") or "")})
        messages.append({"role": "assistant", "content": str(r.get("response") or "")})
    return messages


def make_jobs(
    records: Sequence[dict[str, Any]],
    checks_of: Callable[[dict[str, Any]], Sequence[Any]],
    config: JudgeConfig,
) -> list[Job]:
    """The jobs for ``records`` (JSON form): successful, non-warm-up runs with a gradable judge
    check, or any such run when ``config.spec`` is set."""
    jobs = []
    for rec in records:
        if rec.get("status") != "ok" or rec.get("warmup"):
            continue
        found = judge_checks(checks_of(rec))
        check = found[0] if found else None
        if config.spec is None and (check is None or check.judge is None):
            continue
        jobs.append(
            Job(
                run_id=str(rec["id"]),
                task=str(rec.get("prompt") or ""),
                answer=str(rec.get("response") or ""),
                check=check,
                context=conversation_context(rec, records),
                quality=rec.get("quality"),
            )
        )
    return jobs


class Grader:
    """Asks a judge model for verdicts; one instance per session (it caches judge identity)."""

    def __init__(self, pool: BackendPool, config: JudgeConfig) -> None:
        self.pool = pool
        self.config = config
        self._identity: dict[str, dict[str, Any]] = {}
        self._used: dict[str, ModelSpec] = {}

    async def release(self) -> None:
        """Unload every judge model used (best effort): a judge left in memory would sit beside
        the next model measured. OpenAI-compatible servers cannot unload; that is ignored."""
        for spec in self._used.values():
            try:
                await asyncio.wait_for(self.pool.for_spec(spec).unload(spec), 60)
            except (BackendError, TimeoutError) as exc:
                log.info("could not unload the judge %s: %s", spec.label, exc)
        self._used.clear()

    def spec_for(self, check: JudgeCheck | None) -> ModelSpec | None:
        if check is not None and check.judge is not None:
            return ModelSpec.parse(check.judge)
        return self.config.spec

    def options(self, prompt: str) -> Options:
        """Temperature 0, the fixed seed, a bounded reply; a context window large enough for
        the prompt when it is longer than a small default (Ollama would silently cut it)."""
        need = len(prompt) // _CHARS_PER_TOKEN + self.config.max_tokens
        num_ctx = None if need <= 2048 else -(-int(need * 1.2) // 1024) * 1024
        return Options(
            temperature=0.0, seed=self.config.seed, max_tokens=self.config.max_tokens,
            num_ctx=num_ctx,
        )

    async def identity(self, spec: ModelSpec) -> dict[str, Any]:
        """Name, host, Ollama digest or GGUF file SHA-256 of the judge (cached per spec)."""
        if spec.label not in self._identity:
            from ..telemetry.environment import describe_model

            try:
                backend = self.pool.for_spec(spec)
                info = await describe_model(spec, backend, self.config.cache_dir)
            except Exception as exc:  # identity is a record of who judged, never a blocker
                info = {"error": str(exc)}
            self._identity[spec.label] = info
        return self._identity[spec.label]

    async def verdict(self, spec: ModelSpec, prompt: str) -> Verdict:
        """One call: the judge's reply, parsed; a backend failure or timeout is a failed
        verdict with the error (and whatever text had arrived)."""
        options = self.options(prompt)
        self._used[spec.label] = spec
        parts: list[str] = []
        t0 = time.perf_counter()
        error: str | None = None
        try:
            backend = self.pool.for_spec(spec)
            async with asyncio.timeout(self.config.timeout_s):
                stream = backend.stream(spec, prompt, options)
                try:
                    async for item in stream:
                        if type(item) is TextChunk and item.text:
                            parts.append(item.text)
                finally:
                    await stream.aclose()
        except TimeoutError:
            error = f"the judge gave no verdict within {self.config.timeout_s:g} s"
        except BackendError as exc:
            error = f"the judge failed: {exc}"
        latency = time.perf_counter() - t0
        raw = "".join(parts)
        if error is not None:
            return Verdict(raw=raw, latency_s=latency, error=error)
        parsed = parse_verdict(raw)
        return Verdict(score=parsed.score, reason=parsed.reason, raw=raw, latency_s=latency,
                       error=parsed.error)

    async def grade(self, job: Job) -> Graded | None:
        """Every verdict for ``job``, and the run's quality with the judgement in it; ``None``
        when no judge applies to it."""
        spec = self.spec_for(job.check)
        if spec is None:
            return None
        rubric = rubric_for(job.check, self.config.rubric)
        check = job.check
        repeats = (check.repeats if check and check.repeats else None) or self.config.repeats
        verdicts = []
        prompt = ""
        for _ in range(repeats):
            prompt, _fence = build_prompt(rubric, job.task, job.answer, context=job.context)
            verdicts.append(await self.verdict(spec, prompt))
        try:
            effective = self.pool.for_spec(spec).effective_options(spec, self.options(prompt))
        except BackendError:
            effective = self.options(prompt).model_dump(exclude_none=True)
        name = check.name if check else DEFAULT_CHECK_NAME
        judgement = make_judgement(
            verdicts, check=name, spec=spec.label, rubric=rubric, options=effective,
            identity=await self.identity(spec),
        )
        result = check_result(
            judgement, name=name, weight=check.weight if check else 1.0,
            pass_score=check.pass_score if check else 7.0,
        )
        return Graded(job.run_id, apply_judgement(job.quality, result, judgement), judgement)


def _checks_in_plan(plan: Any) -> Callable[[dict[str, Any]], Sequence[Any]]:
    """The checks of a record's prompt or conversation turn in ``plan`` (an ``engine.Plan``)."""
    prompts = {p.id: p for p in plan.prompts}
    conversations = {c.id: c for c in getattr(plan, "conversations", [])}

    def checks_of(rec: dict[str, Any]) -> Sequence[Any]:
        conv = conversations.get(rec.get("conversation_id") or "")
        if conv is not None and isinstance(rec.get("turn"), int):
            return conv.checks_for(rec["turn"])
        prompt = prompts.get(rec.get("prompt_id") or "")
        return getattr(prompt, "checks", None) or []

    return checks_of


def _judge_checks_with_a_judge(plan: Any) -> bool:
    """Whether some prompt or turn of ``plan`` has a judge check naming its own judge."""
    lists = [getattr(p, "checks", None) or [] for p in plan.prompts]
    lists += [c.checks for c in getattr(plan, "conversations", None) or []]
    return any(check.judge is not None for checks in lists for check in judge_checks(checks))


async def judge_session(engine: EngineSession) -> int:
    """The engine's judging step, after every measured run of the session: grade, update the
    records in memory and in the store (``Store.update_quality``), publish ``RunJudged``.
    Returns how many runs were judged. Cancelling the engine stops it between or during calls
    (a run being judged keeps its previous quality). The judge is unloaded afterwards."""
    config = getattr(engine.plan, "judge", None) or JudgeConfig()
    if config.spec is None and not _judge_checks_with_a_judge(engine.plan):
        return 0  # nobody to judge with: judge checks stay "not run" with that reason
    if config.cache_dir is None and engine.telemetry is not None:
        config.cache_dir = engine.telemetry.data_dir
    by_id = {rec.id: rec for rec in engine.records}
    data = [rec.to_json() for rec in engine.records]
    jobs = make_jobs(data, _checks_in_plan(engine.plan), config)
    grader = Grader(engine.pool, config)
    try:
        judged = await _grade_all(engine, grader, jobs, by_id)
    finally:
        await grader.release()
    return judged


async def _grade_all(
    engine: EngineSession, grader: Grader, jobs: list[Job], by_id: dict[str, Any]
) -> int:
    from .events import RunJudged

    judged = 0
    for job in jobs:
        if engine.cancelled:
            break
        task = asyncio.ensure_future(grader.grade(job))
        engine.streams.add(task)  # Engine.cancel() cancels it like a stream
        try:
            graded = await task
        except asyncio.CancelledError:
            if task.cancelled() and engine.cancelled:
                break
            raise
        except Exception:  # a judge bug or a vanished rubric file: the run keeps its quality
            log.exception("judging run %s failed", job.run_id)
            continue
        finally:
            engine.streams.discard(task)
        if graded is None:
            continue
        rec = by_id[job.run_id]
        rec.quality = graded.quality
        await engine.save_quality(rec.id, graded.quality.model_dump(mode="json"))
        judged += 1
        engine.emit(RunJudged(record=rec, index=judged, total=len(jobs)))
    return judged


def judged_line(event: Any) -> str:
    """``--batch`` progress for a ``RunJudged`` event (untrusted fields made inert)."""
    from ..safe_text import one_line

    rec = event.record
    quality = rec.quality
    judgement = quality.judge if quality is not None else None
    figure = "no verdict"
    if judgement is not None and judgement.mean is not None:
        figure = f"{judgement.mean:.1f}/10"
        if judgement.stdev is not None:
            figure += f" ± {judgement.stdev:.1f} (n={judgement.n})"
    elif judgement is not None and judgement.verdicts:
        figure = f"no verdict: {one_line(judgement.verdicts[0].error, 80)}"
    return (f"[judged {event.index}/{event.total}] {one_line(rec.model_spec or rec.model)} "
            f"{one_line(rec.prompt_id)} rep {rec.repetition + 1}: {figure}")


def judge_rows(records: Sequence[Any]) -> list[list[str]]:
    """A summary of the judgements in ``records`` (RunRecords or JSON dicts): per model and
    prompt, the runs judged, mean ± stdev of their judge scores (across runs), the mean spread
    of one answer's repeated verdicts, and failed verdicts. Empty when nothing was judged.
    Cells are plain text from untrusted fields: the caller makes them inert."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in records:
        data = rec.to_json() if hasattr(rec, "to_json") else rec
        judge = (data.get("quality") or {}).get("judge")
        if not isinstance(judge, dict):
            continue
        key = (str(data.get("model_spec") or data.get("model")), str(data.get("prompt_id")),
               str(judge.get("spec")))
        groups.setdefault(key, []).append(judge)
    if not groups:
        return []
    rows = [["model", "prompt", "judged", "judge score", "spread per answer", "failed", "judge"]]
    for (model, prompt, spec), judgements in groups.items():
        means = [j["mean"] for j in judgements if isinstance(j.get("mean"), int | float)]
        spreads = [j["stdev"] for j in judgements if isinstance(j.get("stdev"), int | float)]
        failed = sum(1 for j in judgements for v in j.get("verdicts") or [] if v.get("error"))
        total = sum(len(j.get("verdicts") or []) for j in judgements)
        score = "-"
        if means:
            score = f"{sum(means) / len(means):.1f}"
            if len(means) >= 2:
                score += f" ± {statistics.stdev(means):.1f}"
        spread_cell = f"± {sum(spreads) / len(spreads):.2f}" if spreads else "-"
        rows.append([model, prompt, f"{len(means)}/{len(judgements)}", score, spread_cell,
                     f"{failed}/{total}", spec])
    return rows



# ------------------------------------------------------------------------- stored runs


@dataclass
class StoredJudging:
    """What ``judge_stored`` did: the judged runs (records with their new ``quality``), how
    many asked-for runs were left alone (not ok, warm-up, unknown id), and warnings."""

    judged: list[dict[str, Any]] = field(default_factory=list)
    left_alone: int = 0
    warnings: list[str] = field(default_factory=list)


def stored_plan_checks(
    plan: dict[str, Any] | None, warnings: list[str]
) -> Callable[[dict[str, Any]], Sequence[Any]]:
    """``checks_of(record)``: the judge check a stored session plan gave the record's prompt
    or conversation turn, re-validated (a rubric file that is gone is reported in
    ``warnings`` and the default rubric used instead)."""
    from ..conversations import ConversationSpec
    from ..quality.checks import parse_checks

    prompts: dict[str, list[Any]] = {}
    conversations: dict[str, ConversationSpec] = {}
    plan = plan if isinstance(plan, dict) else {}
    for prompt in plan.get("prompts") or []:
        raw = [c for c in prompt.get("checks") or []
               if isinstance(c, dict) and c.get("kind") == "judge"]
        if raw:
            try:
                prompts[str(prompt.get("id"))] = parse_checks(raw[:1])
            except ValueError as exc:
                warnings.append(f"prompt {prompt.get('id')!r}: its judge check no longer "
                                f"loads ({exc}); the default rubric is used")
    for conv in plan.get("conversations") or []:
        try:
            spec = ConversationSpec.model_validate(conv)
        except ValueError as exc:
            warnings.append(f"conversation {conv.get('id')!r}: its checks no longer load "
                            f"({exc}); the default rubric is used")
            continue
        conversations[spec.id] = spec

    def checks_of(rec: dict[str, Any]) -> Sequence[Any]:
        conv = conversations.get(str(rec.get("conversation_id")))
        if conv is not None and isinstance(rec.get("turn"), int):
            return judge_checks(conv.checks_for(rec["turn"]))
        return prompts.get(str(rec.get("prompt_id")), [])

    return checks_of


async def judge_stored(
    store: Any,
    run_ids: Sequence[str],
    config: JudgeConfig,
    *,
    pool: BackendPool,
    on_judged: Callable[[dict[str, Any], Graded, int, int], None] | None = None,
) -> StoredJudging:
    """Grade stored runs (``llmbench judge``, the history screen's marked runs) with
    ``config.spec``, replacing each run's ``quality`` through ``store.update_quality`` (the
    previous block goes to ``quality_history``). Runs may come from several sessions; each
    is graded with its session plan's judge check for its prompt or turn (rubric and name;
    ``config.rubric``, when set, replaces the check's rubric; ``config.spec`` always judges),
    else ``config.rubric`` or the default rubric, and conversation turns with their earlier
    turns as context. Store calls run on worker threads; ``on_judged(run, graded, i, total)``
    is called on the loop after each run is stored. The judge is unloaded at the end."""
    from ..store import RunQuery

    outcome = StoredJudging()
    targets: list[dict[str, Any]] = []
    for run_id in dict.fromkeys(run_ids):
        try:
            targets.append(await asyncio.to_thread(store.get_run, run_id))
        except Exception as exc:  # StoreError: an id that is not (or no longer) there
            outcome.warnings.append(str(exc))
    by_session: dict[Any, list[dict[str, Any]]] = {}
    for run in targets:
        by_session.setdefault(run.get("session_id"), []).append(run)
    jobs: list[Job] = []
    records: dict[str, dict[str, Any]] = {}
    for sid, runs in by_session.items():
        session_runs = runs
        plan = None
        if isinstance(sid, str):
            query = RunQuery(session_id=sid, sort="started_at")
            found = await asyncio.to_thread(store.query, query)
            session_runs = [r for r in found if r.get("session_id") == sid] or runs
            stored = await asyncio.to_thread(store.get_session, sid)
            plan = (stored or {}).get("plan")
        from_plan = stored_plan_checks(plan, outcome.warnings)

        def checks_of(rec: dict[str, Any], from_plan: Any = from_plan) -> Sequence[Any]:
            update: dict[str, Any] = {"judge": None}  # config.spec judges
            if config.rubric is not None:
                update.update(rubric=None, rubric_file=None)
            return [c.model_copy(update=update) for c in judge_checks(from_plan(rec))]

        wanted = {r["id"] for r in runs}
        jobs += [j for j in make_jobs(session_runs, checks_of, config) if j.run_id in wanted]
        records.update({r["id"]: r for r in runs})
    outcome.left_alone = len(dict.fromkeys(run_ids)) - len(jobs)
    grader = Grader(pool, config)
    try:
        for i, job in enumerate(jobs, 1):
            graded = await grader.grade(job)
            if graded is None:
                continue
            quality = graded.quality.model_dump(mode="json")
            await asyncio.to_thread(store.update_quality, job.run_id, quality)
            run = {**records[job.run_id], "quality": quality}
            outcome.judged.append(run)
            if on_judged is not None:
                on_judged(run, graded, i, len(jobs))
    finally:
        await grader.release()
    return outcome
