"""Regex searches over answers, with a time limit that holds.

Python's ``re`` backtracks, and a pattern such as ``(a+)+$`` takes exponential time on a short
input like ``"a" * 40 + "!"``: capping the answer's size would not help, and a search running in
C cannot be interrupted by a signal or a thread. So the searches of ``regex`` and ``structure``
checks run in a sandboxed subprocess with a wall-clock limit (``REGEX_TIMEOUT_S`` per batch);
the answer is searched whole, whatever its size. The worker reports each search as soon as it
is done; when one overruns, the process is killed, that pattern is reported as timed out and
the worker starts again on the patterns after it, so one bad pattern costs only itself.

All patterns of one answer share one subprocess (about 30 ms on a desktop).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .sandbox import run_python

REGEX_TIMEOUT_S = 5.0

_WORKER = r"""
import json, re, sys
with open("patterns.json", encoding="utf-8") as f:
    patterns = json.load(f)
with open("answer.txt", encoding="utf-8", errors="surrogatepass") as f:
    text = f.read()
for pattern, flags in patterns:
    m = re.compile(pattern, flags).search(text)
    sys.stdout.write(f"{m.start() if m else -1}\n")
    sys.stdout.flush()
"""


@dataclass(frozen=True)
class Search:
    """One search result: ``position`` of the first match (``-1``: no match), or ``None`` with
    the reason in ``error`` when the search could not finish."""

    position: int | None
    error: str = ""


def search_all(text: str, patterns: Sequence[tuple[str, int]]) -> list[Search]:
    """Search ``text`` for each ``(pattern, re flags)``; patterns are assumed to compile (check
    specs compile them when loaded)."""
    results: list[Search] = []
    remaining = list(patterns)
    while remaining:
        run = run_python(
            _WORKER,
            timeout_s=REGEX_TIMEOUT_S,
            files={"patterns.json": json.dumps(remaining), "answer.txt": text},
        )
        done = [Search(int(line)) for line in run.stdout.split()]
        results.extend(done[: len(remaining)])
        remaining = remaining[len(done) :]
        if not remaining:
            break
        if run.timed_out:
            why = (
                f"regex search did not finish within {REGEX_TIMEOUT_S:g} s"
                " (catastrophic backtracking?)"
            )
        else:
            why = f"regex search failed: {run.death() or run.last_stderr_line()}"
        results.append(Search(None, why))
        remaining = remaining[1:]
    return results
