"""The one small protocol every backend speaks, its chunk types and its typed errors.

The engine only ever sees these types: a backend turns its wire format into ``TextChunk`` and
``FinalChunk`` objects and its failures into ``BackendError`` subclasses whose message is a
sentence a person can act on. Arrival instants are taken by the backend with
``time.perf_counter_ns()`` the moment a chunk is parsed (or, in-process, produced), so the engine's
own scheduling never leaks into the figures.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..schema import ModelSpec, Options, ServerStats


def now_ns() -> int:
    """The one clock for every client-side instant (METRICS.md)."""
    return time.perf_counter_ns()


@dataclass(slots=True)
class TextChunk:
    """A chunk that carries generated text (answer ``text`` and/or ``thinking``).

    ``n_tokens`` is how many tokens the backend says the chunk holds; ``None`` when it does not
    say (then inter-token gaps are per chunk, METRICS.md).
    """

    t_ns: int
    text: str = ""
    thinking: str = ""
    n_tokens: int | None = None


@dataclass(slots=True)
class FinalChunk:
    """The end of a stream: token counts and server statistics when the backend gave them."""

    t_ns: int
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    server: ServerStats | None = None
    done_reason: str | None = None


StreamItem = TextChunk | FinalChunk

# One chat message as every backend sends it: {"role": "system"|"user"|"assistant", "content"}.
Message = dict[str, str]


def chat_messages(prompt: str, options: Options, history: Sequence[Message] = ()) -> list[Message]:
    """What a chat request carries, in order: the system prompt (``options.system``), the earlier
    turns of a conversation (the model's own answers included), then ``prompt``. The one place
    that order is decided, so the three backends send the same conversation."""
    messages: list[Message] = []
    if options.system:
        messages.append({"role": "system", "content": options.system})
    messages.extend({"role": m["role"], "content": m["content"]} for m in history)
    messages.append({"role": "user", "content": prompt})
    return messages


@dataclass(slots=True)
class ModelInfo:
    """What a backend knows about one model; every field but ``name`` may be unknown."""

    spec: ModelSpec
    name: str
    size_bytes: int | None = None
    family: str | None = None
    parameter_size: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    digest: str | None = None
    capabilities: list[str] = field(default_factory=list)
    loaded: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BackendError(Exception):
    """Base of every backend failure; ``str(err)`` is the sentence stored in the run record."""

    status: str = "error"


class Unreachable(BackendError):
    """The server could not be reached (refused, DNS, TLS)."""


class ModelNotFound(BackendError):
    """The server answered but does not have the model."""


class ServerBusy(BackendError):
    """The server refused for load (Ollama 503, HTTP 429)."""


class ProtocolError(BackendError):
    """The server sent something that is not the documented protocol (bad JSON, cut stream)."""


class BadRequest(BackendError):
    """The server rejected the request (e.g. ``think`` on a model that cannot think)."""


class BackendTimeout(BackendError):
    """No first token or no next chunk within the configured time."""

    status = "timeout"


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a backend. One instance serves one host (or this process)."""

    kind: str  # "ollama" | "openai" | "gguf"
    host: str | None  # the base URL, or None in-process

    async def list_models(self) -> list[ModelInfo]:
        """Every model the source offers; raises ``Unreachable`` when it cannot be asked."""
        ...

    async def describe(self, spec: ModelSpec) -> ModelInfo:
        """Details of one model; raises ``ModelNotFound`` naming the models that do exist."""
        ...

    async def version(self) -> str | None:
        """The server's own version string, when it has one."""
        ...

    def stream(
        self,
        spec: ModelSpec,
        prompt: str,
        options: Options,
        *,
        history: Sequence[Message] = (),
    ) -> AsyncIterator[StreamItem]:
        """Generate: yield ``TextChunk``s then exactly one ``FinalChunk``.

        ``history`` holds the earlier turns of a conversation (``chat_messages`` orders them).

        The request is sent when iteration starts. Closing the iterator early (``aclose``, or
        cancellation of the awaiting task) must stop generation on the backend's side too.
        """
        ...

    async def unload(self, spec: ModelSpec) -> None:
        """Drop the model from memory so the next run is a cold start."""
        ...

    def effective_options(self, spec: ModelSpec, options: Options) -> dict[str, Any]:
        """The options as actually sent, defaults filled in, for the run record."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and loaded models."""
        ...
