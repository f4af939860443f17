"""``llmbench compare A B``: two runs, two sessions or two models, every figure side by side.

B is read against A: the change is ``(B - A) / A``, and the last column says whether it is
larger than the repetitions' noise (Welch's t-test, p < 0.05) — one fast run is not a speed-up.
Warm-up and cold runs are left out (``compare.counted``). Every printed field is record text,
untrusted, so it goes through ``clean``. When A and B ran on different machines (or on one
machine whose driver, kernel or OS changed) a note says so under the A/B lines.

``llmbench compare --by machine MODEL...`` compares machine against machine for the same model:
the runs of the models, split by the machine that did the work, each machine against the
reference (``--against MACHINE``, default the machine with the most runs).
"""

from __future__ import annotations

import argparse
import sys

from llmbench_tui.commands.common import (
    add_data_dir,
    fail,
    json_text,
    open_store,
    table,
)
from llmbench_tui.compare import (
    FigureDiff,
    compare_machines,
    compare_records,
    condition_notes,
    group_key,
    machine_notes,
    record_machines,
    resolve_side,
)
from llmbench_tui.formatting import fmt_num
from llmbench_tui.safe_text import one_line
from llmbench_tui.store import StoreError


def _side(mean: float | None, stdev: float | None, n: int) -> str:
    if mean is None:
        return "-"
    spread = f" ± {fmt_num(stdev)}" if stdev is not None else ""
    return f"{fmt_num(mean, 4)}{spread} (n={n})"


def _verdict(d: FigureDiff) -> str:
    if d.change_pct is None:
        return ""
    if d.verdict == "n<2":
        return "n<2, can't tell"
    if d.verdict == "noise":
        return f"noise (p={d.p_value:.2f})"
    word = {True: "better", False: "worse", None: "changed"}[d.better]
    return f"{word} (p={d.p_value:.3f})"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Compare two runs, two sessions or two models (B against A); with "
        "--by machine, machine against machine for the same models.",
        usage=f"{prog} [--json] A B | {prog} --by machine [--against MACHINE] MODEL [MODEL ...]",
    )
    parser.add_argument(
        "refs", nargs="+", metavar="REF",
        help="A and B: run id, session id (or unambiguous prefix) or model:NAME; with "
        "--by machine: models (model:NAME exactly, or part of a name)",
    )  # fmt: skip
    parser.add_argument(
        "--by", choices=("machine",),
        help="machine: compare each machine that ran the models with the reference machine",
    )  # fmt: skip
    parser.add_argument(
        "--against", metavar="MACHINE",
        help="with --by machine: the reference machine A (host name, CPU or id prefix; "
        "default: the machine with the most runs)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="the comparison as JSON")
    add_data_dir(parser)
    return parser


def _rows(diffs: list[FigureDiff]) -> list[list[str]]:
    rows = [["group", "figure", "A", "B", "change", "vs noise"]]
    for d in diffs:
        change = f"{d.change_pct:+.1f}%" if d.change_pct is not None else "-"
        rows.append([
            one_line(d.group, 36), one_line(d.figure), _side(d.mean_a, d.stdev_a, d.n_a),
            _side(d.mean_b, d.stdev_b, d.n_b), change, _verdict(d),
        ])  # fmt: skip
    return rows


def _json_rows(diffs: list[FigureDiff]) -> list[dict]:
    return [dict(vars(d), verdict=d.verdict, better=d.better) for d in diffs]


def _by_machine(args: argparse.Namespace) -> int:
    prog = "llmbench compare --by machine"
    try:
        store = open_store(args)
        comparisons = compare_machines(store, args.refs, args.against)
    except StoreError as exc:
        return fail(prog, str(exc))
    if args.json:
        sys.stdout.write(json_text([
            {"a": c.a.label, "b": c.b.label, "n_a": len(c.a.records), "n_b": len(c.b.records),
             "diffs": _json_rows(c.diffs)}
            for c in comparisons
        ]))  # fmt: skip
        return 0
    a = comparisons[0].a
    print(f"A = machine {one_line(a.label)} ({len(a.records)} runs)")
    for note in condition_notes(a.records, [], ("A", "-")):
        print(f"note: {one_line(note)}")
    for c in comparisons:
        print(f"\nB = machine {one_line(c.b.label)} ({len(c.b.records)} runs)")
        for note in condition_notes([], c.b.records, ("-", "B")):
            print(f"note: {one_line(note)}")
        if c.diffs:
            print(table(_rows(c.diffs)))
        else:
            print("no figures in common (no successful warm runs of the same model and prompt)")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.by == "machine":
        return _by_machine(args)
    if args.against:
        return fail("llmbench compare", "--against needs --by machine")
    if len(args.refs) != 2:
        got = len(args.refs)
        return fail("llmbench compare", f"give two things to compare, A and B (got {got})")
    try:
        store = open_store(args)
        a, b = resolve_side(store, args.refs[0]), resolve_side(store, args.refs[1])
        notes = machine_notes(record_machines(a.records, store), record_machines(b.records, store))
        notes += condition_notes(a.records, b.records)
    except StoreError as exc:
        return fail("llmbench compare", str(exc))
    diffs = compare_records(a.records, b.records, group_key(a, b))
    if args.json:
        sys.stdout.write(json_text(_json_rows(diffs)))
        return 0
    if not diffs:
        return fail(
            "llmbench compare",
            "no successful warm runs (not warm-up, not cold) with figures on either side",
        )
    print(f"A = {a.kind} {one_line(a.label, 40)} ({len(a.records)} runs)")
    print(f"B = {b.kind} {one_line(b.label, 40)} ({len(b.records)} runs)")
    for note in notes:
        print(f"note: {one_line(note)}")
    print(table(_rows(diffs)))
    return 0
