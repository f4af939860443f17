"""The history screen's filters: the part of a ``RunQuery`` the filter dialog edits."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Filters:
    """The filter part of a ``RunQuery``; every set field narrows the list (they combine).

    ``machine`` is what ``RunQuery.machine`` takes (a machine id from the dialog's list, or part
    of a host name, CPU or GPU model); ``min_score`` keeps scored runs at or above it."""

    model: str | None = None
    backend: str | None = None
    host: str | None = None
    status: str | None = None
    session_id: str | None = None
    since: str | None = None
    until: str | None = None
    machine: str | None = None
    min_score: float | None = None

    def describe(self) -> str:
        set_fields = ((f.name, getattr(self, f.name)) for f in fields(self))
        return " ".join(
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in set_fields
            if value is not None and value != ""
        )
