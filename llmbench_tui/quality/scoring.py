"""Scoring an answer against its checks.

Each check gives a score from 0 to 1 and a one-line detail; a check that could not run (no
``tsc``, code execution not allowed, a regex that did not finish) has ``passed`` and ``score``
``None`` and is left out of the run's score, which is the weighted mean of the checks that ran
× 10, rounded to 3 decimals (``None`` when none ran).

Answers are untrusted and may be hostile. Plain-text checks work in one linear pass over the
answer, whatever its size; regex searches run in a subprocess with a time limit (see
``matching``); JSON nested too deeply for the parser fails its check instead of raising; code
checks compile and type-check at most ``MAX_CODE_CHARS`` characters of code — a longer block
fails without being compiled, as no benchmark answer is that long and ``tsc`` would take minutes.
One known gap: JSON Schema validation runs in our process, so a suite's schema whose
``pattern`` keyword backtracks catastrophically could be made slow by the data; keep schema
patterns simple (anchored, no nested quantifiers).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from jsonschema.exceptions import best_match

from . import checks as c
from .extract import (
    JSON,
    PYTHON,
    TYPESCRIPT,
    NoTypeScriptBlock,
    code_of,
    fenced_block,
    typescript_source,
)
from .matching import Search, search_all
from .pycheck import compile_error, run_tests
from .results import CheckResult, Quality, quote
from .sandbox import SandboxUnavailable
from .typescript import typecheck

MAX_CODE_CHARS = 1_000_000
NO_CODE_EXEC = "code execution not allowed (--allow-code-exec)"
NOT_JUDGED = "not judged: no judge configured (--judge SPEC, or the check's 'judge')"
_WORD = re.compile(r"\S+")
_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}

Outcome = tuple[bool | None, float | None, str]  # passed, score, detail


def score_answer(
    answer: str, checks: Sequence[c.CheckSpec], *, allow_code_exec: bool = False
) -> Quality:
    """Apply ``checks`` to ``answer``; model-written code runs only with ``allow_code_exec``."""
    searches = _run_searches(answer, checks)
    results = []
    for check in checks:
        try:
            passed, score, detail = _EVALUATORS[check.kind](
                check, answer, allow_code_exec, searches
            )
        except (OSError, RuntimeError, ValueError) as exc:
            # No temporary folder, no process to start...: one check is not run, and the
            # run's other checks and its timings are still recorded.
            passed, score, detail = None, None, f"the check could not run: {exc}"
        results.append(
            CheckResult(
                name=check.name,
                kind=check.kind,
                passed=passed,
                score=score,
                detail=detail,
                weight=check.weight,
            )
        )
    ran = [
        (check.weight, r.score)
        for check, r in zip(checks, results, strict=True)
        if r.score is not None
    ]
    total = sum(weight for weight, _ in ran)
    score = round(10 * sum(w * s for w, s in ran) / total, 3) if ran else None
    return Quality(score=score, checks=results)


def _patterns(check: c.CheckSpec) -> list[tuple[str, int]]:
    if isinstance(check, c.RegexCheck):
        return [(check.pattern, c.regex_flags(check.flags))]
    if isinstance(check, c.StructureCheck):
        return [(rule.pattern, c.regex_flags(rule.flags)) for rule in check.rules]
    return []


def _run_searches(answer: str, checks: Sequence[c.CheckSpec]) -> dict[int, list[Search]]:
    """Every regex of every check, searched in one subprocess; keyed by ``id(check)``."""
    wanted = [(check, _patterns(check)) for check in checks]
    flat = [p for _, patterns in wanted for p in patterns]
    if not flat:
        return {}
    try:
        found = search_all(answer, flat)
    except SandboxUnavailable as exc:
        found = [Search(None, str(exc))] * len(flat)
    out, i = {}, 0
    for check, patterns in wanted:
        out[id(check)] = found[i : i + len(patterns)]
        i += len(patterns)
    return out


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _contains(check: Any, answer: str, *_: Any) -> Outcome:
    hay, needle = answer, check.text
    if not check.case_sensitive:
        hay, needle = hay.casefold(), needle.casefold()
    at = hay.find(needle)
    found = f"{quote(check.text)} found at line {_line(hay, at)}"
    missing = f"{quote(check.text)} not found"
    if check.kind == "contains":
        return (True, 1.0, found) if at >= 0 else (False, 0.0, missing)
    return (False, 0.0, found) if at >= 0 else (True, 1.0, missing)


def _regex(check: Any, answer: str, _exec: bool, searches: dict[int, list[Search]]) -> Outcome:
    (search,) = searches[id(check)]
    if search.position is None:
        return None, None, search.error
    if search.position < 0:
        return False, 0.0, f"no match for /{check.pattern}/"
    return True, 1.0, f"matched at line {_line(answer, search.position)}"


def _exact(check: Any, answer: str, *_: Any) -> Outcome:
    got, expected = (answer.strip(), check.text.strip()) if check.strip else (answer, check.text)
    if got == expected:
        return True, 1.0, "matches the expected text"
    i = _common_prefix(got, expected)
    # Excerpts are cut after cleaning, so an escape sequence is never cut in half.
    want = quote(expected[i : i + 1000], 30) if i < len(expected) else "the end of the text"
    have = quote(got[i : i + 1000], 30) if i < len(got) else "the end of the text"
    return False, 0.0, f"differs at character {i + 1}: expected {want}, got {have}"


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slices (C speed on megabytes)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def parse_json(answer: str) -> tuple[Any, str | None, str]:
    """``(value, None, where)`` for the answer's JSON, or ``(None, error, where)``.

    The whole answer is tried first, then its first fenced ``json`` (or untagged) block.
    """
    value, error = _loads(answer, 0)
    if error is None:
        return value, None, "the answer"
    block = fenced_block(answer, JSON)
    if block is None:
        return None, error, "the answer"
    where = f"the fenced block at line {block.line_offset}"
    value, error = _loads(block.text, block.line_offset)
    return value, error, where


def _loads(text: str, line_offset: int) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"{exc.msg} (line {exc.lineno + line_offset}, column {exc.colno})"
    except RecursionError:
        return None, "nested too deeply to parse"
    except MemoryError:
        return None, "too large to parse"
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return None, str(exc)


def _json(check: Any, answer: str, *_: Any) -> Outcome:
    value, error, where = parse_json(answer)
    if error is not None:
        return False, 0.0, f"not valid JSON in {where}: {error}"
    return True, 1.0, f"valid JSON ({_JSON_TYPES[type(value)]}) in {where}"


def _json_schema(check: Any, answer: str, *_: Any) -> Outcome:
    value, error, where = parse_json(answer)
    if error is not None:
        return False, 0.0, f"not valid JSON in {where}: {error}"
    try:
        errors = list(itertools.islice(check.validator().iter_errors(value), 100))
        worst = best_match(errors)
    except RecursionError:
        return False, 0.0, f"the JSON in {where} is nested too deeply to validate"
    except Exception as exc:  # a schema $ref that cannot be resolved, and the like
        return None, None, f"the schema could not be applied: {type(exc).__name__}: {exc}"
    if worst is None:
        return True, 1.0, f"the JSON in {where} matches the schema"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return False, 0.0, f"schema violation at {worst.json_path}: {worst.message}{more}"


def _length(check: Any, answer: str, *_: Any) -> Outcome:
    words = sum(1 for _ in _WORD.finditer(answer))
    chars = len(answer)
    problems = []
    for value, unit, low, high in (
        (words, "words", check.min_words, check.max_words),
        (chars, "chars", check.min_chars, check.max_chars),
    ):
        if low is not None and value < low:
            problems.append(f"{value} {unit}, fewer than min_{unit}={low}")
        if high is not None and value > high:
            problems.append(f"{value} {unit}, more than max_{unit}={high}")
    if problems:
        return False, 0.0, "; ".join(problems)
    return True, 1.0, f"{words} words, {chars} characters"


def _too_long(code: str) -> str | None:
    if len(code) > MAX_CODE_CHARS:
        return f"the code is {len(code):,} characters; code checks stop at {MAX_CODE_CHARS:,}"
    return None


def _python(check: Any, answer: str, allow_code_exec: bool, *_: Any) -> Outcome:
    snippet = code_of(answer, PYTHON)
    if not snippet.text.strip():
        return False, 0.0, "no Python code in the answer"
    if too_long := _too_long(snippet.text):
        return False, 0.0, too_long
    try:
        error = compile_error(snippet.text, snippet.line_offset, check.timeout_s)
    except SandboxUnavailable as exc:
        return None, None, str(exc)
    if error is not None:
        return False, 0.0, error
    if check.tests is None:
        return True, 1.0, "compiles"
    if not allow_code_exec:
        return None, None, f"compiles; tests not run: {NO_CODE_EXEC}"
    passed, detail = run_tests(snippet.text, snippet.line_offset, check.tests, check.timeout_s)
    return passed, 1.0 if passed else 0.0, detail


def _typescript(check: Any, answer: str, *_: Any) -> Outcome:
    snippet = code_of(answer, TYPESCRIPT)
    if too_long := _too_long(snippet.text):
        return False, 0.0, too_long
    try:
        source = typescript_source(snippet.text)
    except NoTypeScriptBlock as exc:
        return False, 0.0, str(exc)
    if not source.strip():
        return False, 0.0, "no TypeScript code in the answer"
    outcome = typecheck(
        source, line_offset=snippet.line_offset, prelude=check.prelude, timeout_s=check.timeout_s
    )
    score = None if outcome.passed is None else float(outcome.passed)
    return outcome.passed, score, outcome.detail


def _structure(check: Any, answer: str, _exec: bool, searches: dict[int, list[Search]]) -> Outcome:
    held, failed, not_run = 0, [], []
    for rule, search in zip(check.rules, searches[id(check)], strict=True):
        if search.position is None:
            not_run.append(f"{rule.name} ({search.error})")
        elif (search.position >= 0) == rule.must:
            held += 1
        elif rule.must:
            failed.append(f"{rule.name} (missing)")
        else:
            failed.append(f"{rule.name} (present at line {_line(answer, search.position)})")
    ran = len(check.rules) - len(not_run)
    if ran == 0:
        return None, None, f"no rule could be checked: {not_run[0]}"
    detail = f"{held}/{ran} rules hold"
    if failed:
        detail += f"; failed: {', '.join(failed)}"
    if not_run:
        detail += f"; not run: {', '.join(not_run)}"
    return held == ran, held / ran, detail


def _judge(check: Any, *_: Any) -> Outcome:
    """Graded by a judge model after the measured runs (``engine.judge_runs``), never here."""
    if check.judge is None:
        return None, None, NOT_JUDGED
    return None, None, "not judged yet: the judge grades after the measured runs"


_EVALUATORS: dict[str, Callable[[Any, str, bool, dict[int, list[Search]]], Outcome]] = {
    "contains": _contains,
    "not_contains": _contains,
    "regex": _regex,
    "exact": _exact,
    "json": _json,
    "json_schema": _json_schema,
    "length": _length,
    "python": _python,
    "typescript": _typescript,
    "structure": _structure,
    "judge": _judge,
}
