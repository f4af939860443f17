"""Grouped rows of the history table: the runs of a session, of a model on one backend and host,
or of a machine.

Pure functions over stored records (no Textual): what a group is, which group a run belongs to,
and the ``mean ± stdev (n=N)`` a grouped cell shows. A machine group is the machine that did the
work (``compare.machine_key``: the run's own machine, or the server for a model served by another
host), read from the record's ``machine`` block (the screen fills it in from the session for runs
stored before runs carried one). A grouped figure is a mean over the group's
counted runs only (``engine.stats.counted``: warm-up, cold and failed runs left out), the same
rule as every other statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...compare import machine_key, machine_label
from ...engine.report import cell
from ...engine.stats import counted, describe
from ...formatting import short_host
from ...schema import get_path

if TYPE_CHECKING:
    from .columns import Column

GROUP_MODES = (None, "session", "model", "machine")
UNKNOWN_MACHINE = "?"  # the machine key of runs with no machine block and no session


@dataclass
class Group:
    """One grouped row: the runs of a session, of a model (on one backend and host) or of a
    machine. ``key`` is what opening the group filters by: the session id, the model name, or
    the machine key (a machine id, ``host:URL`` or ``?``)."""

    key: str
    label: str
    records: list[dict[str, Any]] = field(default_factory=list)


def record_machine(record: dict[str, Any]) -> dict[str, Any] | None:
    block = record.get("machine")
    return block if isinstance(block, dict) else None


def group_key(record: dict[str, Any], mode: str) -> tuple[str, str]:
    """(label, key) of the group ``record`` belongs to; the label is unique per group."""
    if mode == "machine":
        block = record_machine(record)
        key = machine_key(record, block) or UNKNOWN_MACHINE
        return machine_label(key, block), key
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
