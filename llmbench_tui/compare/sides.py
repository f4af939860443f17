"""The two operands of ``llmbench compare`` (a run, a session or a model) and how their runs
pair up into groups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmbench_tui.engine.stats import counted
from llmbench_tui.safe_text import one_line
from llmbench_tui.store import RunQuery, RunStore, StoreError

from .figures import GROUP_FIELDS, group_label


@dataclass
class Side:
    """One operand of ``llmbench compare``: a run, a session or a model, with its runs."""

    kind: str  # "run" | "session" | "model"
    label: str
    records: list[dict[str, Any]]


def resolve_side(store: RunStore, ref: str) -> Side:
    """``model:NAME``, a run id (or unique prefix) or a session id (or unique prefix)."""
    if ref.startswith("model:"):
        name = ref.removeprefix("model:")
        runs = [
            r
            for r in store.query(RunQuery(model=name))
            if name in (r.get("model"), r.get("model_spec"))
        ]
        if not runs:
            raise StoreError(f"no runs of model {name!r} in {store.location}")
        return Side("model", name, runs)
    errors = []
    for kind in ("run", "session"):
        try:
            if kind == "run":
                run = store.get_run(ref)
                return Side("run", one_line(run["id"])[:12], [run])
            sid = store.resolve_session_id(ref)
            runs = store.query(RunQuery(session_id=sid))
            return Side("session", one_line(sid)[:12], runs)
        except StoreError as exc:
            errors.append(str(exc))
    if any("matches" in e for e in errors):
        raise StoreError(next(e for e in errors if "matches" in e))
    raise StoreError(
        f"{ref!r} is neither a run id, a session id nor model:NAME in {store.location}"
    )


def group_key(a: Side, b: Side) -> Callable[[dict[str, Any]], str]:
    """How to pair runs across the two sides: on every field of ``GROUP_FIELDS`` whose values the
    two sides share.

    A field with no value in common (model:X against model:Y, two hosts, two concurrency levels)
    is what the comparison is about, so it is left out of the pairing instead of leaving every
    group one-sided. The label names the model and prompt, and any other field that varies.
    """
    ra, rb = counted(a.records), counted(b.records)
    shown = []
    for name, get in GROUP_FIELDS:
        if not {get(r) for r in ra} & {get(r) for r in rb}:
            continue
        if name in ("model", "prompt") or len({get(r) for r in ra + rb}) > 1:
            shown.append((name, get))

    def key(record: dict[str, Any]) -> str:
        parts = [group_label(name, get(record)) for name, get in shown]
        return " / ".join(parts) or "all"

    return key
