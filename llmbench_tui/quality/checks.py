"""Check specifications: what a suite or a fixture asks of an answer.

Checks are TOML tables with a ``kind`` (``[[prompts.checks]]`` in suites, ``[[checks]]`` in
fixtures); pydantic picks the model from ``kind`` (a discriminated union), so an unknown kind or
a misspelt field is refused when the file is loaded, with the field named, before any model
runs. Everything that can be verified without an answer is verified then too: regexes compile,
inline schemas and schema files are valid JSON Schemas, the tests of a ``python`` check compile.

``schema_file`` is relative to the file the check is written in: validate with that folder as
context, ``model_validate(data, context={"base_dir": folder})`` (``parse_checks`` does); without
a context it is relative to the current folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..specs import ModelSpec
from ..user_files import read_user_file

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_FLAG_LETTERS = r"^[imsx]*$"


def regex_flags(letters: str) -> int:
    """``re`` flags from letters: ``i`` ignore case, ``m`` multiline, ``s`` dot-all, ``x``
    verbose."""
    value = 0
    for letter in letters:
        value |= _FLAGS[letter]
    return value


def _compiles(pattern: str, info: ValidationInfo) -> str:
    """Refuse a pattern that does not compile (with the flags, when they are valid)."""
    letters = info.data.get("flags", "")  # absent when the flags were refused themselves
    try:
        re.compile(pattern, regex_flags(letters))
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return pattern


# Declared after ``flags`` in a model, so the flags are known when the pattern is compiled.
Pattern = Annotated[str, Field(min_length=1), AfterValidator(_compiles)]


def _excerpt(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Check(BaseModel):
    """Fields every check has. ``name`` defaults to the kind and its key parameter."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(default="", max_length=200)
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    def _default_name(self) -> str:
        return str(getattr(self, "kind", "check"))  # every concrete check has a kind

    @model_validator(mode="after")
    def _named(self) -> _Check:
        if not self.name.strip():
            self.name = self._default_name()
        return self


class _TextCheck(_Check):
    text: str = Field(min_length=1)
    case_sensitive: bool = False

    def _default_name(self) -> str:
        return f"{super()._default_name()}:{_excerpt(self.text)}"


class ContainsCheck(_TextCheck):
    """The answer contains ``text`` (case-insensitive unless ``case_sensitive``)."""

    kind: Literal["contains"]


class NotContainsCheck(_TextCheck):
    """The answer does not contain ``text`` (case-insensitive unless ``case_sensitive``)."""

    kind: Literal["not_contains"]


class RegexCheck(_Check):
    """``pattern`` matches somewhere in the answer (``re.search``)."""

    kind: Literal["regex"]
    flags: str = Field(default="", pattern=_FLAG_LETTERS)
    pattern: Pattern

    def _default_name(self) -> str:
        return f"regex:{_excerpt(self.pattern)}"


class ExactCheck(_Check):
    """The answer is exactly ``text`` (both stripped of surrounding whitespace unless
    ``strip = false``)."""

    kind: Literal["exact"]
    text: str
    strip: bool = True

    def _default_name(self) -> str:
        return f"exact:{_excerpt(self.text)}"


class JsonCheck(_Check):
    """The answer, or its first fenced ``json`` (or untagged) block, is valid JSON."""

    kind: Literal["json"]


def _check_schema(schema: dict[str, Any]) -> None:
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None


def _load_schema(path: Path) -> dict[str, Any]:
    text = read_user_file(path, "schema file")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"schema file {path} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ValueError(f"schema file {path} must hold a JSON object")
    _check_schema(schema)
    return schema


class JsonSchemaCheck(_Check):
    """The answer's JSON (as for ``json``) is valid against a JSON Schema, given inline as
    ``schema`` or as ``schema_file`` (resolved to an absolute path when loaded). The schema's
    own ``$schema`` picks the draft; 2020-12 when it has none. Formats are checked."""

    kind: Literal["json_schema"]
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    schema_file: str | None = None
    _schema: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_schema(value)
        return value

    @field_validator("schema_file")
    @classmethod
    def _readable_schema(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        base = Path((info.context or {}).get("base_dir", "."))
        path = (base / Path(value).expanduser()).resolve()
        _load_schema(path)
        return str(path)

    @model_validator(mode="after")
    def _one_schema(self) -> JsonSchemaCheck:
        if (self.schema_ is None) == (self.schema_file is None):
            raise ValueError("give exactly one of 'schema' (an inline table) or 'schema_file'")
        if self.schema_ is not None:
            self._schema = self.schema_
        else:
            self._schema = _load_schema(Path(str(self.schema_file)))
        return self

    def validator(self) -> Validator:
        cls = validator_for(self._schema, default=Draft202012Validator)
        return cls(self._schema, format_checker=cls.FORMAT_CHECKER)

    def _default_name(self) -> str:
        return f"json_schema:{Path(self.schema_file).name}" if self.schema_file else "json_schema"


class LengthCheck(_Check):
    """The answer's length in words (runs of non-space characters) and/or characters is within
    the bounds given."""

    kind: Literal["length"]
    min_words: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)
    min_chars: int | None = Field(default=None, ge=0)
    max_chars: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> LengthCheck:
        pairs = (("min_words", "max_words"), ("min_chars", "max_chars"))
        if all(getattr(self, f) is None for pair in pairs for f in pair):
            raise ValueError("give at least one of min_words, max_words, min_chars, max_chars")
        for low, high in pairs:
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is greater than {high} ({hi})")
        return self


