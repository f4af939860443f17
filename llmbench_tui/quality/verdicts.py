"""The stored shape of a judge's grading: ``quality.judge`` of a run record.

A judgement is not a benchmark run: the judge's calls never become run records and never enter
speed statistics. They are kept here, inside the graded run, with what is needed to tell two
judgements apart (judge spec and model identity, rubric hash, options) and every verdict with
the judge's own reply (clipped), so a failed or surprising verdict can be read afterwards.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from ..safe_text import strip_controls

REASON_MAX = 300
# The heading of every table of judge verdicts (dashboard and --batch): what a verdict is not.
JUDGE_TITLE = "judge (a model's opinion, not a ground truth; see docs/judge.md)"
RAW_MAX = 2000


def _line(text: str, limit: int) -> str:
    text = " ".join(strip_controls(text[: limit * 20]).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_raw(text: str, limit: int = RAW_MAX) -> str:
    """A judge's reply kept for reading: control characters removed, at most ``limit``
    characters; a longer reply keeps its head and its tail (where a verdict usually is)."""
    text = strip_controls(text)
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head - 3
    return f"{text[:head]} … {text[-tail:]}"


class Verdict(BaseModel):
    """One call to the judge. ``score`` is ``None`` when the call failed or its reply held no
    usable verdict; ``error`` then says why and ``raw`` keeps what the judge wrote."""

    score: float | None = Field(default=None, ge=1.0, le=10.0)
    reason: str = ""
    raw: str = ""
    latency_s: float | None = Field(default=None, ge=0.0)
    error: str | None = None

    @field_validator("reason")
    @classmethod
    def _reason_line(cls, value: str) -> str:
        return _line(value, REASON_MAX)

    @field_validator("raw")
    @classmethod
    def _raw_clipped(cls, value: str) -> str:
        return clip_raw(value)

    @field_validator("error")
    @classmethod
    def _error_line(cls, value: str | None) -> str | None:
        return None if value is None else _line(value, REASON_MAX)


class Judgement(BaseModel):
    """Every verdict of one judge check on one answer, and their mean and spread.

    ``mean``/``stdev``/``min``/``max`` are over the verdicts that have a score (``n`` of them;
    ``stdev`` is the sample standard deviation, ``None`` below two). ``digest`` is the judge's
    Ollama digest, ``file_sha256`` the SHA-256 of a GGUF judge's file; an OpenAI-compatible
    server gives neither (``model`` names what it served).
    """

    check: str = "judge"
    spec: str
    host: str | None = None
    model: str | None = None
    digest: str | None = None
    file_sha256: str | None = None
    rubric_sha256: str
    rubric_source: str
    options: dict[str, Any] = Field(default_factory=dict)
    verdicts: list[Verdict] = Field(default_factory=list)
    n: int = 0
    mean: float | None = None
    stdev: float | None = None
    min: float | None = None
    max: float | None = None
    judged_at: str = ""
