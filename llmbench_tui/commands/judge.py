"""``llmbench judge SESSION_OR_RUN --judge SPEC``: a judge model grades stored answers.

The same grading as ``--batch --judge`` (``engine.judging``), after the fact: every successful,
non-warm-up run of the session (or the one run) is graded and its ``quality`` replaced through
``Store.update_quality`` (the previous block moves to ``quality_history``). Nothing is re-run and
no timing changes; the judge's calls are not run records.

The rubric: ``--rubric FILE`` for every answer; without it, the judge check the session's plan
gave the run's prompt or conversation turn (its inline text or file), else the default rubric.
``--judge`` always decides who judges (a check's own ``judge`` is for ``--batch``). Conversation
turns are graded with the earlier turns of the same conversation as context.

Also here: ``judge_config_from_args``, the session judge of ``--batch`` (``--judge``,
``--judge-repeats``, ``--rubric``, or the suite's ``judge``/``judge_repeats``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from llmbench_tui import config
from llmbench_tui.backends import BackendPool
from llmbench_tui.commands.common import add_data_dir, fail, json_text, open_store, table
from llmbench_tui.conversations import ConversationSpec
from llmbench_tui.engine.judging import (
    Grader,
    Job,
    JudgeConfig,
    judge_rows,
    make_jobs,
)
from llmbench_tui.formatting import fmt_num
from llmbench_tui.quality.checks import JudgeCheck, parse_checks
from llmbench_tui.quality.judge import judge_checks, load_rubric
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import ModelSpec
from llmbench_tui.store import RunQuery, Store, StoreError

PROG = "llmbench judge"


def _repeats(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError(f"must be 1..20, got {text}")
    return value


def add_judge_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--judge``, ``--judge-repeats`` and ``--rubric``, for ``judge`` and ``--batch``."""
    parser.add_argument("--judge", required=required, metavar="SPEC",
                        help="the model that grades answers: ollama:NAME[@HOST], "
                        "openai:NAME@BASE_URL, gguf:PATH or embedded")
    parser.add_argument("--judge-repeats", type=_repeats, metavar="N",
                        help="verdicts per answer, their mean and spread kept (default 1)")
    parser.add_argument("--rubric", metavar="FILE",
                        help="the rubric (a text file) for answers with no judge check of their "
                        "own (default: the rubric shipped with llmbench)")


def judge_config_from_args(args: argparse.Namespace, suite: Any) -> JudgeConfig | None:
    """The session judge of ``--batch``: flags over the suite's ``judge``/``judge_repeats``;
    ``None`` when neither asks for one. ValueError (a usage error) for a bad spec or rubric."""
    spec_text = getattr(args, "judge", None) or getattr(suite, "judge", None)
    repeats = getattr(args, "judge_repeats", None) or getattr(suite, "judge_repeats", 1)
    rubric_path = getattr(args, "rubric", None)
    if rubric_path and not spec_text:
        raise ValueError("--rubric needs a judge: --judge SPEC (or judge = \"SPEC\" in the suite)")
    if spec_text is None and repeats == 1:
        return None
    return JudgeConfig(
        spec=ModelSpec.parse(spec_text) if spec_text else None,
        repeats=repeats,
        rubric=load_rubric(rubric_path) if rubric_path else None,
        cache_dir=config.data_dir(getattr(args, "data_dir", None)),
    )


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A judge model grades stored answers against a rubric (1-10, mean and "
        "spread of --judge-repeats verdicts); the run's quality block is replaced, the previous "
        "one kept in quality_history. Nothing is re-run.",
    )
    parser.add_argument("target", metavar="SESSION_OR_RUN",
                        help="a session id or a run id (or an unambiguous prefix of either)")
    add_judge_flags(parser, required=True)
    parser.add_argument("--ollama-host", help="default Ollama host (env OLLAMA_HOST)")
    parser.add_argument("--json", action="store_true",
                        help="print the judged runs' new quality blocks as JSON")
    add_data_dir(parser)
    return parser


