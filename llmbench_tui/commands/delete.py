"""``llmbench delete ID...``: remove runs (and their series), after a confirmation."""

from __future__ import annotations

import argparse
import sys

from llmbench_tui.commands.common import add_data_dir, fail, open_store
from llmbench_tui.safe_text import one_line
from llmbench_tui.store import StoreError


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Delete stored runs.")
    parser.add_argument("ids", nargs="+", metavar="ID", help="run ids or unambiguous prefixes")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_data_dir(parser)
    return parser


def main(args: argparse.Namespace) -> int:
    prog = "llmbench delete"
    try:
        store = open_store(args)
        runs = [store.get_run(ref) for ref in args.ids]
    except StoreError as exc:
        return fail(prog, str(exc))
    if not args.yes:
        for r in runs:
            when, model = one_line(r.get("started_at"), 19), one_line(r.get("model"), 30)
            print(f"  {one_line(r['id'])[:12]}  {when}  {model}")
        print(f"delete these {len(runs)} runs? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted")
            return 1
    try:
        deleted = store.delete([r["id"] for r in runs])
    except StoreError as exc:
        return fail(prog, str(exc))
    print(f"deleted {deleted} runs")
    return 0
