"""Checks and fixtures in suite files: what loads, and bad input refused before any model runs
with the file, the line and the field named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import EXAMPLES

from llmbench_tui.suite import SuiteError, load_suite, locate

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]
KINDS = ("'contains', 'not_contains', 'regex', 'exact', 'json', 'json_schema', 'length', "
         "'python', 'typescript', 'structure', 'judge'")

GOOD = """\
name = "q"

[[prompts]]
id = "fib"
text = "Write fib(n)."

[[prompts.checks]]
kind = "python"
tests = "assert fib(10) == 55"
weight = 2

[[prompts.checks]]
kind = "regex"
pattern = "def fib\\\\("

[[prompts]]
id = "order"
fixture = "fx/json-extraction"

[[prompts.checks]]
kind = "length"
max_words = 300
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    return str(err.value)


@pytest.fixture
def fx(tmp_path: Path) -> Path:
    """A copy of the shipped JSON fixture beside the suite, as ``fx/json-extraction``."""
    shutil.copytree(EXAMPLES / "fixtures" / "json-extraction", tmp_path / "fx" / "json-extraction")
    return tmp_path / "fx" / "json-extraction"


def test_checks_and_fixture_prompt(tmp_path, fx):
    suite = load_suite(write(tmp_path, GOOD))
    fib, order = suite.prompts
    assert [(c.kind, c.name, c.weight) for c in fib.checks] == [
        ("python", "python", 2.0), ("regex", "regex:def fib\\(", 1.0)]
    assert fib.fixture is None and suite.allow_code_exec is False
    # The fixture's rendered prompt is the text; its checks come first, then the prompt's own.
    assert order.text.startswith("Extract the order from the message below as JSON")
    assert "dana.okafor@larkspur-robotics.example" in order.text
    assert [c.name for c in order.checks] == [
        "json", "json_schema:schema.json", "email-address", "iso-date", "length"]
    # schema_file is resolved against the fixture's folder, not the current directory.
    assert order.checks[1].schema_file == str((fx / "schema.json").resolve())


def test_text_wins_over_the_fixture_prompt(tmp_path, fx):
    path = write(tmp_path, '[[prompts]]\nid = "o"\ntext = "Mine."\n'
                           'fixture = "fx/json-extraction"\n')
    (prompt,) = load_suite(path).prompts
    assert prompt.text == "Mine." and len(prompt.checks) == 4


def test_shipped_quality_suite_loads():
    suite = load_suite(EXAMPLES / "quality.toml")
    assert [p.id for p in suite.prompts] == [
        "vue-typing", "python-function", "json-extraction", "fib"]
    assert all(p.checks for p in suite.prompts)
    assert {c.kind for p in suite.prompts for c in p.checks} >= {
        "structure", "typescript", "python", "json", "json_schema", "contains", "regex", "length"}


def test_allow_code_exec_in_suite(tmp_path):
    suite = load_suite(write(tmp_path, 'allow_code_exec = true\n[[prompts]]\nid="a"\ntext="x"\n'))
    assert suite.allow_code_exec is True


def test_unknown_kind(tmp_path, fx):
    path = write(tmp_path, GOOD.replace('kind = "regex"', 'kind = "regexp"'))
    assert refused(path) == (
        f"{path}:13: field 'prompts.0.checks.1.kind': Input tag 'regexp' found using 'kind' "
        f"does not match any of the expected tags: {KINDS}"
    )


def test_bad_regex(tmp_path, fx):
    path = write(tmp_path, GOOD.replace('pattern = "def fib\\\\("', 'pattern = "def fib("'))
    assert refused(path) == (
        f"{path}:14: field 'prompts.0.checks.1.pattern': Value error, bad regular expression "
        "'def fib(': missing ), unterminated subpattern at position 7"
    )


def test_schema_that_is_not_a_schema_in_the_second_prompt(tmp_path, fx):
    text = GOOD + '\n[[prompts.checks]]\nkind = "json_schema"\nschema = { type = 12 }\n'
    path = write(tmp_path, text)
    assert refused(path) == (
        f"{path}:26: field 'prompts.1.checks.1.schema': Value error, not a valid JSON Schema "
        "at type: 12 is not valid under any of the given schemas"
    )


def test_missing_schema_file(tmp_path, fx):
    text = GOOD + '\n[[prompts.checks]]\nkind = "json_schema"\nschema_file = "nope.json"\n'
    path = write(tmp_path, text)
    assert refused(path) == (
        f"{path}:26: field 'prompts.1.checks.1.schema_file': Value error, schema file not "
        f"found: {(tmp_path / 'nope.json').resolve()}"
    )


