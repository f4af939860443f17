"""Run conditions on the command line: ``--wait-idle``, ``--telemetry-url`` and the idle check
before a ``--batch`` session (``telemetry.conditions`` does the measuring)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ..suite import load_suite

if TYPE_CHECKING:
    from ..engine.plan import Plan
    from .common import ArgumentAdder



def add_condition_flags(p: ArgumentAdder) -> None:
    """``--wait-idle[=SECONDS]`` and ``--telemetry-url URL`` (called by ``cli.build_parser``)."""
    from ..telemetry.conditions import DEFAULT_WAIT_S

    def seconds(text: str) -> float:
        value = float(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    p.add_argument("--wait-idle", nargs="?", const=DEFAULT_WAIT_S, type=seconds,
                   metavar="SECONDS", help="before the session, wait up to SECONDS (default "
                   f"{DEFAULT_WAIT_S:g}) for other processes to leave the CPU idle; write "
                   "--wait-idle=S before a suite file")
    p.add_argument("--telemetry-url", action="append", default=[], metavar="URL",
                   help="a Prometheus endpoint to scrape during every run (node_exporter, DCGM "
                   "exporter, llama-server --metrics); repeatable, added to the suite's",
                   )  # fmt: skip


def telemetry_urls(args: argparse.Namespace) -> dict[str, str | None]:
    """``{url: host}``: the suite's ``telemetry_urls`` (a table ties URLs to one model host)
    plus every ``--telemetry-url`` (for every run)."""
    urls: dict[str, str | None] = {}
    if getattr(args, "suite", None):
        suite_urls = load_suite(args.suite).telemetry_urls
        if isinstance(suite_urls, dict):
            urls.update({u: host for host, us in suite_urls.items() for u in us})
        else:
            urls.update(dict.fromkeys(suite_urls))
    urls.update(dict.fromkeys(getattr(args, "telemetry_url", None) or []))
    return urls


def check_idle(args: argparse.Namespace, plan: Plan) -> Any:
    """Before the session: say when the machine is busy with other work (and, with
    ``--wait-idle``, wait for it to calm down first); the session's environment records it."""
    from ..telemetry import conditions
    from ..telemetry.sampler import ProcessTarget

    server = args.server_pid or os.environ.get("LLMBENCH_SERVER_PID")
    targets = {ProcessTarget.for_backend(m.backend, m.host, server) for m in plan.models}
    wait = getattr(args, "wait_idle", None)
    told = [-10.0]

    def on_busy(b: Any, waited: float) -> None:  # one line every 10 s, not every second
        if waited - told[0] >= 10:
            told[0] = waited
            print(f"llmbench: {b.sentence()}; waiting up to {wait:g} s for quiet", file=sys.stderr)

    if wait:
        busy, waited = conditions.wait_idle(targets, wait, on_busy=on_busy)
    else:
        busy, waited = conditions.measure(targets), 0.0
    if not busy.idle:
        after = f" after waiting {waited:.0f} s" if wait else ""
        hint = "" if wait else " (--wait-idle waits for quiet)"
        print(f"llmbench: warning: {busy.sentence()}{after}: figures measured now may not be "
              f"comparable{hint}", file=sys.stderr)  # fmt: skip
    return busy
