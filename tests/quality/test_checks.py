"""Every check kind on known-good and known-bad answers: the exact score and detail; the run
score; and check specs that are refused when loaded, with the field named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmbench_tui.quality import (
    KINDS,
    CheckResult,
    Quality,
    error_location,
    find_tsc,
    parse_checks,
    score_answer,
)


def one(answer: str, spec: dict, *, allow_code_exec: bool = False) -> CheckResult:
    quality = score_answer(answer, parse_checks([spec]), allow_code_exec=allow_code_exec)
    (result,) = quality.checks
    return result


def outcome(result: CheckResult) -> tuple:
    return result.passed, result.score, result.detail


@pytest.fixture(scope="module")
def tsc() -> str:
    path, reason = find_tsc()
    assert path, f"{reason} — run `npm ci` at the repository root to install the pinned tsc"
    return path


FIB = (
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
)


# --- contains / not_contains ---------------------------------------------------------------


def test_contains():
    spec = {"kind": "contains", "text": "Blue"}
    assert outcome(one("The sky\nis blue.", spec)) == (True, 1.0, "'Blue' found at line 2")
    assert outcome(one("The sky is grey.", spec)) == (False, 0.0, "'Blue' not found")
    strict = {**spec, "case_sensitive": True}
    assert outcome(one("The sky is blue.", strict)) == (False, 0.0, "'Blue' not found")
    assert one("x", spec).name == "contains:Blue"


def test_not_contains():
    spec = {"kind": "not_contains", "text": "As an AI"}
    assert outcome(one("Paris.", spec)) == (True, 1.0, "'As an AI' not found")
    assert outcome(one("ok\nas an ai, I", spec)) == (False, 0.0, "'As an AI' found at line 2")


# --- regex ---------------------------------------------------------------------------------


def test_regex():
    spec = {"kind": "regex", "pattern": r"def fib\("}
    assert outcome(one("Here:\ndef fib(n): ...", spec)) == (True, 1.0, "matched at line 2")
    assert outcome(one("def fibonacci(n): ...", spec)) == (False, 0.0, r"no match for /def fib\(/")
    flagged = {"kind": "regex", "pattern": "^answer: yes$", "flags": "im"}
    assert outcome(one("x\nANSWER: Yes\ny", flagged)) == (True, 1.0, "matched at line 2")
    assert one("", spec).name == r"regex:def fib\("


# --- exact ---------------------------------------------------------------------------------


def test_exact():
    spec = {"kind": "exact", "text": "hello there"}
    assert outcome(one("  hello there\n", spec)) == (True, 1.0, "matches the expected text")
    assert outcome(one("hello world", spec)) == (
        False,
        0.0,
        "differs at character 7: expected 'there', got 'world'",
    )
    assert outcome(one("hello", spec)) == (
        False,
        0.0,
        "differs at character 6: expected 'there', got the end of the text",
    )
    no_strip = {**spec, "strip": False}
    assert outcome(one("hello there\n", no_strip)) == (
        False,
        0.0,
        "differs at character 12: expected the end of the text, got ''",
    )


# --- json / json_schema --------------------------------------------------------------------


def test_json():
    spec = {"kind": "json"}
    assert outcome(one('{"a": [1, 2]}', spec)) == (True, 1.0, "valid JSON (object) in the answer")
    fenced = "Sure:\n```json\n[1, 2]\n```\nDone."
    assert outcome(one(fenced, spec)) == (
        True,
        1.0,
        "valid JSON (array) in the fenced block at line 2",
    )
    assert outcome(one('{"a": 1 "b": 2}', spec)) == (
        False,
        0.0,
        "not valid JSON in the answer: Expecting ',' delimiter (line 1, column 9)",
    )
    assert outcome(one("Sure:\n```json\n[1, 2,]\n```", spec)) == (
        False,
        0.0,
        "not valid JSON in the fenced block at line 2: Expecting value (line 3, column 7)",
    )
    assert outcome(one("no json here", spec)) == (
        False,
        0.0,
        "not valid JSON in the answer: Expecting value (line 1, column 1)",
    )


SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


def test_json_schema():
    spec = {"kind": "json_schema", "schema": SCHEMA}
    good = '```json\n{"name": "Ada", "age": 36}\n```'
    assert outcome(one(good, spec)) == (
        True,
        1.0,
        "the JSON in the fenced block at line 1 matches the schema",
    )
    assert outcome(one('{"name": "Ada", "age": "36"}', spec)) == (
        False,
        0.0,
        "schema violation at $.age: '36' is not of type 'integer'",
    )
    assert outcome(one('{"age": -1}', spec)) == (
        False,
        0.0,
        "schema violation at $: 'name' is a required property (+1 more)",
    )
    assert outcome(one("{'name': 'Ada'}", spec))[:2] == (False, 0.0)


def test_json_schema_file_is_relative_to_base_dir(tmp_path):
    (tmp_path / "person.json").write_text('{"type": "object", "required": ["name"]}')
    (check,) = parse_checks([{"kind": "json_schema", "schema_file": "person.json"}], tmp_path)
    assert check.name == "json_schema:person.json"
    quality = score_answer('{"name": "Ada"}', [check])
    assert quality.checks[0].detail == "the JSON in the answer matches the schema"
    quality = score_answer("{}", [check])
    assert quality.checks[0].detail == "schema violation at $: 'name' is a required property"


# --- length --------------------------------------------------------------------------------


def test_length():
    spec = {"kind": "length", "min_words": 3, "max_chars": 30}
    assert outcome(one("one two  three", spec)) == (True, 1.0, "3 words, 14 characters")
    assert outcome(one("one two", spec)) == (False, 0.0, "2 words, fewer than min_words=3")
    long = "word " * 10
    assert outcome(one(long, spec)) == (False, 0.0, "50 chars, more than max_chars=30")
    spec = {"kind": "length", "max_words": 1, "min_chars": 100}
    assert outcome(one("two words", spec)) == (
        False,
        0.0,
        "2 words, more than max_words=1; 9 chars, fewer than min_chars=100",
    )


# --- python --------------------------------------------------------------------------------


def test_python_compiles():
    spec = {"kind": "python"}
    assert outcome(one(f"Here it is:\n```python\n{FIB}```\n", spec)) == (True, 1.0, "compiles")
    assert outcome(one("def fib(n)\n    return n\n", spec)) == (
        False,
        0.0,
        "SyntaxError line 1: expected ':'",
    )
    # Line numbers are lines of the answer, not of the block.
    fenced = "Sure.\n\n```py\nx = 1\nif x\n    pass\n```"
    assert outcome(one(fenced, spec)) == (False, 0.0, "SyntaxError line 5: expected ':'")
    indented = "```python\ndef f():\nreturn 1\n```"
    assert outcome(one(indented, spec)) == (
        False,
        0.0,
        "IndentationError line 3: expected an indented block after function definition on line 2",
    )
    assert outcome(one("```python\n\n```", spec)) == (False, 0.0, "no Python code in the answer")


def test_python_picks_the_python_block():
    answer = "Run it:\n```sh\npython fib.py\n```\nCode:\n```python\n" + FIB + "```"
    assert outcome(one(answer, {"kind": "python"})) == (True, 1.0, "compiles")


def test_python_tests():
    spec = {"kind": "python", "tests": "assert fib(10) == 55\nassert fib(1) == 1"}
    good = f"```python\n{FIB}```"
    assert outcome(one(good, spec, allow_code_exec=True)) == (True, 1.0, "tests passed")
    wrong = "```python\ndef fib(n):\n    return n\n```"
    assert outcome(one(wrong, spec, allow_code_exec=True)) == (
        False,
        0.0,
        "AssertionError: assert fib(10) == 55 (tests line 1)",
    )
    raising = "```python\ndef fib(n):\n    return n / 0\n```"
    assert outcome(one(raising, spec, allow_code_exec=True)) == (
        False,
        0.0,
        "ZeroDivisionError: division by zero (answer line 3)",
    )
    # Without permission the tests do not run; the check is left out, not passed.
    assert outcome(one(good, spec)) == (
        None,
        None,
        "compiles; tests not run: code execution not allowed (--allow-code-exec)",
    )
    # A syntax error fails the check whether or not code may run.
    assert outcome(one("def fib(n) return n", spec)) == (
        False,
        0.0,
        "SyntaxError line 1: expected ':'",
    )


def test_python_exit_does_not_pass():
    spec = {"kind": "python", "tests": "assert False"}
    early = "import os\nos._exit(0)\n"
    assert outcome(one(early, spec, allow_code_exec=True)) == (
        False,
        0.0,
        "the code ended the process before the tests finished (exit 0)",
    )
    leaving = "import sys\nsys.exit(0)\n"
    assert outcome(one(leaving, spec, allow_code_exec=True)) == (
        False,
        0.0,
        "the answer called exit(0) before the tests finished",
    )


# --- typescript ----------------------------------------------------------------------------


def test_typescript(tsc):
    spec = {"kind": "typescript"}
    good = "```ts\nexport function add(a: number, b: number): number {\n  return a + b\n}\n```"
    assert outcome(one(good, spec)) == (True, 1.0, "tsc --strict: no errors")
    bad = "Here:\n```typescript\nconst a: number = 1\nconst b: number = 'two'\n```"
    assert outcome(one(bad, spec)) == (
        False,
        0.0,
        "TS2322: Type 'string' is not assignable to type 'number'. (line 4)",
    )
    untyped = "function f(x) { return x.y }\nconst n: number = 'a'\n"
    assert outcome(one(untyped, spec)) == (
        False,
        0.0,
        "TS7006: Parameter 'x' implicitly has an 'any' type. (line 1); 1 more: TS2322",
    )


def test_typescript_vue_script_block(tsc):
    spec = {"kind": "typescript"}
    vue = (
        "```vue\n<template><p>{{ n }}</p></template>\n"
        '<script setup lang="ts">\nconst n: number = 1\nconst s: string = n\n</script>\n```'
    )
    assert outcome(one(vue, spec)) == (
        False,
        0.0,
        "TS2322: Type 'number' is not assignable to type 'string'. (line 5)",
    )
    js_only = "<template><p/></template>\n<script>\nexport default {}\n</script>\n"
    assert outcome(one(js_only, spec)) == (
        False,
        0.0,
        'no <script lang="ts"> block in the Vue component',
    )


def test_typescript_prelude_lines_are_not_counted(tsc):
    prelude = "// line 1\n// line 2\ndeclare function defineProps<T>(): T\n"
    spec = {"kind": "typescript", "prelude": prelude}
    code = "const p = defineProps<{ n: number }>()\nconst s: string = p.n\n"
    assert outcome(one(code, spec)) == (
        False,
        0.0,
        "TS2322: Type 'number' is not assignable to type 'string'. (line 2)",
    )
    broken = {"kind": "typescript", "prelude": "declare const x: Missing\n"}
    assert outcome(one("export {}\n", broken)) == (
        False,
        0.0,
        "TS2304: Cannot find name 'Missing'. (prelude line 1)",
    )


# --- structure -----------------------------------------------------------------------------


STRUCTURE = {
    "kind": "structure",
    "rules": [
        {"name": "script-setup-ts", "pattern": r'<script\s+setup\s+lang="ts">'},
        {"name": "typed-props", "pattern": "defineProps<"},
        {"name": "no-any", "pattern": r":\s*any\b", "must": False},
    ],
}


def test_structure():
    good = '<script setup lang="ts">\nconst p = defineProps<{ a: string }>()\n</script>'
    assert outcome(one(good, STRUCTURE)) == (True, 1.0, "3/3 rules hold")
    missing = '<script setup lang="ts">\nconst p = defineProps({ a: String })\n</script>'
    assert outcome(one(missing, STRUCTURE)) == (
        False,
        2 / 3,
        "2/3 rules hold; failed: typed-props (missing)",
    )
    worse = "<script>\nlet x: any = 1\n</script>"
    assert outcome(one(worse, STRUCTURE)) == (
        False,
        0.0,
        "0/3 rules hold; failed: script-setup-ts (missing), typed-props (missing), "
        "no-any (present at line 2)",
    )


# --- the run score -------------------------------------------------------------------------


def test_every_kind_is_covered_here():
    assert set(KINDS) == {
        "contains",
        "not_contains",
        "regex",
        "exact",
        "json",
        "json_schema",
        "length",
        "python",
        "typescript",
        "structure",
        "judge",  # graded by a judge model after the runs: tests/engine/test_judge_runs.py
    }


def test_weighted_mean_times_ten():
    checks = parse_checks(
        [
            {"kind": "contains", "text": "a", "weight": 3},
            {"kind": "contains", "text": "zzz"},
            STRUCTURE,
        ]
    )
    quality = score_answer('a <script setup lang="ts">', checks)
    # (3 * 1 + 1 * 0 + 1 * 2/3) / 5 * 10
    assert quality.score == 7.333
    assert [c.passed for c in quality.checks] == [True, False, False]
    assert quality.scored_at.endswith("Z")
    assert Quality.model_validate(quality.model_dump()) == quality


def test_checks_that_did_not_run_are_left_out():
    checks = parse_checks(
        [
            {"kind": "python", "tests": "assert f() == 1"},
            {"kind": "contains", "text": "def f"},
            {"kind": "contains", "text": "missing", "weight": 3},
        ]
    )
    quality = score_answer("def f():\n    return 1\n", checks)
    assert [c.passed for c in quality.checks] == [None, True, False]
    assert quality.score == 2.5  # (1 * 1 + 3 * 0) / 4 * 10: the python check is not counted


def test_no_check_ran_means_no_score():
    checks = parse_checks([{"kind": "python", "tests": "assert True"}])
    quality = score_answer("x = 1", checks)
    assert quality.score is None
    assert quality.checks[0].detail.startswith("compiles; tests not run")
    assert score_answer("anything", []).score is None


def test_record_shape():
    quality = score_answer(
        "hi", parse_checks([{"kind": "contains", "text": "hi", "name": "greet"}])
    )
    data = quality.model_dump(mode="json")
    assert set(data) == {"score", "checks", "scored_at", "judge"}
    assert data["judge"] is None
    assert data["checks"] == [
        {
            "name": "greet",
            "kind": "contains",
            "passed": True,
            "score": 1.0,
            "detail": "'hi' found at line 1",
            "weight": 1.0,
        }
    ]


# --- bad check specs -----------------------------------------------------------------------


def refused(spec: dict, base_dir=".") -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        parse_checks([spec], base_dir)
    return [(".".join(map(str, error_location(e))), e["msg"]) for e in info.value.errors()]


def test_unknown_kind_names_the_kind_field():
    ((field, msg),) = refused({"kind": "spellcheck"})
    assert field == "0.kind"
    assert "'spellcheck'" in msg and "'contains'" in msg
    ((field, msg),) = refused({"text": "x"})
    assert field == "0.kind"


def test_bad_regex_names_the_pattern_field():
    assert refused({"kind": "regex", "pattern": "def fib("}) == [
        (
            "0.pattern",
            "Value error, bad regular expression 'def fib(': "
            "missing ), unterminated subpattern at position 7",
        )
    ]
    rules = {
        "kind": "structure",
        "rules": [{"name": "ok", "pattern": "a"}, {"name": "b", "pattern": "[z"}],
    }
    assert refused(rules) == [
        (
            "0.rules.1.pattern",
            "Value error, bad regular expression '[z': unterminated character set at position 0",
        )
    ]
    assert refused({"kind": "regex", "pattern": "a", "flags": "q"})[0][0] == "0.flags"


def test_schema_that_is_not_a_schema():
    assert refused({"kind": "json_schema", "schema": {"type": "integr"}}) == [
        (
            "0.schema",
            "Value error, not a valid JSON Schema at type: 'integr' is not valid under any of "
            "the given schemas",
        )
    ]


def test_missing_or_bad_schema_file(tmp_path):
    ((field, msg),) = refused({"kind": "json_schema", "schema_file": "nope.json"}, tmp_path)
    assert field == "0.schema_file"
    assert msg == f"Value error, schema file not found: {tmp_path.resolve() / 'nope.json'}"
    (tmp_path / "bad.json").write_text('{"type": 5}')
    ((field, msg),) = refused({"kind": "json_schema", "schema_file": "bad.json"}, tmp_path)
    assert (field, msg) == (
        "0.schema_file",
        "Value error, not a valid JSON Schema at type: 5 is not valid under any of the given "
        "schemas",
    )
    ((field, msg),) = refused({"kind": "json_schema"})
    assert msg == "Value error, give exactly one of 'schema' (an inline table) or 'schema_file'"


def test_other_bad_specs():
    assert refused({"kind": "contains", "text": "a", "weight": 0})[0][0] == "0.weight"
    assert refused({"kind": "contains", "txt": "a"}) == [
        ("0.text", "Field required"),
        ("0.txt", "Extra inputs are not permitted"),
    ]
    assert refused({"kind": "length"}) == [
        ("0", "Value error, give at least one of min_words, max_words, min_chars, max_chars")
    ]
    assert refused({"kind": "length", "min_words": 5, "max_words": 2}) == [
        ("0", "Value error, min_words (5) is greater than max_words (2)")
    ]
    assert refused({"kind": "python", "tests": "assert (1"}) == [
        ("0.tests", "Value error, the tests do not compile: line 1: '(' was never closed")
    ]
