"""Conversations in suite files: turns sent one after another, each with the whole history.

```toml
[[conversations]]
id = "trip"
system = "You are a concise travel agent."     # optional
turns = [
  "Plan one day in Lisbon.",
  "Make it cheaper.",
  "Now for two people, in three lines.",
]
[[conversations.checks]]          # a check of any kind, plus `turn`
turn = 3                          # 1-based; leave it out to check every turn
kind = "length"
max_words = 80
```

Each turn is one run record with ``conversation_id`` and ``turn`` (1-based) and the prompt id
``f"{id}#t{turn}"``, so statistics group per turn. A turn is sent with every earlier turn and
the model's own earlier answers (``Backend.stream(..., history=...)``). ``#`` is reserved in
conversation ids for that reason.

Checks are the ``[[prompts.checks]]`` tables with one more field, ``turn``: every check kind is
given a ``turn`` field here (a subclass per kind, so pydantic still picks the model from
``kind`` and error locations read ``conversations.0.checks.1.pattern``).
"""

from __future__ import annotations

import operator
import re
from functools import reduce
from typing import TYPE_CHECKING, Annotated, Any, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from .quality.checks import CheckSpec
from .quality.judge_prompt import one_judge_check

TURN_SEPARATOR = "#t"
_TURN_ID = re.compile(r"^(?P<conv>.+)#t(?P<turn>[1-9][0-9]*)$")


def _with_turn(model: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"Turn{model.__name__}",
        __base__=model,
        __doc__=f"{model.__doc__ or ''}\n\n``turn``: the 1-based turn checked; every turn when "
        "left out.",
        turn=(int | None, Field(default=None, ge=1)),
    )


_TURN_MODELS = tuple(_with_turn(model) for model in get_args(get_args(CheckSpec)[0]))

if TYPE_CHECKING:
    # The union is built at run time (one model per check kind); the type checker sees what
    # the code uses of it.
    class TurnCheckSpec(Protocol):
        kind: str
        name: str
        turn: int | None

else:
    TurnCheckSpec = Annotated[reduce(operator.or_, _TURN_MODELS), Field(discriminator="kind")]
    """A check of any kind with a ``turn`` field."""


def turn_id(conversation_id: str, turn: int) -> str:
    """The prompt id of a turn: ``trip#t2``."""
    return f"{conversation_id}{TURN_SEPARATOR}{turn}"


def parse_turn_id(prompt_id: str | None) -> tuple[str, int] | None:
    """``("trip", 2)`` for ``"trip#t2"``; ``None`` for a prompt id that is not a turn's."""
    match = _TURN_ID.match(prompt_id or "")
    return (match.group("conv"), int(match.group("turn"))) if match else None


class ConversationSpec(BaseModel):
    """One ``[[conversations]]`` table."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^[^#]+$")
    turns: list[str] = Field(min_length=1, max_length=1000)
    system: str | None = None
    tags: list[str] = Field(default_factory=list)
    checks: list[TurnCheckSpec] = Field(default_factory=list)

    @field_validator("turns")
    @classmethod
    def _turns_not_blank(cls, value: list[str]) -> list[str]:
        for i, text in enumerate(value, 1):
            if not text.strip():
                raise ValueError(f"turn {i} is empty")
            if len(text) > 200_000:
                raise ValueError(f"turn {i} is longer than 200,000 characters")
        return value

    @model_validator(mode="after")
    def _checks_fit(self) -> ConversationSpec:
        for check in self.checks:
            if check.turn is not None and check.turn > len(self.turns):
                raise ValueError(
                    f"check {check.name!r} is for turn {check.turn}, but the conversation has "
                    f"{len(self.turns)} turn{'s' if len(self.turns) != 1 else ''}"
                )
        for turn in range(1, len(self.turns) + 1):
            try:
                one_judge_check(self.checks_for(turn))
            except ValueError as exc:
                raise ValueError(f"turn {turn}: {exc}") from None
        return self

    def checks_for(self, turn: int) -> list[Any]:
        """The checks that apply to ``turn`` (1-based): its own and those with no ``turn``."""
        return [c for c in self.checks if c.turn is None or c.turn == turn]

    def prompt_id(self, turn: int) -> str:
        return turn_id(self.id, turn)
