"""Conversations in the engine: turns run in order, each sent with the whole history so far.

``Engine`` calls ``run_conversations`` after a model's prompts (and, for a suite of
conversations only, ``warm_up`` first: cold and warm-up runs then send the first turn of the
first conversation). For each repetition, each conversation's turns run one after another:

- turn *n* is sent with turns 1..n-1 and the model's own answers to them (answer text, not
  thinking) through ``Backend.stream(..., history=...)``; the system prompt is the
  conversation's ``system`` (else the session's ``--system``);
- conversations run **one stream at a time**, whatever ``concurrency`` says: a turn needs the
  previous answer, and one conversation per model keeps per-turn figures comparable;
- each turn is one run record with ``conversation_id``, ``turn`` (1-based) and the prompt id
  ``f"{id}#t{turn}"``, so statistics group per turn; its checks (``[[conversations.checks]]``)
  are scored once the turn has ended, before the record is stored;
- a turn that fails (error or timeout) ends that conversation for that model: the remaining
  turns are stored with status ``skipped`` and an error naming the failed turn; the next
  repetition starts the conversation afresh, and other conversations and models go on. A model
  that cannot be reached at all fails once, as for prompts (no skipped records then). A
  cancelled session stops without skipped records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backends.base import BackendError, Message
from ..conversations import ConversationSpec
from ..quality import score_answer
from ..schema import ModelSpec, PromptSpec, RunRecord, get_path
from .slots import ModelFailed, Slot
from .stats import counts_in_figures, describe

if TYPE_CHECKING:
    from .plan import Plan
    from .session import EngineSession

log = logging.getLogger(__name__)


def conversation_run_count(plan: Plan) -> int:
    """Run records the plan's conversations make per model (skipped turns included)."""
    conversations = getattr(plan, "conversations", None) or []
    return sum(len(c.turns) for c in conversations) * plan.repetitions


def turn_prompt(conv: ConversationSpec, turn: int) -> PromptSpec:
    """The prompt of turn ``turn`` (1-based): its text, the conversation's system and tags."""
    return PromptSpec(
        id=conv.prompt_id(turn), text=conv.turns[turn - 1], system=conv.system, tags=conv.tags
    )


def first_turn(plan: Plan) -> PromptSpec:
    """What cold and warm-up runs send when a suite has conversations only."""
    return turn_prompt(plan.conversations[0], 1)


async def warm_up(engine: EngineSession, spec: ModelSpec) -> None:
    """Cold and warm-up runs for a plan with no prompts: the first turn, on its own."""

    plan, prompt = engine.plan, first_turn(engine.plan)
    for i in range(plan.cold):
        if engine.cancelled:
            return
        slot = Slot(spec, prompt, i, cold=True)
        if await engine.unload(slot):
            await engine.run_round([slot])
    for i in range(plan.warmup):
        if engine.cancelled:
            return
        await engine.run_round([Slot(spec, prompt, i, warmup=True)])


async def run_conversations(engine: EngineSession, spec: ModelSpec) -> None:
    """Every repetition of every conversation of the plan, for one model."""
    plan = engine.plan
    for rep in range(plan.repetitions):
        for conv in getattr(plan, "conversations", None) or []:
            if engine.cancelled:
                return
            await _run_conversation(engine, spec, conv, rep)


async def _run_conversation(
    engine: EngineSession, spec: ModelSpec, conv: ConversationSpec, rep: int
) -> None:
    history: list[Message] = []
    for turn in range(1, len(conv.turns) + 1):
        if engine.cancelled:
            return
        slot = Slot(
            spec, turn_prompt(conv, turn), rep, history=tuple(history),
            conversation_id=conv.id, turn=turn,
        )
        outcome = await engine.run_one(slot)
        rec = outcome.record
        await _score(engine, rec, conv.checks_for(turn))
        await engine.finish(rec, outcome.series)
        if outcome.model_failed:
            raise ModelFailed(rec.error)
        if rec.status != "ok":
            if rec.status != "cancelled":
                await _skip_rest(engine, spec, conv, rep, turn, rec)
            return
        history += [
            {"role": "user", "content": conv.turns[turn - 1]},
            {"role": "assistant", "content": rec.response},
        ]


async def _score(engine: EngineSession, rec: RunRecord, checks: Sequence[Any]) -> None:
    """A turn's checks, once its stream has ended (on a worker thread: code checks take
    seconds); judge checks stay not run here and are graded after the session."""
    if rec.status != "ok" or not checks:
        return
    try:
        rec.quality = await asyncio.to_thread(
            score_answer, rec.response, list(checks),
            allow_code_exec=bool(getattr(engine.plan, "allow_code_exec", False)),
        )
    except Exception:  # a scorer failure never loses the run
        log.exception("scoring run %s failed", rec.id)


async def _skip_rest(
    engine: EngineSession,
    spec: ModelSpec,
    conv: ConversationSpec,
    rep: int,
    failed: int,
    rec: RunRecord,
) -> None:
    why = f"skipped: turn {failed} of conversation {conv.id!r} ended with {rec.status}"
    if rec.error:
        why += f" ({rec.error})"
    for turn in range(failed + 1, len(conv.turns) + 1):
        slot = Slot(spec, turn_prompt(conv, turn), rep, conversation_id=conv.id, turn=turn)
        skipped = engine.error_record(slot, BackendError(why))
        skipped.status = "skipped"
        await engine.finish(skipped, None)


# --------------------------------------------------------------------------------- report

TURN_FIGURES = (
    ("prompt tokens", "tokens.prompt", "{:.0f}"),
    ("TTFT s", "timings.ttft_s", "{:.3f}"),
    ("prompt tok/s", "server.prompt_tok_s", "{:.1f}"),
    ("decode tok/s", "timings.decode_tok_s", "{:.1f}"),
)


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    stats = describe(values)
    text = fmt.format(stats.mean)
    if stats.stdev is not None:
        text += " ± " + fmt.format(stats.stdev)
    return text


def conversation_tables(
    records: Sequence[RunRecord] | Sequence[dict[str, Any]],
) -> list[tuple[str, list[list[str]]]]:
    """One table per (model, conversation): a row per turn with the runs it rests on (ok /
    all, skipped ones counted) and mean ± stdev of prompt tokens (the server's count), TTFT,
    prompt rate and decode rate over the successful, non-warm-up, non-cold runs. Titles and
    cells are plain text from untrusted fields: the caller makes them inert."""
    groups: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for rec in records:
        data = rec.to_json() if isinstance(rec, RunRecord) else rec
        conv, turn = data.get("conversation_id"), data.get("turn")
        if not conv or not isinstance(turn, int) or data.get("warmup") or data.get("cold"):
            continue
        model = data.get("model_spec") or data.get("model") or "?"
        groups.setdefault((model, conv), {}).setdefault(turn, []).append(data)
    tables = []
    for (model, conv), turns in groups.items():
        rows = [["turn", "ok", *(name for name, _, _ in TURN_FIGURES)]]
        for turn in sorted(turns):
            recs = turns[turn]
            ok = [r for r in recs if counts_in_figures(r)]
            row = [str(turn), f"{len(ok)}/{len(recs)}"]
            for _, path, fmt in TURN_FIGURES:
                values = [float(v) for r in ok if isinstance(v := get_path(r, path), int | float)]
                row.append(_cell(values, fmt))
            rows.append(row)
        tables.append((f"{model} · conversation {conv}", rows))
    return tables
