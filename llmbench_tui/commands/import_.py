"""``llmbench import PATH``: merge another database or a JSON/JSONL export into this one.

Ids are the engine's uuids, so a run seen before (imported twice, or from a machine that already
merged it) is recognised and skipped instead of duplicated.

Sessions come first: from a database file, or from the ``session`` block each run of a
self-contained JSON/JSONL export carries. Stored before the runs, they give every run its machine
(``Store.add_runs``), so a merged database compares hardware; a session already present is kept
as it is.
"""

from __future__ import annotations

import argparse

from llmbench_tui.commands.common import add_data_dir, fail, open_store
from llmbench_tui.exporting import ExportError, read_records
from llmbench_tui.store import StoreError


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Merge runs from another machine.")
    parser.add_argument("path", help="a history.json database or a JSON/JSONL export")
    add_data_dir(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        store = open_store(args)
        runs, sessions, series = read_records(args.path)
        if not runs:
            return fail("llmbench import", f"{args.path} holds no run records")
        valid = [r for r in runs if isinstance(r.get("id"), str) and r["id"]]
        restored = store.add_sessions(sessions)
        added, skipped = store.add_runs(valid, series)
    except (StoreError, ExportError) as exc:
        return fail("llmbench import", str(exc))
    bad = len(runs) - len(valid)
    print(
        f"added {added}, skipped {skipped} already present"
        + (f", {bad} without an id" if bad else "")
        + (f"; {restored} session{'s' if restored != 1 else ''} restored" if restored else "")
    )
    return 0
