"""The one small protocol every backend speaks, its chunk types and its typed errors.

The engine only ever sees these types: a backend turns its wire format into ``TextChunk`` and
``FinalChunk`` objects and its failures into ``BackendError`` subclasses whose message is a
sentence a person can act on. Arrival instants are taken by the backend with
``time.perf_counter_ns()`` the moment a chunk is parsed (or, in-process, produced), so the engine's
own scheduling never leaks into the figures.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..schema import ModelSpec, Options, ServerStats


def now_ns() -> int:
    """The one clock for every client-side instant (README Metrics)."""
    return time.perf_counter_ns()


@dataclass(slots=True)
class TextChunk:
    """A chunk that carries generated text (answer ``text`` and/or ``thinking``).

    ``n_tokens`` is how many tokens the backend says the chunk holds; ``None`` when it does not
    say (then inter-token gaps are per chunk, README Metrics).
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
    # Prompt tokens the server took from its cache instead of evaluating (llama.cpp
    # ``timings.cache_n``, OpenAI ``usage.prompt_tokens_details.cached_tokens``); None: not said.
    cached_tokens: int | None = None


@dataclass(slots=True)
class ContextReady:
    """In a raw stream with earlier context (``RawPrompt.context``): that context is now in the
    model's cache (evaluated in-process, or sent to the server as a priming request) and the
    measured request starts at ``t_ns``. The engine moves the run's ``t_send`` here, as llama-bench
    does not time its ``-d`` depth either; the priming time is recorded apart."""

    t_ns: int
    context_tokens: int | None = None


@dataclass(slots=True)
class RawPrompt:
    """A synthetic prompt sent as raw completion, with no chat template (llama-bench's pp512 is 512
    raw tokens). ``text`` is the whole prompt; ``context`` its leading part, primed before timing
    (empty: none); ``token_ids``/``context_ids`` the exact tokens, when the caller tokenized with
    the backend's own tokenizer (the in-process engine then evaluates them as they are).
    ``ignore_eos``: generate ``max_tokens`` tokens even past end-of-sequence where the backend can.
    ``reuse_cache``: keep what the backend has cached (prefix-cache mode) instead of starting
    from an empty cache. ``chat``: send ``text`` as the user message of a chat request instead
    (``--api chat``: the model's chat template and ``options.system`` applied; no ``context``,
    no ``token_ids``)."""

    text: str
    max_tokens: int
    context: str = ""
    token_ids: list[int] | None = None
    context_ids: list[int] | None = None
    ignore_eos: bool = True
    reuse_cache: bool = False
    chat: bool = False


StreamItem = TextChunk | FinalChunk | ContextReady

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

    @property
    def host(self) -> str | None:
        """The base URL, or None in-process."""
        ...

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
    ) -> AsyncGenerator[StreamItem, None]:
        """Generate: yield ``TextChunk``s then exactly one ``FinalChunk``.

        ``history`` holds the earlier turns of a conversation (``chat_messages`` orders them).

        The request is sent when iteration starts. Closing the iterator early (``aclose``, or
        cancellation of the awaiting task) must stop generation on the backend's side too.
        """
        ...

    def stream_raw(
        self, spec: ModelSpec, prompt: RawPrompt, options: Options
    ) -> AsyncGenerator[StreamItem, None]:
        """Generate from a raw prompt (no chat template): a ``ContextReady`` first when
        ``prompt.context`` is set, then ``TextChunk``s and one ``FinalChunk``, like ``stream``."""
        ...

    async def tokenize(self, spec: ModelSpec, text: str, options: Options) -> list[int] | None:
        """``text`` as the model's own tokenizer splits it as a raw prompt (BOS included when the
        model adds one), without generating; ``None`` when the backend has no tokenizer to ask."""
        ...

    async def probe_prompt_tokens(
        self, spec: ModelSpec, text: str, options: Options
    ) -> int | None:
        """Send ``text`` as a raw prompt for one output token and return the prompt token count
        the server reports (calibration without a tokenizer); ``None`` if it reports none."""
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
