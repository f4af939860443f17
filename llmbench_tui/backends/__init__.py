"""Backends: one module per source system, all speaking ``base.Backend``.

``BackendPool`` hands out one backend instance per (kind, host) so a session reuses connections
and an in-process model stays loaded between runs. Modules are imported lazily: the GGUF backend
needs the optional ``embedded`` extra, and a user with only Ollama should never pay for it.
"""

from __future__ import annotations

from ..schema import ModelSpec
from .base import Backend, BackendError


class BackendPool:
    """Owns every backend a session or the dashboard talks to."""

    def __init__(self, *, ollama_host: str | None = None) -> None:
        self.ollama_host = ollama_host
        self._backends: dict[tuple[str, str | None], Backend] = {}

    def for_spec(self, spec: ModelSpec) -> Backend:
        """The backend serving ``spec``, created on first use."""
        host = spec.host
        key: tuple[str, str | None]
        if spec.backend == "ollama":
            from .ollama import OllamaBackend, resolve_host

            host = resolve_host(spec.host or self.ollama_host)
            key = ("ollama", host)
            if key not in self._backends:
                self._backends[key] = OllamaBackend(host)
        elif spec.backend == "openai":
            from .openai import OpenAIBackend

            key = ("openai", host)
            if key not in self._backends:
                self._backends[key] = OpenAIBackend(host or "")
        else:
            try:
                from .gguf import GGUFBackend
            except ImportError as exc:  # the optional extra is missing
                raise BackendError(
                    "the in-process GGUF engine needs llama-cpp-python: "
                    "pip install 'llmbench-tui[embedded]'"
                ) from exc

            key = ("gguf", None)
            if key not in self._backends:
                self._backends[key] = GGUFBackend()
        return self._backends[key]

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


__all__ = ["Backend", "BackendError", "BackendPool"]
