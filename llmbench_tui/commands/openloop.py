"""The open-loop flags of ``llmbench --batch`` and what it prints for an open-loop session
(``engine.arrivals``, ``engine.openloop``, ``engine.saturation``; docs/load.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..engine.openloop import gguf_note
from ..engine.report import render_markdown, render_text
from ..engine.saturation import report_lines
from ..safe_text import strip_controls

if TYPE_CHECKING:
    from .common import ArgumentAdder


def add_load_flags(p: ArgumentAdder) -> None:
    """The open-loop flags (``engine.arrivals``, ``engine.openloop``; called by
    ``cli.build_parser``)."""

    def positive(text: str) -> float:
        value = float(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    p.add_argument(
        "--rate",
        metavar="R_OR_LIST",
        help="open loop: requests per second sent on a schedule, whether or not "
        "earlier ones ended; a list (1,2,4,8) sweeps the rates; -c is then a cap",
    )
    p.add_argument(
        "--arrival",
        metavar="LAW",
        help="open loop: poisson (default), constant or gamma:SHAPE (burstiness: "
        "<1 burstier, >1 smoother than Poisson)",
    )
    p.add_argument(
        "--duration", type=positive, metavar="S", help="open loop: seconds of schedule per rate"
    )
    p.add_argument("--requests", type=int, metavar="N", help="open loop: requests per rate")
    p.add_argument(
        "--arrival-seed",
        type=int,
        metavar="N",
        help="open loop: the schedule's seed (stored with the session; replays it)",
    )
    p.add_argument("--workers", type=int, metavar="N",
                   help="open loop: client processes sending the requests (default: from the "
                   "load; 1 for the in-process GGUF engine)")  # fmt: skip


def open_loop_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rate": getattr(args, "rate", None),
        "arrival": getattr(args, "arrival", None),
        "duration": getattr(args, "duration", None),
        "requests": getattr(args, "requests", None),
        "seed": getattr(args, "arrival_seed", None),
        "workers": getattr(args, "workers", None),
    }


def open_loop_report(workload: Any, records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Text and Markdown lines: the schedule, the rate table, the saturation point, every
    client-bound level and dead worker."""
    table, lines = report_lines(records, workload.slos)
    if not table:
        return [], []
    load = workload.load
    head = (f"open loop: {load.arrival.text} arrivals, "
            + (f"{load.duration_s:g} s" if load.duration_s else f"{load.requests} requests")
            + " per rate" + (f", at most {load.cap} in flight" if load.cap else "")
            + f", seed {load.seed}")  # fmt: skip
    if note := gguf_note(records):
        lines.append(note)
    rows = [[strip_controls(c) for c in row] for row in table]
    text = ["", head, render_text(rows), *lines]
    md = ["", head, "", render_markdown(rows), "", *(f"- {n}" for n in lines)]
    return text, md
