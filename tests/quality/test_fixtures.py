"""Fixture folders: the three shipped ones score 10/10 with their expected answers; a broken
fixture is refused naming the file, the line and the field; templates are sandboxed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.paths import EXAMPLES

from llmbench_tui.quality import FixtureError, find_tsc, load_fixture, score_answer
from llmbench_tui.quality import fixtures as fixtures_module

FIXTURES = EXAMPLES / "fixtures"
SHIPPED = ["vue-typing", "python-function", "json-extraction"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_fixture_expected_scores_ten(name):
    fixture = load_fixture(FIXTURES / name)
    if any(check.kind == "typescript" for check in fixture.checks):
        path, reason = find_tsc()
        assert path, f"{reason} — run `npm ci` at the repository root to install the pinned tsc"
    quality = score_answer(fixture.expected, fixture.checks, allow_code_exec=True)
    failing = [c for c in quality.checks if c.passed is not True]
    assert failing == [], failing
    assert quality.score == 10.0


def test_shipped_fixtures_are_all_tested():
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted(SHIPPED)


def test_vue_fixture_prompt_and_checks():
    fixture = load_fixture(FIXTURES / "vue-typing" / "fixture.toml")
    assert fixture.name == "vue-typing"
    source = fixture.inputs["Counter.vue"]
    assert "export default {" in source
    assert source in fixture.prompt
    assert '<script setup lang="ts">' in fixture.prompt
    assert [c.kind for c in fixture.checks] == ["structure", "typescript"]
    structure = fixture.checks[0]
    assert [r.name for r in structure.rules][:3] == [
        "script-setup-ts",
        "typed-props",
        "typed-emits",
    ]


def test_vue_fixture_scores_the_untyped_input_low():
    fixture = load_fixture(FIXTURES / "vue-typing")
    find = find_tsc()
    assert find[0], find[1]
    quality = score_answer(fixture.inputs["Counter.vue"], fixture.checks)
    structure, tsc = quality.checks
    assert structure.score == 0.125
    assert structure.detail.startswith("1/8 rules hold; failed: script-setup-ts (missing)")
    assert (tsc.passed, tsc.detail) == (False, 'no <script lang="ts"> block in the Vue component')


def test_vue_fixture_type_error_is_reported_with_its_line():
    fixture = load_fixture(FIXTURES / "vue-typing")
    broken = fixture.expected.replace("count.value = 0\n", "count.value = '0'\n")
    answer = "Here is the component:\n\n```vue\n" + broken + "```\n"
    quality = score_answer(answer, fixture.checks)
    structure, tsc = quality.checks
    assert structure.passed is True
    # Line 42 of expected.vue is line 45 of the answer: prose, a blank line and the fence first.
    assert tsc.detail == "TS2322: Type 'string' is not assignable to type 'number'. (line 45)"
    assert quality.score == round(10 * (1 * 1 + 2 * 0) / 3, 3)


def test_python_fixture_wrong_answer():
    fixture = load_fixture(FIXTURES / "python-function")
    wrong = fixture.expected.replace("sorted(intervals)", "intervals")
    quality = score_answer(wrong, fixture.checks, allow_code_exec=True)
    tests, signature = quality.checks
    assert tests.detail == (
        "AssertionError: assert merge_intervals([(5, 7), (1, 3), (2, 4), (7, 8)]) == "
        "[(1, 4), (5, 8)] (tests line 3)"
    )
    assert signature.passed is True
    assert quality.score == 2.5


def test_json_fixture_schema_violation():
    fixture = load_fixture(FIXTURES / "json-extraction")
    bad = fixture.expected.replace('"quantity": 12', '"quantity": "12"')
    quality = score_answer(bad, fixture.checks)
    assert quality.checks[1].detail == (
        "schema violation at $.items[0].quantity: '12' is not of type 'integer'"
    )
    assert quality.checks[1].passed is False
    assert quality.score == 6.0


# --- broken fixtures -----------------------------------------------------------------------


def make(tmp_path: Path, manifest: str, **files: str) -> Path:
    folder = tmp_path / "fx"
    folder.mkdir()
    (folder / "fixture.toml").write_text(manifest)
    for name, text in {"prompt.j2": "Say {{ files['in.txt'] }}", "in.txt": "hi", **files}.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


GOOD = """template = "prompt.j2"
inputs = ["in.txt"]
expected = "in.txt"

