"""The regression gate's report: both sides (this session against ``--baseline``) as HTML.

With ``--report-html PATH`` the gate writes it, passed or failed; without, a failed gate prints
the ``llmbench report`` command that writes it (when the session was stored), so a reviewer of a
stopped pull request can see more than the REGRESSION lines.
"""

from __future__ import annotations

import shlex
from typing import Any

from llmbench_tui.exporting import self_contained
from llmbench_tui.report import ReportError, build, write_html
from llmbench_tui.safe_text import one_line


def gate_report(path: str | None, baseline_ref: str | None, session_id: str,
                current: list[dict[str, Any]], baseline: list[dict[str, Any]], *, failed: bool,
                store: Any) -> list[str]:  # fmt: skip
    """Write the report (``path``) or say how to; the lines to print."""
    if not path:
        if not failed or store is None:
            return []
        against = f" --against {shlex.quote(baseline_ref)}" if baseline_ref else ""
        return [f"both sides as a report: llmbench report {shlex.quote(session_id)}{against} "
                "--html gate-report.html"]  # fmt: skip
    records = self_contained(current, store) if store is not None else current
    title = "llmbench regression gate: " + ("FAILED" if failed else "passed")
    versus = (baseline_ref, baseline) if baseline_ref else None
    try:
        write_html(path, build(records, title=title, selection=f"session {session_id}",
                               against=versus))  # fmt: skip
    except ReportError as exc:
        return [f"warning: {one_line(exc)}"]
    return [f"both sides as a report: {one_line(path)}"]
