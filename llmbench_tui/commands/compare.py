"""``llmbench compare A B``: two runs, two sessions or two models, every figure side by side.

B is read against A: the change is ``(B - A) / A``, and the last column says whether it is
larger than the repetitions' noise (Welch's t-test, p < 0.05) — one fast run is not a speed-up.
Warm-up and cold runs are left out (``compare.counted``). Every printed field is record text,
untrusted, so it goes through ``clean``.
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
from llmbench_tui.compare import FigureDiff, compare_records, group_key, resolve_side
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
        description="Compare two runs, two sessions or two models (B against A).",
    )
    parser.add_argument("a", help="run id, session id (or unambiguous prefix) or model:NAME")
    parser.add_argument("b", help="same kinds as A")
    parser.add_argument("--json", action="store_true", help="the comparison as JSON")
    add_data_dir(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        store = open_store(args)
        a, b = resolve_side(store, args.a), resolve_side(store, args.b)
    except StoreError as exc:
        return fail("llmbench compare", str(exc))
    diffs = compare_records(a.records, b.records, group_key(a, b))
    if args.json:
        rows = [dict(vars(d), verdict=d.verdict, better=d.better) for d in diffs]
        sys.stdout.write(json_text(rows))
        return 0
    if not diffs:
        return fail(
            "llmbench compare",
            "no successful warm runs (not warm-up, not cold) with figures on either side",
        )
    print(f"A = {a.kind} {one_line(a.label, 40)} ({len(a.records)} runs)")
    print(f"B = {b.kind} {one_line(b.label, 40)} ({len(b.records)} runs)")
    rows = [["group", "figure", "A", "B", "change", "vs noise"]]
    for d in diffs:
        change = f"{d.change_pct:+.1f}%" if d.change_pct is not None else "-"
        rows.append([
            one_line(d.group, 36), one_line(d.figure), _side(d.mean_a, d.stdev_a, d.n_a),
            _side(d.mean_b, d.stdev_b, d.n_b), change, _verdict(d),
        ])  # fmt: skip
    print(table(rows))
    return 0
