"""The Ollama backend: the native API through the official ``ollama.AsyncClient``.

Why the official client: it is what Ollama users run, so its behaviour (request shape, streaming
parser) is what gets measured. Its failures are raw library exceptions on the streaming path
(``httpx.ConnectError``, ``httpx.RemoteProtocolError``, ``json.JSONDecodeError``...), so every
call goes through ``_translate`` which turns them into the typed errors of ``base`` with one
sentence naming the host.

Timeouts: only the connect phase has one. Reads are unbounded on purpose, because a model load
can legitimately take minutes before the first token and the engine enforces its own TTFT and
stall timeouts by cancelling the stream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import urllib.parse
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import httpx
import pydantic
from ollama import AsyncClient, ChatResponse, GenerateResponse, ResponseError

from ..schema import ModelSpec, Options, ServerStats
from .base import (
    BackendError,
    BackendTimeout,
    BadRequest,
    ContextReady,
    FinalChunk,
    Message,
    ModelInfo,
    ModelNotFound,
    ProtocolError,
    RawPrompt,
    ServerBusy,
    StreamItem,
    TextChunk,
    Unreachable,
    chat_messages,
    now_ns,
)

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
CONNECT_TIMEOUT_S = 10.0


def resolve_host(host: str | None) -> str:
    """The Ollama base URL: ``host`` if given, else ``OLLAMA_HOST``, else the local default.

    Accepts ``host``, ``host:port``, ``:port``, ``http://host[:port]``, ``https://host[:port]``
    and IPv6 in brackets, and returns ``scheme://host:port[/path]`` like the ollama client's own
    ``_parse_host``, with one difference: ``http://host`` without a port means port 11434 here,
    not 80. People write ``OLLAMA_HOST=http://gpu-box`` meaning their Ollama, which listens on
    11434; port 80 would only answer through a reverse proxy, and such a user can say ``:80``.
    ``https://`` without a port keeps 443 (TLS is only ever a proxy in front of Ollama).
    """
    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip()
    if not raw:
        return DEFAULT_HOST
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise BackendError(f"bad Ollama host {raw!r}: use host:port or http://host:port")
    try:
        split = urllib.parse.urlsplit(f"{scheme}://{rest}")
        port = split.port
    except ValueError:
        raise BackendError(f"bad Ollama host {raw!r}: the port is not a number") from None
    name = split.hostname or "127.0.0.1"
    if port is None:
        port = 443 if scheme == "https" else DEFAULT_PORT
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass  # a host name, not an address
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}" + (f"/{path}" if path else "")


def _seconds(ns: int | None) -> float | None:
    return ns / 1e9 if ns else None


def _rate(count: int | None, ns: int | None) -> float | None:
    return count / ns * 1e9 if count and ns else None


def final_chunk(part: ChatResponse | GenerateResponse, t_ns: int) -> FinalChunk:
    """The last chunk of a chat or generate stream: the server's counts and figures."""
    return FinalChunk(
        t_ns=t_ns,
        prompt_tokens=part.prompt_eval_count,
        output_tokens=part.eval_count,
        server=server_stats(part),
        done_reason=part.done_reason,
    )


def server_stats(part: ChatResponse | GenerateResponse) -> ServerStats:
    """The final chunk's figures (README Metrics "Server figures"); every one may be missing."""
    return ServerStats(
        decode_tok_s=_rate(part.eval_count, part.eval_duration),
        prompt_tok_s=_rate(part.prompt_eval_count, part.prompt_eval_duration),
        load_s=_seconds(part.load_duration),
        total_s=_seconds(part.total_duration),
        prompt_eval_s=_seconds(part.prompt_eval_duration),
        eval_s=_seconds(part.eval_duration),
        prompt_eval_count=part.prompt_eval_count,
        eval_count=part.eval_count,
        done_reason=part.done_reason,
    )


