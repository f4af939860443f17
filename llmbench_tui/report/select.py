"""Which runs a report covers: the selection syntax of ``compare`` (run ids, session ids or
prefixes, ``model:NAME``) and the filters of ``history`` (``--model``, ``--since``...), or the
runs of an export file.

The records come back self-contained (``exporting.self_contained``: each with its ``machine``
and ``session`` blocks), exactly what ``llmbench export --format json`` writes for the same
selection, so the report and the export cannot differ in what they were built from.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmbench_tui.compare import resolve_side
from llmbench_tui.exporting import read_records, self_contained
from llmbench_tui.safe_text import one_line
from llmbench_tui.store import RunQuery, RunStore, StoreError

_FILTERS = ("search", "model", "backend", "host", "status", "since", "until", "session_id",
            "machine", "min_score")  # fmt: skip


def has_filters(query: RunQuery) -> bool:
    return any(getattr(query, name) not in (None, "") for name in _FILTERS)


def describe_selection(refs: list[str], query: RunQuery) -> str:
    """One line saying what was selected, for the report's header."""
    parts = [one_line(r) for r in refs]
    parts += [f"--{name.replace('_id', '').replace('_', '-')} {one_line(getattr(query, name))}"
              for name in _FILTERS if getattr(query, name) not in (None, "")]  # fmt: skip
    if query.limit is not None:
        parts.append(f"--limit {query.limit}")
    return " ".join(parts)


def select(store: RunStore, refs: list[str], query: RunQuery) -> list[dict[str, Any]]:
    """The runs named by ``refs`` (each a run, a session or ``model:NAME``; all of them when
    none is given) that also match ``query``'s filters, oldest first, self-contained.
    ``StoreError`` names a ref that matches nothing, or says that nothing matched."""
    if refs:
        ids: dict[str, None] = {}
        for ref in refs:
            for r in resolve_side(store, ref).records:
                ids.setdefault(r["id"], None)
        pool = store.query(replace(query, limit=None, sort="started_at"))
        by_id = {r["id"]: r for r in pool}
        records = [by_id[i] for i in ids if i in by_id]
        records.sort(key=lambda r: str(r.get("started_at") or ""))
        if query.limit is not None:
            records = records[: query.limit]
    else:
        records = store.query(replace(query, sort=query.sort or "started_at"))
    if not records:
        raise StoreError("no runs match this selection" if store.count()
                         else f"no runs stored yet in {store.location}")  # fmt: skip
    return self_contained(records, store, sessions=True)


def from_export(path: str) -> list[dict[str, Any]]:
    """The runs of an export (or database) file, each with its session and machine blocks."""
    from llmbench_tui.telemetry.environment import machine_block

    runs, sessions, _ = read_records(path)
    by_id = {s.get("id"): s for s in sessions if isinstance(s, dict)}
    out = []
    for r in runs:
        r = dict(r)
        session = by_id.get(r.get("session_id"))
        if isinstance(session, dict):
            r.setdefault("session", session)
            if not isinstance(r.get("machine"), dict):
                block = machine_block(session.get("environment"))
                if block:
                    r["machine"] = block
        out.append(r)
    if not out:
        raise StoreError(f"{path} holds no runs")
    return out
