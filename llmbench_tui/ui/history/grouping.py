"""Grouped rows of the history table: the runs of a session, of a model on one backend and host,
of a machine, or of one cell of a size grid.

Pure functions over stored records (no Textual): what a group is, which group a run belongs to,
and the ``mean ± stdev (n=N)`` a grouped cell shows. A machine group is the machine that did the
work (``compare.machine_key``: the run's own machine, or the server for a model served by another
host), read from the record's ``machine`` block (the screen fills it in from the session for runs
stored before runs carried one). A grouped figure is a mean over the group's
counted runs only (``engine.stats.counted``: warm-up, cold and failed runs left out), the same
rule as every other statistic. A grid group is one cell of one grid in one session, for one
model on one backend and host at one concurrency level: the runs llama-bench would average into
one line of its table (a mean over different cells would mix prefill and decode sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...compare import machine_key, machine_label
from ...engine.report import cell
from ...engine.stats import counted, describe, figure_values
from ...formatting import short_host

if TYPE_CHECKING:
    from .columns import Column

GROUP_MODES = (None, "session", "model", "machine", "grid")
UNKNOWN_MACHINE = "?"  # the machine key of runs with no machine block and no session
NO_GRID = "runs outside a size grid"  # the one grid group of runs with no workload grid


@dataclass
class Group:
    """One grouped row: the runs of a session, of a model (on one backend and host), of a
    machine or of a grid cell. ``key`` is what opening the group filters by: the session id
    (a grid cell's too, with its model), the model name, or the machine key (a machine id,
    ``host:URL`` or ``?``); ``label`` is unique among the groups."""

    key: str
    label: str
    records: list[dict[str, Any]] = field(default_factory=list)


def record_machine(record: dict[str, Any]) -> dict[str, Any] | None:
    block = record.get("machine")
    return block if isinstance(block, dict) else None


def grid_test(record: dict[str, Any]) -> str | None:
    """The grid cell a run measured (``pp512+tg128 @ d4096``, ``×4`` at concurrency 4), or
    ``None`` for a run outside a size grid."""
    workload = record.get("workload")
    if not isinstance(workload, dict) or not workload.get("grid"):
        return None
    test = str(workload.get("test") or record.get("prompt_id") or "?")
    if workload.get("cache_role") == "repeat":
        test += " (cached)"
    level = record.get("concurrency")
    return f"{test} ×{level}" if isinstance(level, int) and level > 1 else test


def group_key(record: dict[str, Any], mode: str) -> tuple[str, str]:
    """(label, key) of the group ``record`` belongs to; the label is unique per group."""
    if mode == "grid":
        test = grid_test(record)
        if test is None:
            return NO_GRID, ""
        sid = str(record.get("session_id") or "-")
        grid = record["workload"]["grid"]
        return f"{sid}/{grid}/{record.get('model')} ({short_host(record)})/{test}", sid
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
    values = figure_values(counted(records), column.path)  # a round's figure once per round
    return cell(describe(values), column.fmt) if values else "-"
