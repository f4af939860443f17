"""What the result strip adds under the summary for some sessions: the per-turn tables of
conversations (``engine.conversation.conversation_tables``), the judge summary
(``engine.judge_runs.judge_rows``), and for a workload session the sweep or grid chart with the
llama-bench table (and a LocalScore session's score lines). Hidden (and the strip keeps its bar
charts) when a session has none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from ...engine.conversation import conversation_tables
from ...engine.judge_runs import judge_rows
from ...engine.localscore import summary_lines
from ...quality.verdicts import JUDGE_TITLE
from ...safe_text import inert
from ..turns import text_table


class SessionExtras(VerticalScroll):
    """Conversation tables, judge summary, sweep chart and llama-bench table of a session."""

    DEFAULT_CSS = """
    SessionExtras { display: none; height: 1fr; }
    SessionExtras.-shown { display: block; }
    SessionExtras > Static { height: auto; margin-bottom: 1; }
    SessionExtras > .extras-notes { color: $text-muted; margin-bottom: 0; }
    SessionExtras > SeriesChart { height: 12; }
    """

    def parts(self, records: Sequence[Any], plan: Any = None) -> list[Widget]:
        out: list[Widget] = []
        from ..sweep_chart import (
            is_workload_session,
            llamabench_table_rows,
            record_dicts,
            sweep_parts,
        )

        if is_workload_session(records):
            workload = getattr(plan, "workload", None)
            chart, notes = sweep_parts(records, getattr(workload, "slos", None))
            out.append(chart)
            if notes:
                out.append(Static(inert("\n".join(notes)), classes="extras-notes"))
            if rows := llamabench_table_rows(list(records)):
                out.append(Static(text_table("llama-bench", rows)))
            if getattr(workload, "localscore", False):
                lines = summary_lines(record_dicts(records), workload.skipped)
                out.append(Static(inert("\n".join(lines)), classes="localscore"))
        for title, rows in conversation_tables(list(records)):
            out.append(Static(text_table(title, rows), classes="turn-table"))
        if rows := judge_rows(list(records)):
            out.append(Static(text_table(JUDGE_TITLE, rows), classes="judge-table"))
        return out

    def show(self, records: Sequence[Any], plan: Any = None) -> None:
        self.remove_children()
        parts = self.parts(records, plan)
        if parts:
            self.mount_all(parts)
        self.set_class(bool(parts), "-shown")
        if self.parent is not None:
            self.parent.set_class(bool(parts), "-extras")
