"""The shape of a scored answer, as stored in a run record's ``quality`` field.

Details are shown in a terminal and written to CSV cells, and they often quote the answer, which
is untrusted: every detail (and name) is cleaned here, once, by the models themselves, so no
caller can forget it. A cleaned detail is one line, free of escape sequences and control
characters, at most ``DETAIL_MAX`` characters.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field, field_validator

from ..safe_text import one_line
from .verdicts import Judgement

DETAIL_MAX = 200


def quote(text: str, limit: int = 60) -> str:
    """A short quoted excerpt of untrusted text for a detail: ``'abc…'``."""
    excerpt = one_line(text, limit)
    return f"'{excerpt}'"


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, the form the run record's ``started_at`` uses."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CheckResult(BaseModel):
    """One check applied to one answer.

    ``passed`` is ``None`` (and ``score`` too) when the check could not run — no ``tsc`` here,
    code execution not allowed — with the reason in ``detail``; such a check is left out of the
    run's score, never counted as passed.
    """

    name: str
    kind: str
    passed: bool | None
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    detail: str = ""
    weight: float = Field(default=1.0, gt=0)  # the check's weight, so a score can be recomputed

    @field_validator("name", "detail")
    @classmethod
    def _printable(cls, value: str) -> str:
        return one_line(value, DETAIL_MAX)


class Quality(BaseModel):
    """All checks of one answer; ``score`` is the weighted mean of the checks that ran × 10
    (``None`` when none ran)."""

    score: float | None = Field(default=None, ge=0.0, le=10.0)
    checks: list[CheckResult] = Field(default_factory=list)
    scored_at: str = Field(default_factory=utc_now)
    judge: Judgement | None = None  # the judge check's verdicts (quality.judge)
