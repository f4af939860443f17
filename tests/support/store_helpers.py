"""Small run records for the store tests (the realistic generator is ``seed_history.py``)."""

from __future__ import annotations

import uuid
from typing import Any

from llmbench_tui.schema import RunRecord


def run(**fields: Any) -> dict[str, Any]:
    """A valid run record (``RunRecord.to_json()``) with the given fields overridden."""
    base: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "session_id": "sess-a",
        "started_at": "2025-03-01T10:00:00+00:00",
        "model": "qwen2.5:7b",
        "backend": "ollama",
        "host": "http://127.0.0.1:11434",
        "prompt_id": "haiku",
        "prompt": "Write a haiku about the sea.",
        "status": "ok",
        "response": "Waves fold on the sand",
    }
    timings = fields.pop("timings", {})
    base.update(fields)
    record = RunRecord(**base).to_json()
    record["timings"].update(timings)
    return record