def _runs(store: Store, ref: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(targets, session)``: the runs to judge (one run, or a session's), and every run of
    their session (conversation turns are judged with their earlier turns)."""
    errors = []
    try:
        run = store.get_run(ref)
    except StoreError as exc:
        errors.append(str(exc))
    else:
        return [run], _session_runs(store, run.get("session_id"))
    try:
        sid = store.resolve_session_id(ref)
    except StoreError as exc:
        errors.append(str(exc))
    else:
        runs = _session_runs(store, sid)
        return runs, runs
    ambiguous = [e for e in errors if "matches" in e]
    raise StoreError(ambiguous[0] if ambiguous else f"{ref!r} is neither a run id nor a "
                     f"session id in {store.path}")


def _session_runs(store: Store, sid: Any) -> list[dict[str, Any]]:
    if not isinstance(sid, str):
        return []
    runs = store.query(RunQuery(session_id=sid, sort="started_at"))
    return [r for r in runs if r.get("session_id") == sid]


def _plan_checks(plan: dict[str, Any] | None, warnings: list[str]):
    """``checks_of(record)``: the judge check the stored plan gave the record's prompt or
    turn (re-validated; a rubric file that is gone is reported and the default used)."""
    prompts: dict[str, list[Any]] = {}
    conversations: dict[str, ConversationSpec] = {}
    plan = plan if isinstance(plan, dict) else {}
    for prompt in plan.get("prompts") or []:
        raw = [c for c in prompt.get("checks") or [] if isinstance(c, dict)
               and c.get("kind") == "judge"]
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


def _override(check: JudgeCheck, rubric_given: bool) -> JudgeCheck:
    """--judge decides who judges; --rubric, when given, replaces the check's rubric."""
    update: dict[str, Any] = {"judge": None}
    if rubric_given:
        update.update(rubric=None, rubric_file=None)
    return check.model_copy(update=update)


async def _grade(jobs: list[Job], judge: JudgeConfig, ollama_host: str | None, store: Store,
                 runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    pool = BackendPool(ollama_host=ollama_host)
    grader = Grader(pool, judge)
    done = []
    try:
        for i, job in enumerate(jobs, 1):
            graded = await grader.grade(job)
            if graded is None:
                continue
            quality = graded.quality.model_dump(mode="json")
            await asyncio.to_thread(store.update_quality, job.run_id, quality)
            done.append({"id": job.run_id, "quality": quality})
            run = runs[job.run_id]
            run["quality"] = quality
            j = graded.judgement
            figure = "no verdict" if j.mean is None else f"{fmt_num(j.mean)}/10"
            if j.stdev is not None:
                figure += f" ± {fmt_num(j.stdev)}"
            if j.mean is None and j.verdicts:
                figure += f": {j.verdicts[0].error}"
            print(f"[{i}/{len(jobs)}] {one_line(job.run_id)[:8]} "
                  f"{one_line(run.get('model_spec') or run.get('model'), 32)} "
                  f"{one_line(run.get('prompt_id'), 24)}: {one_line(figure, 120)}",
                  file=sys.stderr)
    finally:
        await grader.release()
        await pool.aclose()
    return done


def main(args: argparse.Namespace) -> int:
    try:
        judge = JudgeConfig(
            spec=ModelSpec.parse(args.judge),
            repeats=args.judge_repeats or 1,
            rubric=load_rubric(args.rubric) if args.rubric else None,
            cache_dir=config.data_dir(args.data_dir),  # the GGUF file-hash cache
        )
    except ValueError as exc:
        return fail(PROG, str(exc), 2)
    try:
        store = open_store(args)
    except StoreError as exc:
        return fail(PROG, str(exc), 2)
    try:
        targets, session = _runs(store, args.target)
        sid = targets[0].get("session_id") if targets else None
        stored = store.get_session(sid) if isinstance(sid, str) else None
        warnings: list[str] = []
        plan_checks = _plan_checks((stored or {}).get("plan"), warnings)

        def checks_of(rec: dict[str, Any]) -> Sequence[Any]:
            return [_override(c, bool(args.rubric)) for c in judge_checks(plan_checks(rec))]

        for warning in warnings:
            print(f"{PROG}: warning: {one_line(warning)}", file=sys.stderr)
        wanted = {r["id"] for r in targets}
        jobs = [j for j in make_jobs(session or targets, checks_of, judge) if j.run_id in wanted]
        left = len(targets) - len(jobs)
        if left:
            print(f"{PROG}: {left} run{'s' if left != 1 else ''} left alone: not ok, or a "
                  "warm-up", file=sys.stderr)
        if not jobs:
            return fail(PROG, "nothing to judge: no successful, non-warm-up run")
        by_id = {r["id"]: r for r in session or targets}
        done = asyncio.run(_grade(jobs, judge, args.ollama_host, store, by_id))
    except StoreError as exc:
        return fail(PROG, str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the runs judged so far are stored", file=sys.stderr)
        return 130
    finally:
        store.close()
    if args.json:
        sys.stdout.write(json_text(done))
    else:
        rows = judge_rows([by_id[d["id"]] for d in done])
        if rows:
            print(table([[one_line(c) for c in row] for row in rows]))
    with_verdict = sum(1 for d in done if (d["quality"].get("judge") or {}).get("mean") is not None)
    print(f"{PROG}: judged {len(done)} of {len(targets)} runs, {with_verdict} with a verdict",
          file=sys.stderr)
    return 0 if with_verdict else 1

