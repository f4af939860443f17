"""Which machine ran which runs, and the sentences ``compare`` and the gate add when the two
sides ran on different machines, changed software, or beside other work; ``compare --by
machine``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmbench_tui.engine.stats import counted
from llmbench_tui.safe_text import one_line
from llmbench_tui.schema import get_path
from llmbench_tui.store import RunQuery, RunStore, StoreError

from .figures import FigureDiff, compare_records
from .sides import Side, group_key

# What may differ on one machine between two sessions, worth saying when it does.
_SOFTWARE = (("gpu_driver", "GPU driver"), ("kernel", "kernel"), ("os", "OS"))


def machine_key(record: dict[str, Any], machine: dict[str, Any] | None) -> str | None:
    """Which machine did the work: the run's own (its session's) for local and in-process runs;
    for a model served by another host, that host (the session's machine only sent requests)."""
    from llmbench_tui.telemetry.efficiency import is_local_host

    host = record.get("host")
    if isinstance(host, str) and not is_local_host(host):
        return f"host:{host}"
    return machine.get("machine_id") if machine else None


def record_machines(
    records: Iterable[dict[str, Any]], store: RunStore | None = None
) -> dict[str, tuple[dict[str, Any] | None, int]]:
    """``{machine key: (machine block, runs)}`` of the counted runs (``machine_key``); a run
    whose machine is unknown (no block, no session) is counted under ``"?"``."""
    sessions = store.sessions_by_id() if store is not None else {}
    found: dict[str, tuple[dict[str, Any] | None, int]] = {}
    for record in counted(list(records)):
        if store is not None:
            block = store.machine_of(record, sessions)
        else:
            block = record.get("machine") if isinstance(record.get("machine"), dict) else None
        key = machine_key(record, block) or "?"
        if key.startswith("host:"):
            block = {"hostname": key.removeprefix("host:"), "remote": True, "client": block}
        previous = found.get(key, (block, 0))
        found[key] = (previous[0] or block, previous[1] + 1)
    return found


def machine_label(key: str, block: dict[str, Any] | None) -> str:
    """One line for a machine key: the machine line, or the remote host it names."""
    from llmbench_tui.telemetry.environment import machine_line

    if key == "?":
        return "an unknown machine (runs without a session)"
    if key.startswith("host:"):
        return f"the server at {one_line(key.removeprefix('host:'))}"
    return one_line(machine_line(block))


def machine_notes(
    a: dict[str, tuple[dict[str, Any] | None, int]],
    b: dict[str, tuple[dict[str, Any] | None, int]],
    names: tuple[str, str] = ("A", "B"),
) -> list[str]:
    """Sentences for ``compare`` and the gate when the two sides did not run on one machine, or
    ran on one machine whose software changed (driver, kernel, OS); nothing when nothing is
    known or everything matches."""
    known_a, known_b = set(a) - {"?"}, set(b) - {"?"}
    if not known_a or not known_b:
        return []
    notes = []
    for name, side in zip(names, (a, b), strict=True):
        if len(set(side) - {"?"}) > 1:
            shown = "; ".join(machine_label(k, side[k][0]) for k in sorted(side) if k != "?")
            notes.append(f"{name} ran on {len(set(side) - {'?'})} machines: {shown}")
    if known_a != known_b:
        (ka,), (kb,) = (sorted(known_a)[:1], sorted(known_b)[:1])
        if len(known_a) == len(known_b) == 1:
            notes.append(
                f"{names[0]} and {names[1]} ran on different machines: {names[0]} on "
                f"{machine_label(ka, a[ka][0])}, {names[1]} on {machine_label(kb, b[kb][0])}; "
                "the differences are the hardware's as much as the software's"
            )
        elif not notes:
            notes.append(f"{names[0]} and {names[1]} ran on different sets of machines")
        return notes
    for key in sorted(known_a):
        block_a, block_b = a[key][0] or {}, b[key][0] or {}
        changed = [
            f"{label} {one_line(block_a.get(field))} → {one_line(block_b.get(field))}"
            for field, label in _SOFTWARE
            if block_a.get(field) and block_b.get(field) and block_a[field] != block_b[field]
        ]
        if changed:
            notes.append(
                f"same machine ({machine_label(key, block_a)}), but " + ", ".join(changed)
            )
    return notes


@dataclass
class MachineComparison:
    """``llmbench compare --by machine``: one machine against the reference machine."""

    a: Side
    b: Side
    diffs: list[FigureDiff]


def compare_machines(
    store: RunStore, models: list[str], against: str | None = None
) -> list[MachineComparison]:
    """Machine against machine for the same model(s): the counted runs of ``models`` (``model:X``
    exactly, else part of the name as ``history --model``) split by the machine that did the work
    (``machine_key``); each machine is compared with the reference one (``against``: host name,
    CPU or id prefix; default the machine with the most runs), paired by model, prompt, backend
    and concurrency."""
    from llmbench_tui.telemetry.environment import machine_matches

    runs: dict[str, dict[str, Any]] = {}
    for ref in models:
        exact = ref.startswith("model:")
        name = ref.removeprefix("model:")
        for r in store.query(RunQuery(model=name)):
            if not exact or name in (r.get("model"), r.get("model_spec")):
                runs[r["id"]] = r
    if not runs:
        raise StoreError(f"no runs of {', '.join(map(repr, models))} in {store.location}")
    sessions = store.sessions_by_id()
    by_machine: dict[str, list[dict[str, Any]]] = {}
    blocks: dict[str, dict[str, Any] | None] = {}
    for record in counted(list(runs.values())):
        block = store.machine_of(record, sessions)
        key = machine_key(record, block) or "?"
        by_machine.setdefault(key, []).append(record)
        blocks.setdefault(key, block)
    known = sorted((k for k in by_machine if k != "?"), key=lambda k: -len(by_machine[k]))
    if not known:
        raise StoreError("none of these runs has a known machine (runs without a session)")
    if against:
        hits = [k for k in known if machine_matches(blocks.get(k), against) or against in k]
        if not hits:
            raise StoreError(f"no machine matching {against!r} ran these models")
        ref = hits[0]
    else:
        ref = known[0]
    if len(known) < 2:
        raise StoreError(
            f"only one machine ran these models ({machine_label(ref, blocks.get(ref))}): "
            "import the other machine's results first (llmbench import FILE)"
        )
    side_a = Side("machine", machine_label(ref, blocks.get(ref)), by_machine[ref])
    out = []
    for key in known:
        if key == ref:
            continue
        side_b = Side("machine", machine_label(key, blocks.get(key)), by_machine[key])
        out.append(
            MachineComparison(
                side_a, side_b, compare_records(side_a.records, side_b.records,
                                                group_key(side_a, side_b))
            )
        )  # fmt: skip
    return out


def condition_notes(
    a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]], names: tuple[str, str] = ("A", "B")
) -> list[str]:
    """Sentences for ``compare`` and the gate when counted runs of a side were measured beside
    other work (``efficiency.conditions.busy``) or hold physically impossible figures
    (``efficiency.implausible``): a difference resting on them is not the hardware's or the
    software's."""
    from llmbench_tui.telemetry.conditions import BUSY_OTHER_CPU_PCT

    notes = []
    for name, records in zip(names, (a, b), strict=True):
        runs = counted(list(records))
        busy = sum(bool(get_path(r, "efficiency.conditions.busy")) for r in runs)
        odd = sum(bool(get_path(r, "efficiency.implausible")) for r in runs)
        if busy:
            notes.append(
                f"{busy} of {len(runs)} runs of {name} were measured beside other work (other "
                f"processes used more than {BUSY_OTHER_CPU_PCT:.0f} % of the CPU): their figures "
                "are not comparable"
            )
        if odd:
            notes.append(
                f"{odd} of {len(runs)} runs of {name} have physically impossible figures "
                "(a decode rate above the bandwidth ceiling)"
            )
    return notes