class PythonCheck(_Check):
    """The answer's first fenced Python block (or the whole answer) compiles; with ``tests``
    (Python, typically asserts, run after the code in the same namespace) and code execution
    allowed, the tests pass too. Tests run in the sandbox (see ``sandbox``) with the standard
    library only, within ``timeout_s``."""

    kind: Literal["python"]
    tests: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600)

    @field_validator("tests")
    @classmethod
    def _tests_compile(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile(value, "tests", "exec", dont_inherit=True)
            except SyntaxError as exc:
                raise ValueError(
                    f"the tests do not compile: line {exc.lineno}: {exc.msg}"
                ) from None
            except ValueError as exc:  # e.g. a NUL character
                raise ValueError(f"the tests do not compile: {exc}") from None
        return value


class TypeScriptCheck(_Check):
    """The answer's first fenced ``ts``/``typescript``/``vue`` block (or the whole answer), or
    a Vue component's ``<script lang="ts">`` blocks, pass ``tsc --noEmit --strict``.

    ``prelude`` holds ambient declarations the code may rely on (Vue's ``defineProps``, a
    ``declare module 'vue'``…); it is checked beside the code, never counted in its lines.
    """

    kind: Literal["typescript"]
    prelude: str = ""
    timeout_s: float = Field(default=60.0, gt=0, le=600)


class StructureRule(BaseModel):
    """A named regex that must (or, with ``must = false``, must not) match the answer."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    flags: str = Field(default="", pattern=_FLAG_LETTERS)
    pattern: Pattern
    must: bool = True


class StructureCheck(_Check):
    """Named regexes that must or must not match; the score is the share that hold."""

    kind: Literal["structure"]
    rules: list[StructureRule] = Field(min_length=1)


RUBRIC_MAX_BYTES = 64 * 1024


def read_rubric(path: Path) -> str:
    """The UTF-8 text of a rubric file (at most ``RUBRIC_MAX_BYTES``); ValueError naming it."""
    text = read_user_file(path, "rubric file", max_bytes=RUBRIC_MAX_BYTES)
    if not text.strip():
        raise ValueError(f"rubric file {path} is empty")
    return text


class JudgeCheck(_Check):
    """A judge model grades the answer 1-10 against a rubric (stored as ``quality.judge``; see
    ``quality.judge_prompt``). ``rubric`` inline or ``rubric_file`` (relative to the file the check
    is written in); neither: the shipped default rubric. ``judge`` overrides the session's judge
    (``--judge``); ``repeats`` asks that many times (default ``--judge-repeats``). The check's
    score is the mean verdict / 10; it passes when the mean is at least ``pass_score``. With no
    judge configured, or before the judge has graded, the check is not run."""

    kind: Literal["judge"]
    rubric: str | None = Field(default=None, min_length=1, max_length=RUBRIC_MAX_BYTES)
    rubric_file: str | None = None
    judge: str | None = None
    repeats: int | None = Field(default=None, ge=1, le=20)
    pass_score: float = Field(default=7.0, ge=1.0, le=10.0)

    @field_validator("rubric_file")
    @classmethod
    def _readable_rubric(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        base = Path((info.context or {}).get("base_dir", "."))
        path = (base / Path(value).expanduser()).resolve()
        read_rubric(path)
        return str(path)

    @field_validator("judge")
    @classmethod
    def _judge_spec(cls, value: str | None) -> str | None:
        if value is not None:
            ModelSpec.parse(value)  # ValueError names the bad spec
        return value

    @model_validator(mode="after")
    def _one_rubric(self) -> JudgeCheck:
        if self.rubric is not None and self.rubric_file is not None:
            raise ValueError("give at most one of 'rubric' (inline text) or 'rubric_file'")
        return self


CheckSpec = Annotated[
    ContainsCheck
    | NotContainsCheck
    | RegexCheck
    | ExactCheck
    | JsonCheck
    | JsonSchemaCheck
    | LengthCheck
    | PythonCheck
    | TypeScriptCheck
    | StructureCheck
    | JudgeCheck,
    Field(discriminator="kind"),
]
"""One check of any kind; use as ``list[CheckSpec]`` in a pydantic model."""

_MODELS: tuple[type[_Check], ...] = get_args(get_args(CheckSpec)[0])
KINDS = tuple(get_args(model.model_fields["kind"].annotation)[0] for model in _MODELS)
_CHECK_LIST: TypeAdapter[list[CheckSpec]] = TypeAdapter(list[CheckSpec])


def parse_checks(data: Any, base_dir: str | Path = ".") -> list[CheckSpec]:
    """Validate a list of check tables; ``schema_file`` paths are relative to ``base_dir``.
    Raises ``pydantic.ValidationError`` (see ``error_location`` to name the field)."""
    return _CHECK_LIST.validate_python(data, context={"base_dir": Path(base_dir)})


def error_location(error: Mapping[str, Any]) -> tuple[str | int, ...]:
    """The field an error from ``exc.errors()`` is about, as written in the file: the kind
    pydantic inserts after a check's index is dropped, and an unknown or missing kind is
    reported on the ``kind`` field."""
    loc = tuple(error["loc"])
    kept = tuple(
        part
        for i, part in enumerate(loc)
        if not (part in KINDS and i > 0 and isinstance(loc[i - 1], int))
    )
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        kept += ("kind",)
    return kept
