"""The report's content as plain data, built from run records only.

Pure: records in (as ``llmbench export --format json`` writes them: each with its ``machine``
and ``session`` blocks), a JSON-ready dict out — so a report can be made on any machine from an
export, and the HTML (``report.html``) and the charts (``report.charts``) only lay it out.

Every figure comes from the code that computes it for the terminal: the summary groups are
``engine.stats.summarize`` (the very ``Stats`` the ``--batch`` table and the JSON export's
summary show), the cells ``engine.report.cell``, the notes ``engine.report.footnotes`` and
``compare.condition_notes``, sweeps ``engine.goodput``, grids ``engine.report.llamabench_results``.
What is new here is only the shape a chart needs (``report.sections``).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from llmbench_tui.compare import condition_notes
from llmbench_tui.engine.report import (
    COLUMNS,
    SCORE_COLUMN,
    cell,
    footnotes,
    group_label,
    workload_notes,
)
from llmbench_tui.engine.stats import GroupSummary, counted, summarize
from llmbench_tui.report import sections
from llmbench_tui.report.sections import as_object
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import get_path

# Client and server figures side by side in the summary table: (header, path, format).
TABLE_COLUMNS = (*COLUMNS, SCORE_COLUMN)


def _machines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each machine block once (by id), with how many runs it holds, most runs first."""
    from llmbench_tui.telemetry.environment import machine_line

    seen: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for r in records:
        block = r.get("machine")
        if isinstance(block, dict):
            key = str(block.get("machine_id") or machine_line(block))
            seen.setdefault(key, block)
            counts[key] += 1
    return [
        {"line": one_line(machine_line(seen[k])), "runs": n, "block": seen[k]}
        for k, n in counts.most_common()
    ]


def _sessions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each session once: id, start, the plan's options (what was run, with which options)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        sid = r.get("session_id")
        if not isinstance(sid, str) or sid in out:
            continue
        session = as_object(r.get("session"))
        plan = as_object(session.get("plan"))
        out[sid] = {
            "id": sid,
            "started_at": session.get("started_at") or r.get("started_at"),
            "plan": plan,
        }
    return list(out.values())


def _counts(records: list[dict[str, Any]]) -> dict[str, int]:
    status = Counter(str(r.get("status")) for r in records)
    return {
        "runs": len(records),
        "counted": len(counted(records)),
        "ok": status.get("ok", 0),
        "failed": len(records) - status.get("ok", 0),
        "warmup": sum(bool(r.get("warmup")) for r in records),
        "cold": sum(bool(r.get("cold")) for r in records),
    }


def _warnings(records: list[dict[str, Any]], groups: list[GroupSummary]) -> list[str]:
    """Everything that affects a figure, said once: busy machine and implausible figures
    (``condition_notes``), cold runs, cache reuse, the table's footnotes, workload flags."""
    notes = condition_notes(records, [], ("the selection", "-"))
    cold = sum(bool(r.get("cold")) for r in records)
    if cold:
        notes.append(f"{cold} cold runs (model loaded first): reported in groups of their own, "
                     "never averaged with warm runs")  # fmt: skip
    cached = [r for r in records if get_path(r, "workload.cached_tokens")]
    if cached:
        notes.append(f"{len(cached)} runs reused prompt tokens from the server's cache "
                     "(workload.cached_tokens): their prefill rates are not cold prefill")
    repeats = sum(get_path(r, "workload.cache_role") == "repeat" for r in records)
    if repeats:
        notes.append(f"{repeats} prefix-cache repeat runs are their own groups (marked cached)")
    notes += footnotes(groups) + workload_notes(records)
    return _alike_once([one_line(n) for n in dict.fromkeys(notes)])


def _alike_once(notes: list[str]) -> list[str]:
    """Notes that differ only in their numbers (``other processes used 81 %`` ... ``93 %``)
    once each, with how many more there were: every kind is said, none drowns the rest."""
    kinds: dict[str, list[str]] = {}
    for note in notes:
        kinds.setdefault(re.sub(r"\d+(?:\.\d+)?", "#", note), []).append(note)
    return [alike[0] + (f" (and {len(alike) - 1} more like it)" if len(alike) > 1 else "")
            for alike in kinds.values()]  # fmt: skip


def _summary(groups: list[GroupSummary]) -> list[dict[str, Any]]:
    """One row per group: its figures (``Stats.to_json``) and the cells the table shows."""
    rows = []
    for g in groups:
        rows.append({
            "label": group_label(g), "model": g.model, "backend": g.backend, "host": g.host,
            "prompt_id": g.prompt_id, "cold": g.cold, "concurrency": g.concurrency,
            "n_runs": g.n_runs, "n_ok": g.n_ok,
            "figures": {k: v.to_json() for k, v in g.figures.items()},
            "cells": {path: cell(g.figures.get(path), fmt, g.n_ok)
                      for _, path, fmt in TABLE_COLUMNS},
        })  # fmt: skip
    return rows


def build(records: list[dict[str, Any]], *, title: str = "llmbench report", selection: str = "",
          against: tuple[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole report as JSON-ready data (see the module docstring). ``against``: a baseline
    (its name and runs) the selected runs are compared with, as ``compare A B`` does."""
    records = sorted(records, key=lambda r: str(r.get("started_at") or ""))
    groups = summarize(records)
    dates = [str(r["started_at"]) for r in records if r.get("started_at")]
    return {
        "title": title,
        "selection": selection,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "span": [dates[0], dates[-1]] if dates else None,
        "counts": _counts(records),
        "models": sorted({str(r.get("model_spec") or r.get("model")) for r in records}),
        "sessions": _sessions(records),
        "machines": _machines(records),
        "warnings": _warnings(records, groups),
        "columns": [[h, p] for h, p, _ in TABLE_COLUMNS],
        "summary": _summary(groups),
        "distributions": sections.distributions(records),
        "decision": sections.decision(records),
        "sweeps": sections.concurrency_sweeps(records),
        "grid": sections.grid(records),
        "conversations": sections.conversations(records),
        "quality": sections.quality(records),
        "machine_comparisons": sections.machine_comparisons(records),
        "baseline_comparison": sections.against_baseline(*against, records) if against else None,
    }
