"""Pydantic models: the project's shared vocabulary.

Suite files, generation options, model specs and run records are all validated here, so a bad
value is caught once, with the field named, instead of deep inside a backend. The run record
follows README Metrics (public schema, version 1): every required field exists, ``None``
where unknown, and extra fields are allowed so later versions can add figures without breaking
older readers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .conversations import ConversationSpec

# The quality vocabulary lives in the quality package; re-exported here with the rest.
from .quality import CheckResult as CheckResult
from .quality import CheckSpec, Fixture, FixtureError, Quality, load_fixture
from .quality.judge_prompt import one_judge_check
from .specs import Backend, ModelSpec
from .workload_syntax import parse_levels, parse_slo, parse_values

SCHEMA_VERSION = 1

# "skipped": a conversation turn not sent because an earlier turn failed (engine.conversation).
Status = Literal["ok", "error", "timeout", "cancelled", "skipped"]


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


_FIXTURES = "_fixtures"  # validation context key: fixtures loaded while validating a suite


class PromptSpec(BaseModel):
    """One prompt of a suite. ``id`` groups repetitions of the same prompt in statistics.

    ``checks`` score every answer (``quality``). ``fixture`` names a fixture folder (relative to
    the suite file: validate with ``context={"base_dir": folder}``): its rendered prompt is the
    text when ``text`` is not given, and its checks come before the prompt's own in ``checks``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    text: str = Field(default="", max_length=200_000)
    system: str | None = None
    tags: list[str] = Field(default_factory=list)
    fixture: str | None = Field(default=None, min_length=1)
    checks: list[CheckSpec] = Field(default_factory=list)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value

    @field_validator("fixture")
    @classmethod
    def _fixture_loads(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            fixture = _load_fixture(value, info.context)
            if isinstance(info.context, dict):
                info.context.setdefault(_FIXTURES, {})[value] = fixture
        return value

    @model_validator(mode="after")
    def _with_fixture(self, info: ValidationInfo) -> PromptSpec:
        if self.fixture is None:
            if not self.text:
                raise ValueError("give the prompt's 'text' (or a 'fixture' folder)")
            one_judge_check(self.checks)
            return self
        loaded = info.context.get(_FIXTURES, {}) if isinstance(info.context, dict) else {}
        fixture = loaded.get(self.fixture) or _load_fixture(self.fixture, info.context)
        if not self.text:
            self.text = fixture.prompt
        self.checks = [*fixture.checks, *self.checks]
        one_judge_check(self.checks)
        return self


def _load_fixture(folder: str, context: Any) -> Fixture:
    base = Path((context or {}).get("base_dir", ".")) if isinstance(context, dict) else Path(".")
    try:
        return load_fixture(base / Path(folder).expanduser())
    except FixtureError as exc:
        raise ValueError(str(exc)) from None


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
    api: Literal["completions", "chat"] | None = None  # how grid cells are sent (--api)
    # Open loop (engine.arrivals): offered requests/s (a list sweeps), the arrival law, each
    # level's length, the schedule seed and the worker processes; ``concurrency`` is the cap.
    rate: float | list[float] | None = None
    arrival: str | None = None
    duration: float | None = None
    requests: int | None = None
    seed: int | None = None
    workers: int | None = None

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if value is not None:
            from .workload_syntax import parse_rates

            parse_rates(value)
        return value

    @field_validator("arrival")
    @classmethod
    def _arrival(cls, value: str | None) -> str | None:
        if value is not None:
            from .workload_syntax import parse_arrival

            parse_arrival(value)
        return value

    @field_validator("pp", "tg", "depth", "concurrency")
    @classmethod
    def _sizes(cls, value: Sizes, info: Any) -> Sizes:
        if value is None:
            return value
        if info.field_name == "concurrency":
            parse_levels(value)
        else:
            minimum = 0 if info.field_name == "depth" else 1
            parse_values(value, info.field_name, minimum=minimum)
        return value

    @field_validator("slo")
    @classmethod
    def _slos(cls, value: list[str]) -> list[str]:
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
    # Prometheus endpoints scraped during runs: a list (every run) or a table of model host ->
    # list (only the runs against that host), e.g. "gpu-box:11434" = ["http://gpu-box:9100/metrics"]
    telemetry_urls: list[str] | dict[str, list[str]] = Field(default_factory=list)
    allow_code_exec: bool = False  # run python checks' tests (sandboxed); else "not run"
    conversations: list[ConversationSpec] = Field(default_factory=list)  # see conversations.py
    judge: str | None = None  # a model spec that grades answers (engine.judge_runs); --judge
    judge_repeats: int = Field(default=1, ge=1, le=20)  # verdicts per answer; --judge-repeats

    @field_validator("judge")
    @classmethod
    def _judge_parses(cls, value: str | None) -> str | None:
        if value is not None:
            ModelSpec.parse(value)
        return value
    workload: WorkloadSpec | None = None

    @field_validator("models")
    @classmethod
    def _specs_parse(cls, value: list[str]) -> list[str]:
        for text in value:
            ModelSpec.parse(text)
        return value

    @field_validator("telemetry_urls")
    @classmethod
    def _urls(cls, value: list[str] | dict[str, list[str]]) -> list[str] | dict[str, list[str]]:
        for url in value if isinstance(value, list) else [u for v in value.values() for u in v]:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return value


class Tokens(BaseModel):
    prompt: int | None = None
    output: int | None = None
    source: Literal["server", "client"] | None = None


class Timings(BaseModel):
    """Client-side figures computed from chunk arrival instants (README Metrics)."""

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


class RunRecord(BaseModel):
    """One run, exactly as stored and exported (README Metrics, "The run record")."""

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
    fit: dict[str, Any] | None = None  # predicted vs measured memory and decode (fit/check.py)
    warnings: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    if TYPE_CHECKING:
        # Extra fields, set only on the runs they apply to (so other runs' JSON has no such key);
        # declared here for the type checker only, pydantic keeps them as extras.
        concurrent: dict[str, Any]  # a round of several streams (README Metrics)
        done_reason: str
        workload: dict[str, Any]  # a synthetic workload cell (engine.workload.record_fields)
        slo: dict[str, Any]  # engine.goodput.judge
        conversation_id: str | None
        turn: int | None

    def to_json(self) -> dict[str, Any]:
        """The public JSON form (``schema`` spelled as in README Metrics)."""
        return self.model_dump(by_alias=True, mode="json")


def get_path(record: dict[str, Any], path: str) -> Any:
    """Read a dotted figure path (``"timings.ttft_s"``) from a record dict; ``None`` if absent."""
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