class OllamaBackend:
    """One Ollama server. Model capabilities are looked up once per model and cached, because
    whether ``think`` is sent depends on them (README Metrics: always explicit for thinking models).
    """

    kind = "ollama"

    def __init__(self, host: str | None = None, *, connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.host: str = resolve_host(host)
        self._connect_timeout_s = connect_timeout_s
        self._client = AsyncClient(
            host=self.host,
            timeout=httpx.Timeout(None, connect=connect_timeout_s),
            # Concurrency runs open one stream each; httpx's default cap (100) would queue the
            # rest inside the client and their wait would show up as server latency.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )
        self._capabilities: dict[str, list[str]] = {}

    # -- errors -----------------------------------------------------------------------------

    async def _translate(self, exc: Exception, model: str | None = None) -> BackendError:
        """The typed error for a library exception, with a sentence a person can act on."""
        host = self.host
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, ResponseError):
            code, message = exc.status_code, exc.error
            if code == -1:
                return BackendError(f"Ollama reported an error mid-stream: {message}")
            if code == 404 and model is not None:
                return ModelNotFound(await self._not_found_message(model))
            if code in (429, 503):
                return ServerBusy(f"Ollama at {host} is busy (HTTP {code}): {message}")
            if code == 400:
                return BadRequest(f"Ollama at {host} rejected the request: {message}")
            return BackendError(f"Ollama at {host} answered HTTP {code}: {message}")
        if isinstance(exc, httpx.ConnectTimeout):
            return Unreachable(
                f"cannot connect to Ollama at {host}: no answer within "
                f"{self._connect_timeout_s:g} s"
            )
        if isinstance(exc, httpx.ConnectError | ConnectionError):
            return Unreachable(f"cannot connect to Ollama at {host}: is `ollama serve` running?")
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeout(f"Ollama at {host} did not answer in time ({type(exc).__name__})")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return ProtocolError(f"the connection to Ollama at {host} closed mid-stream")
        if isinstance(exc, json.JSONDecodeError):
            return ProtocolError(f"Ollama at {host} sent a line that is not JSON: {exc.doc[:80]!r}")
        if isinstance(exc, pydantic.ValidationError):
            return ProtocolError(f"Ollama at {host} sent a reply that does not fit its API")
        if isinstance(exc, httpx.HTTPError):
            return BackendError(f"talking to Ollama at {host} failed: {exc}")
        raise exc

    async def _not_found_message(self, model: str) -> str:
        head = f"model {model!r} not found on {self.host}"
        try:
            tags = await self._client.list()
        except Exception:  # the listing is only a hint; the sentence stands without it
            return head
        names = sorted(m.model for m in tags.models if m.model)
        return f"{head} — available: {', '.join(names) if names else 'none'}"

    # -- queries ----------------------------------------------------------------------------

    def _spec(self, name: str) -> ModelSpec:
        """A spec for ``name``; the host is left out when it is the default, to keep labels short
        and equal to what a user types (``ollama:NAME``)."""
        host = None if self.host == resolve_host(None) else self.host
        return ModelSpec(backend="ollama", name=name, host=host)

    async def _loaded(self) -> dict[str, Any] | None:
        """Loaded models by name (``/api/ps``), or ``None`` when the server cannot say."""
        try:
            ps = await self._client.ps()
        except (ResponseError, httpx.HTTPError, ConnectionError, pydantic.ValidationError):
            return None
        return {name: m for m in ps.models if (name := m.model or m.name)}

    async def list_models(self) -> list[ModelInfo]:
        try:
            tags = await self._client.list()
        except Exception as exc:
            raise await self._translate(exc) from exc
        loaded = await self._loaded()
        out = []
        for m in tags.models:
            name = m.model or ""
            details = m.details
            out.append(
                ModelInfo(
                    spec=self._spec(name),
                    name=name,
                    size_bytes=int(m.size) if m.size is not None else None,
                    family=details.family if details else None,
                    parameter_size=details.parameter_size if details else None,
                    quantization=details.quantization_level if details else None,
                    digest=m.digest,
                    loaded=None if loaded is None else name in loaded,
                )
            )
        return out

    async def describe(self, spec: ModelSpec) -> ModelInfo:
        try:
            show, tags = await asyncio.gather(self._client.show(spec.name), self._client.list())
        except Exception as exc:
            raise await self._translate(exc, spec.name) from exc
        info = show.modelinfo or {}
        arch = info.get("general.architecture")
        capabilities = list(show.capabilities or [])
        self._capabilities[spec.name] = capabilities
        details = show.details
        tag = next((m for m in tags.models if m.model in _names(spec.name)), None)
        loaded = await self._loaded()
        running = (
            None
            if loaded is None
            else next((loaded[n] for n in _names(spec.name) if n in loaded), None)
        )
        # model_info: the GGUF key/values the fit estimate sizes the model from (llmbench fit).
        extra: dict[str, Any] = {"architecture": arch, "model_info": dict(info)}
        if running is not None:
            extra["size_vram"] = int(running.size_vram) if running.size_vram is not None else None
            # The loaded size (weights + KV cache): the VRAM share is size_vram / ps_size, not
            # size_vram / file size, which would ignore the cache.
            extra["ps_size"] = int(running.size) if running.size is not None else None
            extra["loaded_context_length"] = running.context_length
        return ModelInfo(
            spec=spec,
            name=spec.name,
            size_bytes=int(tag.size) if tag and tag.size is not None else None,
            family=details.family if details else None,
            parameter_size=details.parameter_size if details else None,
            parameter_count=info.get("general.parameter_count"),
            quantization=details.quantization_level if details else None,
            context_length=info.get(f"{arch}.context_length") if arch else None,
            digest=tag.digest if tag else None,
            capabilities=capabilities,
            loaded=None if loaded is None else running is not None,
            extra=extra,
        )

    async def version(self) -> str | None:
        """``GET /api/version`` (the ollama client has no method for it)."""
        timeout = httpx.Timeout(30.0, connect=self._connect_timeout_s)
        try:
            async with httpx.AsyncClient(base_url=self.host, timeout=timeout) as http:
                reply = await http.get("/api/version")
        except Exception as exc:
            raise await self._translate(exc) from exc
        if reply.status_code != 200:
            return None
        try:
            value = reply.json().get("version")
        except (ValueError, AttributeError):
            return None
        return str(value) if value else None

    # -- generation -------------------------------------------------------------------------

    async def _learn_capabilities(self, spec: ModelSpec) -> None:
        """One ``/api/show`` (not a full ``describe``): it runs before the first request of a
        model, so it should cost as little as possible. Call ``describe`` before timing runs
        to keep even that out of the first run."""
        show = await self._client.show(spec.name)
        self._capabilities[spec.name] = list(show.capabilities or [])

    def _think(self, spec: ModelSpec, options: Options) -> bool | str | None:
        """``think`` as sent: explicit (False by default) for thinking models, else left out.

        Capabilities come from the cache that ``describe`` (or the first ``stream``) fills.
        """
        if "thinking" not in self._capabilities.get(spec.name, []):
            return None
        return options.think if options.think is not None else False

    def effective_options(self, spec: ModelSpec, options: Options) -> dict[str, Any]:
        """The generation options, ``keep_alive`` and ``think`` exactly as the request sends
        them (flat). Nothing is filled in for unset fields: the server's defaults depend on its
        version and hardware, and sending a guess (``num_ctx``!) could force a model reload."""
        sent = self._request_options(options)
        if options.keep_alive is not None:
            sent["keep_alive"] = options.keep_alive
        think = self._think(spec, options)
        if think is not None:
            sent["think"] = think
        return sent

    @staticmethod
    def _request_options(options: Options) -> dict[str, Any]:
        mapping = {
            "temperature": options.temperature,
            "top_k": options.top_k,
            "top_p": options.top_p,
            "seed": options.seed,
            "num_predict": options.max_tokens,
            "num_ctx": options.num_ctx,
        }
        return {k: v for k, v in mapping.items() if v is not None}

    async def stream(
        self,
        spec: ModelSpec,
        prompt: str,
        options: Options,
        *,
        history: Sequence[Message] = (),
    ) -> AsyncGenerator[StreamItem, None]:
        """``/api/chat`` streamed: text chunks, then one ``FinalChunk`` from the ``done`` line.

        Chunks without text (the role-only first chunk, empty keep-alive chunks) are not
        yielded, so they cannot count as a first token.
        """
        try:
            if spec.name not in self._capabilities:
                await self._learn_capabilities(spec)
            messages = chat_messages(prompt, options, history)
            parts = await self._client.chat(
                model=spec.name,
                messages=messages,
                stream=True,
                options=self._request_options(options) or None,
                keep_alive=options.keep_alive,
                think=self._think(spec, options),
            )
            try:
                async for part in parts:
                    t_ns = now_ns()
                    text = part.message.content or ""
                    thinking = part.message.thinking or ""
                    if text or thinking:
                        yield TextChunk(t_ns=t_ns, text=text, thinking=thinking)
                    if part.done:
                        yield final_chunk(part, t_ns)
                        return
            finally:
                # The client's stream is an async generator; closing it closes the HTTP
                # response, so the server stops generating.
                await cast(AsyncGenerator[Any, None], parts).aclose()
        except Exception as exc:
            raise await self._translate(exc, spec.name) from exc
        raise ProtocolError(f"the stream from Ollama at {self.host} ended without a final chunk")

    async def stream_raw(
        self, spec: ModelSpec, prompt: RawPrompt, options: Options
    ) -> AsyncGenerator[StreamItem, None]:
        """``/api/generate`` with ``raw: true`` (no template), streamed; earlier context is sent
        first as a one-token generation so Ollama's prompt cache holds it. Ollama has no
        ``ignore_eos``: the model may stop before ``max_tokens`` (the engine records the count).
        A chat prompt goes to ``/api/chat`` as the user message instead (``stream``)."""
        options = options.merged(Options(max_tokens=prompt.max_tokens))
        if prompt.chat:
            async for item in self.stream(spec, prompt.text, options):
                yield item
            return
        sent = self._request_options(options) or None
        try:
            if prompt.context:
                await self._raw_once(spec, prompt.context, options)
                yield ContextReady(t_ns=now_ns())
            parts = await self._client.generate(
                model=spec.name,
                prompt=prompt.text,
                raw=True,
                stream=True,
                options=sent,
                keep_alive=options.keep_alive,
            )
            try:
                async for part in parts:
                    t_ns = now_ns()
                    text = part.response or ""
                    thinking = part.thinking or ""
                    if text or thinking:
                        yield TextChunk(t_ns=t_ns, text=text, thinking=thinking)
                    if part.done:
                        yield final_chunk(part, t_ns)
                        return
            finally:
                await cast(AsyncGenerator[Any, None], parts).aclose()
        except Exception as exc:
            raise await self._translate(exc, spec.name) from exc
        raise ProtocolError(f"the stream from Ollama at {self.host} ended without a final chunk")

    async def _raw_once(self, spec: ModelSpec, text: str, options: Options) -> Any:
        """One raw generation of a single token, not streamed (priming and calibration)."""
        one = self._request_options(options.merged(Options(max_tokens=1)))
        return await self._client.generate(
            model=spec.name,
            prompt=text,
            raw=True,
            stream=False,
            options=one,
            keep_alive=options.keep_alive,
        )

    async def tokenize(self, spec: ModelSpec, text: str, options: Options) -> list[int] | None:
        """Ollama's API has no tokenizer: prompts are calibrated (``probe_prompt_tokens``)."""
        return None

    async def probe_prompt_tokens(
        self, spec: ModelSpec, text: str, options: Options
    ) -> int | None:
        """``prompt_eval_count`` of a one-token raw generation of ``text``."""
        try:
            reply = await self._raw_once(spec, text, options)
        except Exception as exc:
            raise await self._translate(exc, spec.name) from exc
        return reply.prompt_eval_count

    async def unload(self, spec: ModelSpec) -> None:
        """An empty chat with ``keep_alive: 0``: Ollama's documented way to unload a model."""
        try:
            await self._client.chat(model=spec.name, messages=[], keep_alive=0)
        except Exception as exc:
            raise await self._translate(exc, spec.name) from exc

    async def aclose(self) -> None:
        await self._client.close()


def _names(name: str) -> tuple[str, ...]:
    """The spellings Ollama may list a model under (``x`` is ``x:latest``)."""
    return (name, f"{name}:latest") if ":" not in name else (name,)


PS_TIMEOUT_S = 2.0


def loaded_model(ps: Any, name: str) -> dict[str, Any] | None:
    """What one ``/api/ps`` answer (the parsed JSON) says of model ``name``: ``size`` (bytes
    loaded: weights + KV cache), ``size_vram``, ``vram_fraction`` (``size_vram / size``),
    ``context_length`` (the context actually allocated) and ``expires_at``; ``None`` when the
    model is not loaded (or the answer is not one ``/api/ps`` gives)."""
    models = ps.get("models") if isinstance(ps, dict) else None
    if not isinstance(models, list):
        return None
    wanted = _names(name)
    entry = next(
        (
            m
            for m in models
            if isinstance(m, dict) and (m.get("model") in wanted or m.get("name") in wanted)
        ),
        None,
    )
    if entry is None:
        return None

    def number(key: str) -> int | None:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value)

    size, vram = number("size"), number("size_vram")
    fraction = round(min(1.0, vram / size), 4) if size and vram is not None else None
    return {
        "size": size,
        "size_vram": vram,
        "vram_fraction": fraction,
        "context_length": number("context_length"),
        "expires_at": entry.get("expires_at") if isinstance(entry.get("expires_at"), str) else None,
    }


def read_ps(host: str | None, name: str, timeout_s: float = PS_TIMEOUT_S) -> dict[str, Any]:
    """``GET /api/ps`` now (blocking: call it off the event loop) for model ``name``.

    Returns ``loaded_model``'s block with ``loaded: True``, ``{"loaded": False}`` when the model
    is not in memory, or ``{"error": sentence}``; never raises.
    """
    try:
        base = resolve_host(host)
    except BackendError as exc:
        return {"error": str(exc)}
    try:
        reply = httpx.get(f"{base}/api/ps", timeout=timeout_s)
        reply.raise_for_status()
        data = reply.json()
    except httpx.HTTPStatusError as exc:
        return {"error": f"Ollama at {base} answered /api/ps with HTTP {exc.response.status_code}"}
    except (httpx.HTTPError, ValueError, OSError) as exc:
        return {"error": f"cannot read /api/ps from Ollama at {base}: {exc or type(exc).__name__}"}
    entry = loaded_model(data, name)
    return {"loaded": False} if entry is None else {"loaded": True, **entry}
