"""``GET /report``: the HTML report (``llmbench report``) of the runs ``/api/runs`` would list.

Read-only, and the selection is ``/api/runs``'s own parameters parsed by ``api.parse_runs_query``
(so the page and the API cannot disagree about a filter), except that without ``limit``,
``offset`` or ``page`` the report covers every matching run, not one page of 50. The page is the
file ``llmbench report --html`` writes; its Content-Security-Policy is sent as a header too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmbench_tui.exporting import self_contained
from llmbench_tui.report import build, render
from llmbench_tui.report.html import content_security_policy
from llmbench_tui.report.select import describe_selection
from llmbench_tui.store import Store, StoreError
from llmbench_tui.web import api


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    body: str
    content_type: str  # "text/html" or "text/plain" (an error, one sentence)
    csp: str | None = None


def report_page(store: Store, params: Mapping[str, Sequence[str]]) -> Page:
    try:
        query, offset, _ = api.parse_runs_query(params)
    except api.BadParameter as exc:
        return Page(400, f"{exc}\n", "text/plain")
    if not {"limit", "offset", "page"} & set(params):
        query.limit = None
    try:
        records = store.query(query)[offset:]
        if not records:
            return Page(404, "no runs match this selection\n", "text/plain")
        records = self_contained(records, store, sessions=True)
    except StoreError as exc:
        return Page(503, f"the run database cannot be read: {exc}\n", "text/plain")
    data = build(records, selection=describe_selection([], query) or "all stored runs")
    return Page(200, render(data), "text/html", content_security_policy())