[[checks]]
kind = "contains"
text = "hi"
"""


def refused(folder: Path) -> str:
    with pytest.raises(FixtureError) as info:
        load_fixture(folder)
    return str(info.value)


def test_a_good_fixture(tmp_path):
    fixture = load_fixture(make(tmp_path, GOOD))
    assert fixture.prompt == "Say hi"
    assert fixture.expected == "hi"


def test_missing_folder_or_manifest(tmp_path):
    assert refused(tmp_path / "nope") == f"fixture folder not found: {tmp_path / 'nope'}"
    manifest = tmp_path / "fixture.toml"
    assert refused(tmp_path) == f"fixture file not found: {manifest}"


def test_missing_file_names_the_field_and_line(tmp_path):
    folder = make(tmp_path, GOOD.replace('expected = "in.txt"', 'expected = "out.txt"'))
    assert refused(folder) == (
        f"{folder / 'fixture.toml'}:3: field 'expected': file not found: "
        f"{(folder / 'out.txt').resolve()}"
    )
    folder2 = tmp_path / "fx"
    (folder2 / "fixture.toml").write_text(GOOD.replace('["in.txt"]', '["in.txt", "b.txt"]'))
    assert refused(folder2) == (
        f"{folder2 / 'fixture.toml'}:2: field 'inputs.1': file not found: "
        f"{(folder2 / 'b.txt').resolve()}"
    )


def test_paths_must_stay_in_the_folder(tmp_path):
    folder = make(tmp_path, GOOD.replace('template = "prompt.j2"', 'template = "../../etc/passwd"'))
    assert refused(folder) == (
        f"{folder / 'fixture.toml'}:1: field 'template': '../../etc/passwd' is outside the "
        "fixture folder"
    )


def test_bad_toml(tmp_path):
    folder = make(tmp_path, 'template = "prompt.j2\n')
    assert refused(folder).startswith(f"{folder / 'fixture.toml'}: not valid TOML: ")
    assert "line 1" in refused(folder)


def test_bad_checks_name_file_line_and_field(tmp_path):
    manifest = GOOD + '\n[[checks]]\nkind = "regex"\npattern = "def ("\n'
    folder = make(tmp_path, manifest)
    assert refused(folder) == (
        f"{folder / 'fixture.toml'}:11: field 'checks.1.pattern': Value error, bad regular "
        "expression 'def (': missing ), unterminated subpattern at position 4"
    )
    folder = tmp_path / "fx"
    (folder / "fixture.toml").write_text(GOOD + '\n[[checks]]\nkind = "sentiment"\n')
    message = refused(folder)
    assert message.startswith(f"{folder / 'fixture.toml'}:10: field 'checks.1.kind': Input tag")
    (folder / "fixture.toml").write_text(
        GOOD + '\n[[checks]]\nkind = "json_schema"\nschema_file = "schema.json"\n'
    )
    assert refused(folder) == (
        f"{folder / 'fixture.toml'}:11: field 'checks.1.schema_file': Value error, schema file "
        f"not found: {(folder / 'schema.json').resolve()}"
    )
    (folder / "fixture.toml").write_text(
        GOOD + '\n[[checks]]\nkind = "json_schema"\nschema = { type = "text" }\n'
    )
    assert refused(folder) == (
        f"{folder / 'fixture.toml'}:11: field 'checks.1.schema': Value error, not a valid JSON "
        "Schema at type: 'text' is not valid under any of the given schemas"
    )
    (folder / "fixture.toml").write_text(
        GOOD.replace('[[checks]]\nkind = "contains"\ntext = "hi"\n', "")
    )
    assert refused(folder) == (f"{folder / 'fixture.toml'}: field 'checks': Field required")


# --- templates -----------------------------------------------------------------------------


def template_error(tmp_path: Path, template: str) -> str:
    folder = make(tmp_path, GOOD, prompt__j2=template)
    return refused(folder).removeprefix(str((folder / "prompt.j2").resolve()))


def test_undefined_variable_is_an_error(tmp_path):
    assert template_error(tmp_path, "Hello\n{{ name }}") == (
        ":2: template error: UndefinedError: 'name' is undefined"
    )


def test_template_syntax_error(tmp_path):
    assert template_error(tmp_path, "a\nb\n{% for x in files %}") == (
        ":3: template syntax error: Unexpected end of template. Jinja was looking for the "
        "following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'."
    )


def test_template_cannot_reach_python_internals(tmp_path):
    assert template_error(tmp_path, "{{ ''.__class__.__mro__ }}") == (
        ":1: template error: SecurityError: access to attribute '__class__' of 'str' object "
        "is unsafe."
    )


def test_rendered_size_is_capped(tmp_path):
    assert template_error(tmp_path, "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}") == (
        ": the rendered prompt is longer than 200,000 characters"
    )


def test_memory_bomb_in_a_template(tmp_path):
    assert template_error(tmp_path, "{{ 'x' * 10**10 }}") == (":1: template error: MemoryError")


def test_endless_template_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(fixtures_module, "RENDER_TIMEOUT_S", 1.0)
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    assert template_error(tmp_path, loop) == ": rendering killed after 1 s (timeout)"
