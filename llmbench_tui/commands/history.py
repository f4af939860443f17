"""``llmbench history``: the run list, newest first, with the same filters as the TUI's history."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmbench_tui.commands.common import add_filters, fail, json_text, open_store, query_from, table
from llmbench_tui.formatting import fmt_num, local_time
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import get_path
from llmbench_tui.store import StoreError


def run_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["time", "id", "model", "prompt", "status", "TTFT s", "tok/s", "tokens", "score"]]
    for r in records:
        rows.append([
            local_time(r.get("started_at")), one_line(r.get("id"))[:8],
            one_line(r.get("model"), 24),
            one_line(r.get("prompt"), 32), one_line(r.get("status"), 9),
            fmt_num(get_path(r, "timings.ttft_s")), fmt_num(get_path(r, "timings.decode_tok_s")),
            fmt_num(get_path(r, "tokens.output")), fmt_num(get_path(r, "quality.score")),
        ])  # fmt: skip
    return rows


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="List stored runs, newest first.")
    add_filters(parser, default_limit=50)
    parser.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    parser.add_argument(
        "--prune-series-older-than", type=float, metavar="DAYS",
        help="drop telemetry series of runs older than DAYS (run records are kept)",
    )  # fmt: skip
    return parser


def main(args: argparse.Namespace) -> int:
    prog = "llmbench history"
    try:
        store = open_store(args)
        if args.prune_series_older_than is not None:
            days = args.prune_series_older_than
            print(f"dropped {store.prune_series(days)} telemetry series older than {days:g} days")
            return 0
        records = store.query(query_from(args))
    except StoreError as exc:
        return fail(prog, str(exc))
    if args.json:
        sys.stdout.write(json_text(records))
    elif not records:
        print("no runs match" if store.count() else f"no runs stored yet in {store.location}")
    else:
        print(table(run_rows(records)))
        total = store.count()
        if len(records) < total:
            print(f"{len(records)} runs shown ({total} stored)")
    return 0
