"""``llmbench report``: the self-contained HTML report of stored runs, and its charts as SVG.

The selection is ``compare``'s (run ids, session ids or prefixes, ``model:NAME``; several) and
``history``'s filters, or ``--input FILE`` (an export: a report can be made on any machine).
``--against`` adds the selection read against a baseline, as the regression gate reads it.
"""

from __future__ import annotations

import argparse

from llmbench_tui.commands.common import add_filters, fail, open_store, query_from
from llmbench_tui.exporting import ExportError
from llmbench_tui.store import StoreError


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Write a self-contained HTML report (opens offline, no request leaves the "
        "page) and/or each chart as an SVG file.",
    )
    parser.add_argument(
        "refs", nargs="*", metavar="SESSION_OR_FILTER",
        help="run id, session id (or unambiguous prefix) or model:NAME (several allowed); "
        "none: every run matching the filters",
    )  # fmt: skip
    parser.add_argument("--html", metavar="OUT.html", help="the report file to write")
    parser.add_argument("--svg", metavar="DIR", help="write each chart as DIR/<chart>.svg")
    parser.add_argument("--input", metavar="FILE",
                        help="report on the runs of an export (JSON/JSONL) or database file "
                        "instead of the store")  # fmt: skip
    parser.add_argument("--against", metavar="SESSION_OR_FILE",
                        help="also compare the selection (B) with a baseline (A): a stored "
                        "session or an export file, as the regression gate reads --baseline")
    parser.add_argument("--title", default="llmbench report", help="the report's title")
    add_filters(parser, default_limit=None)
    return parser


def main(args: argparse.Namespace) -> int:
    from llmbench_tui.report import ReportError, build, write_html, write_svgs
    from llmbench_tui.report.select import describe_selection, from_export, has_filters, select

    prog = "llmbench report"
    if not args.html and not args.svg:
        return fail(prog, "say what to write: --html OUT.html and/or --svg DIR", 2)
    query = query_from(args)
    try:
        if args.input:
            if args.refs or has_filters(query):
                return fail(prog, "--input takes the whole file: no SESSION_OR_FILTER or "
                            "filter options with it", 2)  # fmt: skip
            records, selection = from_export(args.input), f"export file {args.input}"
        else:
            records = select(open_store(args), args.refs, query)
            selection = describe_selection(args.refs, query)
        against = None
        if args.against:
            from llmbench_tui.compare import load_baseline

            store = None if args.input else open_store(args)
            against = (args.against, load_baseline(args.against, store))
        data = build(records, title=args.title, selection=selection, against=against)
        if args.html:
            size = write_html(args.html, data)
            print(f"wrote {args.html} ({len(records)} runs, {size / 1024:.0f} KiB)")
        if args.svg:
            paths = write_svgs(args.svg, data)
            print(f"wrote {len(paths)} charts to {args.svg}")
    except (StoreError, ExportError, ReportError) as exc:
        return fail(prog, str(exc))
    return 0
