"""Fixtures: a prompt built from files, with the answer expected and the checks to apply.

A fixture is a folder::

    fixture.toml   template, inputs, expected, [[checks]] (the same tables as a suite's checks)
    <template>     Jinja2 template of the prompt; it sees ``files`` (input file name → text)
    <inputs>       the files given to the template
    <expected>     an answer that passes every check (the tests feed it through them)

A fixture is someone else's file. Paths in ``fixture.toml`` must stay inside the folder; files
are read as UTF-8, at most ``MAX_FILE_BYTES`` each. The template is rendered by Jinja2's
``SandboxedEnvironment`` (no access to Python internals, no unsafe calls) with
``StrictUndefined`` (a misspelt variable is an error, not an empty string) and autoescape off
(a prompt is not HTML). The sandboxed environment does not stop a template from looping for
ever or building a huge string (``"x" * 10**10``, ``"" | center(10**10)``), so the rendering
runs in the subprocess sandbox, with a timeout, a memory limit and a cap on the rendered size
(``MAX_PROMPT_CHARS``, the longest prompt text a suite accepts).

Every error names the file, the line where one is known, and the field.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..toml_lines import locate
from ..user_files import UserFileError, read_user_file
from .checks import CheckSpec, error_location
from .sandbox import SandboxUnavailable, run_python

MANIFEST = "fixture.toml"
MAX_FILE_BYTES = 2**20
MAX_PROMPT_CHARS = 200_000
RENDER_TIMEOUT_S = 10.0


class FixtureError(Exception):
    """A fixture that cannot be used; the message names the file, the line and the field."""


class FixtureSpec(BaseModel):
    """``fixture.toml`` as written."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    template: str = Field(min_length=1)
    inputs: list[str] = Field(default_factory=list)
    expected: str = Field(min_length=1)
    checks: list[CheckSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Fixture:
    """A loaded fixture: the rendered ``prompt``, the ``expected`` answer and the checks."""

    name: str
    folder: Path
    description: str
    prompt: str
    expected: str
    inputs: dict[str, str]
    checks: list[CheckSpec]


def validation_message(exc: ValidationError, path: Path | str, text: str) -> str:
    """One line per error of ``exc`` (raised validating the TOML ``text`` of ``path``):
    ``file:line: field 'checks.0.pattern': message``."""
    problems = []
    for err in exc.errors():
        loc = error_location(err)
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = locate(text, loc)
        where = f"{path}:{line}" if line else str(path)
        problems.append(f"{where}: field '{field}': {err['msg']}")
    return "\n".join(problems)


def load_fixture(path: str | Path) -> Fixture:
    """Load the fixture in folder ``path`` (or whose ``fixture.toml`` is ``path``) and render
    its prompt; raise ``FixtureError`` with a message a person can act on."""
    path = Path(path)
    folder, manifest = (path.parent, path) if path.name == MANIFEST else (path, path / MANIFEST)
    if not folder.is_dir():
        raise FixtureError(f"fixture folder not found: {folder}")
    if not manifest.is_file():
        raise FixtureError(f"fixture file not found: {manifest}")
    text = _read(manifest, str(manifest))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(f"{manifest}: not valid TOML: {exc}") from None
    try:
        spec = FixtureSpec.model_validate(data, context={"base_dir": folder})
    except ValidationError as exc:
        raise FixtureError(validation_message(exc, manifest, text)) from None

    def file(name: str, field: str) -> tuple[Path, str]:
        where = _where(manifest, field, text)
        path = (folder / name).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise FixtureError(f"{where}: {name!r} is outside the fixture folder")
        return path, _read(path, where)

    inputs = {name: file(name, f"inputs.{i}")[1] for i, name in enumerate(spec.inputs)}
    template_path, template = file(spec.template, "template")
    _, expected = file(spec.expected, "expected")
    return Fixture(
        name=folder.resolve().name,
        folder=folder,
        description=spec.description,
        prompt=render(template, inputs, template_path),
        expected=expected,
        inputs=inputs,
        checks=spec.checks,
    )


def _where(manifest: Path, field: str, text: str) -> str:
    loc: tuple[Any, ...] = tuple(int(p) if p.isdigit() else p for p in field.split("."))
    line = locate(text, loc)
    return f"{manifest}:{line}: field '{field}'" if line else f"{manifest}: field '{field}'"


def _read(path: Path, where: str) -> str:
    """The UTF-8 text of ``path``; an error starts with ``where``."""
    try:
        return read_user_file(path, "file", max_bytes=MAX_FILE_BYTES)
    except UserFileError as exc:
        raise FixtureError(f"{where}: {exc}") from None


_RENDER = r"""
import json, sys, traceback
from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
with open("job.json", encoding="utf-8") as f:
    job = json.load(f)

def fail(line, message):
    sys.stderr.write("\n" + json.dumps({"line": line, "message": message}) + "\n")
    sys.exit(3)

env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
try:
    pieces, size = [], 0
    for piece in env.from_string(job["template"]).generate(files=job["files"]):
        size += len(piece)
        if size > job["limit"]:
            fail(None, f"the rendered prompt is longer than {job['limit']:,} characters")
        pieces.append(piece)
except TemplateSyntaxError as exc:
    fail(exc.lineno, f"template syntax error: {exc.message}")
except Exception as exc:
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [f.lineno for f in frames if f.filename == "<template>"]
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    fail(lines[-1] if lines else None, f"template error: {text}")
sys.stdout.buffer.write("".join(pieces).encode("utf-8"))
"""


def render(template: str, files: dict[str, str], template_path: Path | str) -> str:
    """Render a fixture's prompt template in the sandbox (see the module's docstring)."""
    paths = []
    for module in ("jinja2", "markupsafe"):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise FixtureError(f"{template_path}: {module} is not installed (pip install jinja2)")
        paths.append(str(Path(next(iter(spec.submodule_search_locations))).parent))
    job = {"template": template, "files": files, "limit": MAX_PROMPT_CHARS}
    try:
        result = run_python(
            _RENDER,
            timeout_s=RENDER_TIMEOUT_S,
            files={"job.json": json.dumps(job)},
            extra_path=list(dict.fromkeys(paths)),
        )
    except SandboxUnavailable as exc:
        raise FixtureError(f"{template_path}: cannot render: {exc}") from None
    if result.returncode == 0:
        return result.stdout
    if result.death():
        raise FixtureError(f"{template_path}: rendering {result.death()}")
    try:
        report = json.loads(result.last_stderr_line())
    except ValueError:
        why = result.last_stderr_line()
        raise FixtureError(f"{template_path}: rendering failed: {why}") from None
    line = f":{report['line']}" if report.get("line") else ""
    raise FixtureError(f"{template_path}{line}: {report['message']}")
