"""``llmbench export``: stored runs as JSON, JSONL, CSV or Markdown, with the history filters.

Every field is untrusted (model output, server errors, whatever ``llmbench import`` read). JSON
and JSONL stay lossless: orjson escapes C0 controls and ``inert_json`` the rest, so they are inert
on a terminal yet read back unchanged. CSV and Markdown are read by people (a terminal, a
spreadsheet, a pull request), so every string in them goes through ``strip_controls`` first.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmbench_tui.commands.common import add_filters, fail, inert_json, open_store, query_from
from llmbench_tui.exporting import FORMATS, ExportError, render, self_contained, write_export
from llmbench_tui.safe_text import strip_controls
from llmbench_tui.store import StoreError

_LOSSLESS = ("json", "jsonl")


def inert(value: Any) -> Any:
    """``value`` with every string in it, keys included, passed through ``strip_controls``."""
    if isinstance(value, str):
        return strip_controls(value)
    if isinstance(value, dict):
        return {inert(str(k)): inert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [inert(v) for v in value]
    return value


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Export stored runs.")
    parser.add_argument("--format", choices=FORMATS, default="jsonl")
    parser.add_argument("--out", help="file to write (default: standard output)")
    add_filters(parser, default_limit=None)
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        store = open_store(args)
        records = self_contained(
            store.query(query_from(args)), store, sessions=args.format in _LOSSLESS
        )
        if args.format not in _LOSSLESS:
            records = [inert(r) for r in records]
        if args.out in (None, "-"):
            text = render(records, args.format)
            sys.stdout.write(inert_json(text) if args.format in _LOSSLESS else text)
        else:
            write_export(records, args.format, args.out)
    except (StoreError, ExportError) as exc:
        return fail("llmbench export", str(exc))
    if args.out not in (None, "-"):
        print(f"exported {len(records)} runs to {args.out}")
    return 0
