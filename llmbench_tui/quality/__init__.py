"""Answer quality: checks attached to prompts, fixtures, and a 0–10 score for every answer.

The public surface, for the suite loader, the engine and the commands:

- ``CheckSpec`` — one check of any kind (pydantic discriminated union on ``kind``), for
  ``checks: list[CheckSpec]`` fields; ``parse_checks`` validates a list with ``schema_file``
  paths relative to a folder; ``error_location`` / ``validation_message`` name the field (and
  line) of a validation error.
- ``score_answer(answer, checks, allow_code_exec=False) -> Quality`` — the quality block of a
  run record (``Quality`` and ``CheckResult`` are its pydantic models).
- ``load_fixture(path) -> Fixture`` — a fixture folder's rendered prompt, expected answer and
  checks; ``FixtureError`` names file, line and field.
- ``find_tsc()`` — which ``tsc`` the ``typescript`` check would use, or why there is none.
"""

from .checks import KINDS, CheckSpec, error_location, parse_checks
from .fixtures import Fixture, FixtureError, load_fixture, validation_message
from .results import CheckResult, Quality
from .scoring import score_answer
from .typescript import find_tsc

__all__ = [
    "KINDS",
    "CheckResult",
    "CheckSpec",
    "Fixture",
    "FixtureError",
    "Quality",
    "error_location",
    "find_tsc",
    "load_fixture",
    "parse_checks",
    "score_answer",
    "validation_message",
]
