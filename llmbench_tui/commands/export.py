"""``llmbench export``: stored runs as JSON, JSONL, CSV or Markdown, with the history filters."""

from __future__ import annotations

import argparse

from llmbench_tui.commands.history import add_filters, fail, open_store, query_from
from llmbench_tui.exporting import FORMATS, ExportError, write_export
from llmbench_tui.store import StoreError


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Export stored runs.")
    parser.add_argument("--format", choices=FORMATS, default="jsonl")
    parser.add_argument("--out", help="file to write (default: standard output)")
    add_filters(parser, default_limit=None)
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        records = open_store(args).query(query_from(args))
        write_export(records, args.format, args.out)
    except (StoreError, ExportError) as exc:
        return fail("llmbench export", str(exc))
    if args.out:
        print(f"exported {len(records)} runs to {args.out}")
    return 0
