"""``llmbench judge SESSION_OR_RUN --judge SPEC``: a judge model grades stored answers.

The same grading as ``--batch --judge`` (``engine.judge_runs``), after the fact: every successful,
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
from typing import Any

from llmbench_tui import config
from llmbench_tui.backends import BackendPool
from llmbench_tui.commands.common import (
    ArgumentAdder,
    add_data_dir,
    fail,
    json_text,
    open_store,
    runs_of,
    stored_runs_parser,
    table,
)
from llmbench_tui.engine.judge_runs import (
    Graded,
    JudgeConfig,
    StoredJudging,
    judge_rows,
    judge_stored,
)
from llmbench_tui.formatting import fmt_num
from llmbench_tui.quality.judge_prompt import load_rubric
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import ModelSpec
from llmbench_tui.store import RunStore, StoreError

PROG = "llmbench judge"


def _repeats(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError(f"must be 1..20, got {text}")
    return value


def add_judge_flags(parser: ArgumentAdder, *, required: bool) -> None:
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
    repeats: int = getattr(args, "judge_repeats", 0) or getattr(suite, "judge_repeats", 1)
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
    parser = stored_runs_parser(
        prog,
        "A judge model grades stored answers against a rubric (1-10, mean and spread of "
        "--judge-repeats verdicts); the run's quality block is replaced, the previous one kept "
        "in quality_history. Nothing is re-run.",
    )
    add_judge_flags(parser, required=True)
    parser.add_argument("--ollama-host", help="default Ollama host (env OLLAMA_HOST)")
    parser.add_argument("--json", action="store_true",
                        help="print the judged runs' new quality blocks as JSON")
    add_data_dir(parser)
    return parser


def _progress(run: dict[str, Any], graded: Graded, index: int, total: int) -> None:
    j = graded.judgement
    figure = "no verdict" if j.mean is None else f"{fmt_num(j.mean)}/10"
    if j.stdev is not None:
        figure += f" ± {fmt_num(j.stdev)}"
    if j.mean is None and j.verdicts:
        figure += f": {j.verdicts[0].error}"
    print(f"[{index}/{total}] {one_line(run.get('id'))[:8]} "
          f"{one_line(run.get('model_spec') or run.get('model'), 32)} "
          f"{one_line(run.get('prompt_id'), 24)}: {one_line(figure, 120)}", file=sys.stderr)


async def _judge(store: RunStore, ids: list[str], judge: JudgeConfig,
                 ollama_host: str | None) -> StoredJudging:
    pool = BackendPool(ollama_host=ollama_host)
    try:
        return await judge_stored(store, ids, judge, pool=pool, on_judged=_progress)
    finally:
        await pool.aclose()


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
        targets = runs_of(store, args.target)
        outcome = asyncio.run(_judge(store, [r["id"] for r in targets], judge, args.ollama_host))
    except StoreError as exc:
        return fail(PROG, str(exc))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the runs judged so far are stored", file=sys.stderr)
        return 130
    finally:
        store.close()
    for warning in outcome.warnings:
        print(f"{PROG}: warning: {one_line(warning)}", file=sys.stderr)
    if outcome.left_alone:
        n = outcome.left_alone
        print(f"{PROG}: {n} run{'s' if n != 1 else ''} left alone: not ok, or a warm-up",
              file=sys.stderr)
    if not outcome.judged:
        return fail(PROG, "nothing judged: no successful, non-warm-up run")
    done = [{"id": run["id"], "quality": run["quality"]} for run in outcome.judged]
    if args.json:
        sys.stdout.write(json_text(done))
    else:
        rows = judge_rows(outcome.judged)
        if rows:
            print(table([[one_line(c) for c in row] for row in rows]))
    with_verdict = sum(1 for d in done if (d["quality"].get("judge") or {}).get("mean") is not None)
    print(f"{PROG}: judged {len(done)} of {len(targets)} runs, {with_verdict} with a verdict",
          file=sys.stderr)
    return 0 if with_verdict else 1

