"""``llmbench score SESSION_OR_RUN --suite FILE``: re-score stored answers with a suite's checks.

People refine checks after the fact: this applies the suite's *current* checks (fixtures
included) to the stored responses, matching each run to the suite's prompt of the same
``prompt_id``. The new quality block replaces ``quality``; the previous one moves to the end of
the run's ``quality_history`` with its own ``scored_at``, so nothing is lost. Runs whose prompt is
not in the suite, and runs that did not finish ``ok`` (their answer is partial or absent), are
reported and left alone. Timings are never touched: nothing is re-run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmbench_tui.commands import common
from llmbench_tui.formatting import fmt_num
from llmbench_tui.quality import score_answer
from llmbench_tui.quality.judge_prompt import carry_judgement
from llmbench_tui.safe_text import one_line
from llmbench_tui.store import StoreError
from llmbench_tui.suite import SuiteError, load_suite


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = common.stored_runs_parser(
        prog,
        "Re-score stored answers with a suite's current checks (runs are matched to the suite's "
        "prompts by prompt id; the previous quality block is kept in quality_history).",
    )
    parser.add_argument("--suite", required=True, metavar="FILE",
                        help="the suite file whose checks to apply")
    parser.add_argument("--allow-code-exec", action="store_true",
                        help="run the tests of python checks (also allow_code_exec in the suite)")
    parser.add_argument("--json", action="store_true",
                        help="print the re-scored runs' new quality blocks as JSON")
    common.add_data_dir(parser)
    return parser


def _label(record: dict[str, Any]) -> str:
    kind = "warm-up" if record.get("warmup") else "cold" if record.get("cold") else (
        f"rep {int(record.get('repetition') or 0) + 1}"
    )
    return (f"{one_line(record.get('id'))[:8]} {one_line(record.get('model'), 24)} "
            f"{one_line(record.get('prompt_id'), 24)} {kind}")


def main(args: argparse.Namespace) -> int:
    prog = "llmbench score"
    try:
        suite = load_suite(args.suite)
    except SuiteError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)  # one line per problem, already inert
        return 2
    prompts = {p.id: p for p in suite.prompts}
    allow = bool(args.allow_code_exec or suite.allow_code_exec)
    try:
        store = common.open_store(args)
        runs = common.runs_of(store, args.target)
    except StoreError as exc:
        return common.fail(prog, str(exc))
    rescored: list[dict[str, Any]] = []
    not_in_suite: dict[str, int] = {}
    not_ok = 0
    try:
        for run in runs:
            prompt = prompts.get(str(run.get("prompt_id")))
            if prompt is None or not prompt.checks:
                key = one_line(run.get("prompt_id"), 40)
                not_in_suite[key] = not_in_suite.get(key, 0) + 1
                continue
            if run.get("status") != "ok":
                not_ok += 1
                continue
            response = run.get("response")
            old = run.get("quality")
            fresh = score_answer(
                response if isinstance(response, str) else "", prompt.checks,
                allow_code_exec=allow,
            )
            # A judgement is kept while its rubric is unchanged (re-judge: ``llmbench judge``).
            quality = carry_judgement(fresh, old, prompt.checks).model_dump(mode="json")
            before = old.get("score") if isinstance(old, dict) else None
            store.update_quality(run["id"], quality)
            rescored.append({"id": run["id"], "quality": quality})
            if not args.json:
                print(f"{_label(run)}: {fmt_num(before)} -> {fmt_num(quality['score'])}")
    except StoreError as exc:
        return common.fail(prog, str(exc))
    finally:
        store.close()
    if args.json:
        sys.stdout.write(common.json_text(rescored))
    for prompt_id, n in sorted(not_in_suite.items()):
        print(f"{prog}: {n} run{'s' if n != 1 else ''} of prompt {prompt_id!r} left alone: "
              "no such prompt with checks in the suite", file=sys.stderr)
    if not_ok:
        print(f"{prog}: {not_ok} run{'s' if not_ok != 1 else ''} left alone: not ok "
              "(error, timeout or cancelled)", file=sys.stderr)
    print(f"{prog}: re-scored {len(rescored)} of {len(runs)} runs", file=sys.stderr)
    return 0 if rescored else 1
