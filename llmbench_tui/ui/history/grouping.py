"""Grouped rows of the history table: the runs of a session, or of a model on one backend and host.

Pure functions over stored records (no Textual): what a group is, which group a run belongs to,
and the ``mean ± stdev (n=N)`` a grouped cell shows. A grouped figure is a mean over the group's
counted runs only (``engine.stats.counted``: warm-up, cold and failed runs left out), the same
rule as every other statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...engine.report import cell
from ...engine.stats import counted, describe
from ...formatting import short_host
from ...schema import get_path

if TYPE_CHECKING:
    from .columns import Column

GROUP_MODES = (None, "session", "model")


@dataclass
class Group:
    """One grouped row: the runs of a session or of a model (on one backend and host)."""

    key: str
    label: str
    records: list[dict[str, Any]] = field(default_factory=list)


def group_key(record: dict[str, Any], mode: str) -> tuple[str, str]:
    if mode == "session":
        sid = str(record.get("session_id") or "-")
        return sid, sid
    label = f"{record.get('model')} ({short_host(record)})"
    return label, str(record.get("model") or "")


def group_runs(records: list[dict[str, Any]], mode: str) -> list[Group]:
    """Groups in the order of their newest run (records arrive sorted)."""
    groups: dict[str, Group] = {}
    for record in records:
        label, key = group_key(record, mode)
        groups.setdefault(label, Group(key=key, label=label)).records.append(record)
    return list(groups.values())


def group_cell(records: list[dict[str, Any]], column: Column) -> str:
    """``mean ± stdev (n=N)`` over the group's counted runs (warm-up and cold runs left out)."""
    values = [
        float(v)
        for r in counted(records)
        for v in [get_path(r, column.path)]
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return cell(describe(values), column.fmt) if values else "-"
