"""Generation and session options as a compact two-column form.

Empty means "the backend's default" for generation options. ``read`` validates through the same
pydantic models as suite files (``Options``, ``Suite`` bounds), so the dashboard cannot build a
plan that ``--batch`` would reject, and a bad value becomes one sentence naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Input, Label, Select

from ...config import DEFAULT_MAX_TOKENS
from ...schema import Options, Suite

# (field id, label, input type, placeholder)
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("temperature", "temp", "number", "default"),
    ("max_tokens", "max tok", "integer", "default"),
    ("seed", "seed", "integer", "random"),
    ("repetitions", "reps", "integer", ""),
    ("warmup", "warm-up", "integer", ""),
    ("concurrency", "streams", "integer", ""),
    ("timeout", "timeout s", "number", "none"),
)
DEFAULTS = {
    "max_tokens": str(DEFAULT_MAX_TOKENS),
    "repetitions": "1",
    "warmup": "0",
    "concurrency": "1",
}
THINK = [
    ("think: off", "off"),
    ("think: on", "on"),
    ("think: low", "low"),
    ("think: medium", "medium"),
    ("think: high", "high"),
]


class OptionsError(ValueError):
    """A form value that cannot be used; ``str()`` is the sentence to show."""


class OptionsForm(Grid):
    """Label/input pairs; ``read()`` returns validated options and session settings."""

    DEFAULT_CSS = """
    OptionsForm {
        grid-size: 4; grid-columns: auto 1fr auto 1fr; grid-gutter: 0 1;
        height: auto; padding: 0 1;
    }
    OptionsForm > Label { height: 1; color: $text-muted; }
    OptionsForm > Input { height: 1; }
    OptionsForm > Select { column-span: 2; height: 1; }
    """

    def compose(self) -> ComposeResult:
        for key, label, kind, placeholder in FIELDS:
            yield Label(label)
            yield Input(
                DEFAULTS.get(key, ""),
                placeholder=placeholder,
                type=kind,
                compact=True,
                id=f"opt-{key}",
            )
        yield Select(THINK, prompt="think: auto", compact=True, id="opt-think")

    def _raw(self, key: str) -> str:
        return self.query_one(f"#opt-{key}", Input).value.strip()

    def read(self) -> tuple[Options, dict[str, Any]]:
        """(generation options, plan settings); raises ``OptionsError`` with one sentence."""
        values: dict[str, Any] = {}
        for key, label, kind, _ in FIELDS:
            raw = self._raw(key)
            if not raw:
                continue
            try:
                values[key] = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                raise OptionsError(f"{label} must be a number, not {raw!r}") from None
        think = self.query_one("#opt-think", Select).value
        if think in ("on", "off"):
            values["think"] = think == "on"
        elif isinstance(think, str):
            values["think"] = think
        plan = {
            "repetitions": values.pop("repetitions", 1),
            "warmup": values.pop("warmup", 0),
            "concurrency": values.pop("concurrency", 1),
        }
        timeout = values.pop("timeout", None)
        plan["ttft_timeout_s"] = plan["stall_timeout_s"] = timeout
        try:
            options = Options(**values)
            Suite(options=options, **plan)  # the suite file's bounds apply here too
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "options"
            raise OptionsError(f"{field}: {err['msg']}") from None
        return options, plan

    def fill(self, options: dict[str, Any]) -> None:
        """Put a stored run's options back into the form (a re-run from history)."""
        for key, _, _, _ in FIELDS:
            if key in options and options[key] is not None:
                self.query_one(f"#opt-{key}", Input).value = str(options[key])
        think = options.get("think")
        select = self.query_one("#opt-think", Select)
        if think is True or think is False:
            select.value = "on" if think else "off"
        elif think in ("low", "medium", "high"):
            select.value = think
        else:
            select.clear()
