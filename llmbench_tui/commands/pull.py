"""``llmbench pull ollama:NAME[@HOST]``: download a model into Ollama with a progress line.

On a terminal the line is redrawn in place; in a pipe a line is printed each time the status
changes or another tenth of the download is done, so a log stays short. Ctrl-C stops the pull
(Ollama keeps the layers it finished and resumes from them next time).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from llmbench_tui.backends.base import BackendError
from llmbench_tui.backends.ollama_models import PullProgress, pull
from llmbench_tui.commands.common import fail
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import ModelSpec

PROG = "llmbench pull"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Pull a model into Ollama, with progress.")
    p.add_argument("spec", metavar="ollama:NAME[@HOST]")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        spec = ModelSpec.parse(args.spec)
    except ValueError as exc:
        return fail(PROG, str(exc), 2)
    if spec.backend != "ollama":
        return fail(PROG, f"only Ollama models can be pulled, not {spec.label!r}", 2)
    tty = sys.stdout.isatty()
    shown: dict[str, object] = {"status": None, "tenth": -1}

    def show(progress: PullProgress) -> None:
        line = one_line(progress.line())
        tenth = int(progress.fraction * 10)
        if tty:
            sys.stdout.write("\r\x1b[2K" + line)
            sys.stdout.flush()
        elif progress.status != shown["status"] or tenth != shown["tenth"]:
            print(line, flush=True)
        shown.update(status=progress.status, tenth=tenth)

    try:
        done = asyncio.run(pull(spec.name, spec.host, show))
    except KeyboardInterrupt:
        print()
        return fail(PROG, f"pull of {spec.name!r} cancelled; pulling again resumes it", 130)
    except BackendError as exc:
        if tty:
            print()
        return fail(PROG, str(exc))
    if tty:
        print()
    print(f"pulled {one_line(spec.name)} ({done.total / 1024 / 1024:,.1f} MiB)")
    return 0
