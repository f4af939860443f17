"""Hostile answers are scored without hanging or breaking the terminal: 10 MB of text, nested
JSON bombs, catastrophic regexes, escape sequences in everything a detail can quote."""

from __future__ import annotations

import re

import pytest

from llmbench_tui.quality import Quality, find_tsc, matching, parse_checks, score_answer

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
TEN_MB = 10 * 2**20

EVERY_KIND = [
    {"kind": "contains", "text": "needle"},
    {"kind": "not_contains", "text": "needle"},
    {"kind": "regex", "pattern": r"(\w+\s?)*needle"},
    {"kind": "exact", "text": "needle"},
    {"kind": "json"},
    {"kind": "json_schema", "schema": {"type": "array", "items": {"type": "integer"}}},
    {"kind": "length", "max_words": 1000},
    {"kind": "python", "tests": "assert True"},
    {"kind": "typescript"},
    {
        "kind": "structure",
        "rules": [
            {"name": "word", "pattern": r"\bx+\b"},
            {"name": "no-escape", "pattern": "\x1b", "must": False},
        ],
    },
]


def assert_printable(quality: Quality) -> None:
    for check in quality.checks:
        for text in (check.name, check.detail):
            assert CONTROL.search(text) is None, repr(text)
            assert len(text) <= 200, text


@pytest.fixture(scope="module")
def tsc() -> str:
    path, reason = find_tsc()
    assert path, f"{reason} — run `npm ci` at the repository root to install the pinned tsc"
    return path


def test_ten_megabytes_through_every_kind(tsc):
    answer = ("x" * 1000 + "\x1b[2J\r\n") * (TEN_MB // 1006)
    assert len(answer) > 10_000_000
    quality = score_answer(answer, parse_checks(EVERY_KIND), allow_code_exec=True)
    assert len(quality.checks) == len(EVERY_KIND)
    assert_printable(quality)
    by_kind = {c.kind: c for c in quality.checks}
    size = f"{len(answer):,}"
    for kind in ("python", "typescript"):
        assert (
            by_kind[kind].detail == f"the code is {size} characters; code checks stop at 1,000,000"
        )
        assert by_kind[kind].passed is False
    assert by_kind["contains"].passed is False
    assert by_kind["length"].detail.startswith("10423 words, more than max_words=1000")
    assert by_kind["structure"].detail == "1/2 rules hold; failed: no-escape (present at line 1)"


def test_ten_megabytes_of_prose_around_a_small_block():
    answer = "lorem ipsum " * (TEN_MB // 12) + "\n```python\ndef f():\n    return 1\n```\n"
    quality = score_answer(answer, parse_checks([{"kind": "python"}]))
    assert quality.checks[0].detail == "compiles"


@pytest.mark.parametrize(
    "bomb",
    ["[" * 100_000, '{"a":' * 100_000, "[" * TEN_MB],
    ids=["arrays", "objects", "ten-megabytes"],
)
def test_nested_json_bomb(bomb):
    checks = parse_checks([{"kind": "json"}, {"kind": "json_schema", "schema": {"type": "array"}}])
    quality = score_answer(bomb, checks)
    assert [(c.passed, c.score) for c in quality.checks] == [(False, 0.0), (False, 0.0)]
    assert quality.checks[0].detail == "not valid JSON in the answer: nested too deeply to parse"
    assert quality.score == 0.0


def test_deep_but_valid_json_against_a_recursive_schema():
    deep = "[" * 900 + "]" * 900
    schema = {"type": "array", "items": {"$ref": "#"}}
    quality = score_answer(deep, parse_checks([{"kind": "json_schema", "schema": schema}]))
    assert (quality.checks[0].passed, quality.checks[0].detail) == (
        False,
        "the JSON in the answer is nested too deeply to validate",
    )


def test_huge_number_in_json():
    quality = score_answer("1" * 5000, parse_checks([{"kind": "json"}]))
    assert quality.checks[0].passed is False
    assert quality.checks[0].detail.startswith("not valid JSON in the answer: Exceeds the limit")


def test_catastrophic_regex_times_out_alone(monkeypatch):
    monkeypatch.setattr(matching, "REGEX_TIMEOUT_S", 1.0)
    checks = parse_checks(
        [
            {"kind": "regex", "pattern": "^(a+)+$"},
            {"kind": "regex", "pattern": "!$"},
            {
                "kind": "structure",
                "rules": [
                    {"name": "slow", "pattern": "^(a|aa)+$"},
                    {"name": "starts-with-a", "pattern": "^a"},
                ],
            },
        ]
    )
    quality = score_answer("a" * 40 + "!", checks)
    timed_out = "regex search did not finish within 1 s (catastrophic backtracking?)"
    assert [(c.passed, c.score, c.detail) for c in quality.checks] == [
        (None, None, timed_out),
        (True, 1.0, "matched at line 1"),
        (True, 1.0, f"1/1 rules hold; not run: slow ({timed_out})"),
    ]
    assert quality.score == 10.0  # the regex that could not finish is left out, not passed


ESCAPES = "\x1b[2J\x1b]52;c;ZXZpbA==\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\r\x08\x00\u202e"


def test_escape_sequences_never_reach_a_detail():
    answer = f"{ESCAPES}hello{ESCAPES}\n```python\nx = '{ESCAPES}'\nif x\n```"
    checks = parse_checks(
        [
            {"kind": "exact", "text": f"bye{ESCAPES}"},
            {"kind": "contains", "text": f"{ESCAPES}nothing"},
            {"kind": "json"},
            {"kind": "json_schema", "schema": {"type": "integer"}},
            {"kind": "python"},
            {"kind": "regex", "pattern": "nothing\x1b"},
            {"kind": "contains", "text": "x", "name": f"named{ESCAPES}"},
        ]
    )
    quality = score_answer(answer, checks)
    assert_printable(quality)
    # Escapes (and the text they hide, like a hyperlink's target) are gone; the link text stays.
    assert quality.checks[0].detail == (
        "differs at character 1: expected 'byelink', got 'linkhellolink ```python x = '…'"
    )
    assert quality.checks[-1].name == "namedlink"


def test_escape_sequences_in_json_and_typescript_errors(tsc):
    json_answer = '{"name": "' + ESCAPES.replace("\\", "\\\\").replace("\x00", "") + '"}'
    schema = {"type": "object", "properties": {"name": {"type": "integer"}}}
    quality = score_answer(json_answer, parse_checks([{"kind": "json_schema", "schema": schema}]))
    assert quality.checks[0].passed is False
    ts_answer = f"const s: number = '{ESCAPES}'\nconst {ESCAPES}x = 1\n"
    quality = score_answer(ts_answer, parse_checks([{"kind": "typescript"}]))
    assert quality.checks[0].passed is False
    assert_printable(quality)
