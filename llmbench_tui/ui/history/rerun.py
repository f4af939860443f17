"""What the history screen hands the dashboard when the user asks to run a stored run again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RerunRequest:
    """What the history screen dismisses with to ask the dashboard to run a configuration again."""

    model_spec: str
    prompt: str
    system: str | None
    options: dict[str, Any]


def rerun_request(record: dict[str, Any]) -> RerunRequest:
    """The configuration of a stored run as a re-run request (spec rebuilt for older records)."""
    spec = record.get("model_spec")
    if not spec:
        spec = f"{record.get('backend')}:{record.get('model')}"
        if record.get("host") and record.get("backend") != "gguf":
            spec += f"@{record['host']}"
    return RerunRequest(
        model_spec=spec,
        prompt=record.get("prompt") or "",
        system=record.get("system"),
        options=dict(record.get("options") or {}),
    )