def test_missing_fixture_folder_and_file(tmp_path):
    path = write(tmp_path, GOOD)  # no fx/ folder
    assert refused(path) == (
        f"{path}:18: field 'prompts.1.fixture': Value error, fixture folder not found: "
        f"{tmp_path / 'fx' / 'json-extraction'}"
    )
    (tmp_path / "fx" / "json-extraction").mkdir(parents=True)
    assert refused(path) == (
        f"{path}:18: field 'prompts.1.fixture': Value error, fixture file not found: "
        f"{tmp_path / 'fx' / 'json-extraction' / 'fixture.toml'}"
    )


def test_broken_fixture_names_both_files(tmp_path, fx):
    manifest = fx / "fixture.toml"
    manifest.write_text(manifest.read_text().replace('pattern = \'"date"', 'pattern = \'("date"'))
    path = write(tmp_path, GOOD)
    message = refused(path)
    assert message.startswith(
        f"{path}:18: field 'prompts.1.fixture': Value error, {manifest}:23: field "
        "'checks.3.pattern': Value error, bad regular expression"
    )


def test_missing_fixture_expected_file(tmp_path, fx):
    (fx / "expected.json").unlink()
    path = write(tmp_path, GOOD)
    assert refused(path) == (
        f"{path}:18: field 'prompts.1.fixture': Value error, {fx / 'fixture.toml'}:5: field "
        f"'expected': file not found: {(fx / 'expected.json').resolve()}"
    )


def test_prompt_without_text_or_fixture(tmp_path):
    path = write(tmp_path, '[[prompts]]\nid = "a"\n\n[[prompts]]\nid = "b"\n')
    assert refused(path) == (
        f"{path}:1: field 'prompts.0': Value error, give the prompt's 'text' (or a 'fixture' "
        f"folder)\n{path}:4: field 'prompts.1': Value error, give the prompt's 'text' (or a "
        "'fixture' folder)"
    )


def test_several_problems_each_on_its_line(tmp_path):
    path = write(tmp_path, """\
[[prompts]]
id = "a"
text = "x"
checks = [{ kind = "contains" }]

[[prompts]]
id = "b"
text = "y"

[[prompts.checks]]
kind = "structure"
rules = [
    { name = "ok", pattern = "a" },
    { name = "bad", pattern = "(" },
]

[[prompts.checks]]
kind = "length"
""")
    assert refused(path).splitlines() == [
        f"{path}:4: field 'prompts.0.checks.0.text': Field required",
        f"{path}:14: field 'prompts.1.checks.0.rules.1.pattern': Value error, bad regular "
        "expression '(': missing ), unterminated subpattern at position 0",
        f"{path}:17: field 'prompts.1.checks.1': Value error, give at least one of min_words, "
        "max_words, min_chars, max_chars",
    ]


def test_locate_walks_nested_arrays_of_tables():
    text = (
        'name = "x"\n'  # 1
        "[options]\n"  # 2
        "seed = 1\n"  # 3
        "[[prompts]]\n"  # 4
        'id = "a"\n'  # 5
        "[[prompts.checks]]\n"  # 6
        'kind = "regex"\n'  # 7
        "[[prompts]]\n"  # 8
        'id = "b"\n'  # 9
        "[[prompts.checks]]\n"  # 10
        'kind = "json"\n'  # 11
        "[[ prompts.checks ]]  # second\n"  # 12
        'kind = "regex"\n'  # 13
        'pattern = "("\n'  # 14
    )
    assert locate(text, ("name",)) == 1
    assert locate(text, ("options", "seed")) == 3
    assert locate(text, ("prompts", 0, "checks", 0, "kind")) == 7
    assert locate(text, ("prompts", 1, "id")) == 9
    assert locate(text, ("prompts", 1, "checks", 1, "pattern")) == 14
    assert locate(text, ("prompts", 1, "checks", 1, "weight")) == 12  # absent: its table
    assert locate(text, ("prompts", 1, "checks", 2, "kind")) == 8  # no third: the prompt
    assert locate(text, ("prompts", 0, "checks", 1)) == 4
    assert locate(text, ("nothing",)) is None
    assert locate(text, ()) is None


def test_bad_suite_is_refused_before_any_model_runs(ollama_server, tmp_path):
    path = write(tmp_path, f"""\
models = ["ollama:smollm-fake:135m@{ollama_server.url}"]

[[prompts]]
id = "a"
text = "hi"

[[prompts.checks]]
kind = "json_schema"
schema = {{ type = "objekt" }}
""")
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data")}
    p = subprocess.run([*LLMBENCH, "--batch", str(path)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith(
        f"llmbench: {path}:9: field 'prompts.0.checks.0.schema': Value error, not a valid "
        "JSON Schema at type: "
    )
    assert not ollama_server.generations()
    assert not (tmp_path / "data" / "history.json").exists()
