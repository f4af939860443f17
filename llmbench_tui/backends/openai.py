"""OpenAI-compatible servers (llama.cpp ``llama-server``, ``llama_cpp.server``, vLLM, LM Studio).

Spoken over plain ``httpx`` rather than the ``openai`` SDK: the benchmark needs the arrival instant
of every SSE line and the non-standard fields servers add (llama.cpp's ``timings``,
``reasoning_content``), which an SDK would hide or parse late.

What a stream becomes:

- a ``TextChunk`` per ``data:`` event whose delta carries ``content`` or ``reasoning_content``
  (``reasoning`` on vLLM); role-only and empty deltas are not text-bearing (README Metrics) and are
  skipped. The server does not say how many tokens an event holds, so ``n_tokens`` stays ``None``;
- one ``FinalChunk`` at ``data: [DONE]`` with ``usage`` (asked for with
  ``stream_options.include_usage``) and, from llama.cpp's server, its ``timings`` object as
  ``ServerStats``. Servers that send neither (``llama_cpp.server`` does not) give ``None`` counts,
  and the engine falls back to counting chunks with ``tokens.source = "client"``.

OpenAI-compatible servers have no unload, so cold runs are impossible here; ``unload`` says so
with a ``BackendError`` that the engine stores with the run.

Raw prompts (``stream_raw``, size grids) go to ``/v1/completions`` (no chat template) with
``ignore_eos`` (llama.cpp, vLLM) and ``min_tokens`` (vLLM, ``llama_cpp.server``) so exactly
``max_tokens`` come back where the server supports either. Earlier context is sent first as a
priming completion of one token, so a server that caches prefixes (llama.cpp) holds it when the
measured request starts. ``tokenize`` asks llama.cpp's ``/tokenize``, vLLM's ``/tokenize`` or
``llama_cpp.server``'s ``/extras/tokenize``, whichever answers; cached prompt tokens come from
``usage.prompt_tokens_details.cached_tokens`` or llama.cpp's ``timings.cache_n``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import httpx

from ..schema import ModelSpec, Options, ServerStats
from .base import (
    BackendError,
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

# Connecting is bounded; reading is not: a long prompt may take minutes before its first token,
# and the engine enforces the user's TTFT and stall timeouts itself.
_TIMEOUT = httpx.Timeout(None, connect=10.0)

# Options this backend cannot apply per request (the context size is fixed when the server
# starts; there is no keep-alive or standard thinking switch in the OpenAI API).
_NOT_APPLIED = ("num_ctx", "keep_alive", "think")


def api_root(base_url: str) -> str:
    """``http://h:8080``, ``http://h:8080/`` and ``http://h:8080/v1`` all mean ``…/v1``."""
    url = base_url.strip().rstrip("/")
    if not url:
        raise BackendError(
            "an OpenAI-compatible model needs its server URL, e.g. openai:NAME@http://127.0.0.1:8080"
        )
    if "://" not in url:
        url = f"http://{url}"
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return f"{url}/v1"


def error_message(body: bytes) -> str:
    """The server's own words from an error body, on one line.

    OpenAI servers send ``{"error": {"message": …}}``; others send ``{"error": "…"}``,
    FastAPI's ``{"detail": …}`` or plain text.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            text = err if isinstance(err, str) else json.dumps(err)
    text = " ".join(text.split())
    return text[:300] if text else "no details given"


def _server_stats(timings: dict[str, Any], done_reason: str | None) -> ServerStats:
    """llama.cpp ``timings`` (milliseconds) as ``ServerStats`` (seconds, tokens per second).

    llama.cpp reports no load or total duration, so those stay ``None`` rather than guessed.
    """

    def seconds(key: str) -> float | None:
        value = timings.get(key)
        return value / 1000.0 if isinstance(value, int | float) else None

    return ServerStats(
        decode_tok_s=timings.get("predicted_per_second"),
        prompt_tok_s=timings.get("prompt_per_second"),
        prompt_eval_s=seconds("prompt_ms"),
        eval_s=seconds("predicted_ms"),
        prompt_eval_count=timings.get("prompt_n"),
        eval_count=timings.get("predicted_n"),
        done_reason=done_reason,
        cache_n=timings.get("cache_n"),
    )


class OpenAIBackend:
    """One OpenAI-compatible server, addressed by its base URL (with or without ``/v1``)."""

    kind = "openai"

    def __init__(self, base_url: str) -> None:
        self.host: str | None = base_url
        self._api = api_root(base_url)
        self._client = httpx.AsyncClient(timeout=_TIMEOUT)
        # The tokenizer endpoint that answered; False: not looked for yet; None: there is none.
        self._tokenizer: tuple[str, str] | bool | None = False

    # -- discovery ---------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        response = await self._request("GET", "/models")
        try:
            entries = response.json()["data"]
            return [self._model_info(entry) for entry in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(
                f"the server at {self.host} answered /v1/models with something that is not an "
                "OpenAI model list"
            ) from exc

    async def describe(self, spec: ModelSpec) -> ModelInfo:
        models = await self.list_models()
        for info in models:
            if info.name == spec.name:
                return info
        available = ", ".join(info.name for info in models) or "none"
        raise ModelNotFound(f"model '{spec.name}' not found on {self.host}: available: {available}")

    async def version(self) -> str | None:
        """llama.cpp's ``/props`` ``build_info`` when present; other servers say nothing."""
        root = self._api[: -len("/v1")]
        try:
            response = await self._client.get(f"{root}/props")
            build = response.json().get("build_info") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return build if isinstance(build, str) else None

    def _model_info(self, entry: dict[str, Any]) -> ModelInfo:
        meta = entry.get("meta") or {}  # llama.cpp's server adds size, n_params, n_ctx_train
        return ModelInfo(
            spec=ModelSpec(backend="openai", name=entry["id"], host=self.host),
            name=entry["id"],
            size_bytes=meta.get("size"),
            parameter_count=meta.get("n_params"),
            context_length=meta.get("n_ctx_train"),
            extra={"owned_by": entry["owned_by"]} if entry.get("owned_by") else {},
        )

    # -- generation --------------------------------------------------------------------------

    def effective_options(self, spec: ModelSpec, options: Options) -> dict[str, Any]:
        """What goes into the request; unset options are left to the server's defaults."""
        sent: dict[str, Any] = {
            key: value
            for key, value in (
                ("temperature", options.temperature),
                ("top_p", options.top_p),
                ("top_k", options.top_k),
                ("seed", options.seed),
                ("max_tokens", options.max_tokens),
            )
            if value is not None
        }
        not_applied = [key for key in _NOT_APPLIED if getattr(options, key) is not None]
        if not_applied:
            sent["not_applied"] = not_applied
        return sent

    def _body(
        self, spec: ModelSpec, prompt: str, options: Options, history: Sequence[Message]
    ) -> dict[str, Any]:
        messages = chat_messages(prompt, options, history)
        body = self.effective_options(spec, options)
        body.pop("not_applied", None)
        body.update(
            model=spec.name,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        return body

    async def stream(
        self,
        spec: ModelSpec,
        prompt: str,
        options: Options,
        *,
        history: Sequence[Message] = (),
    ) -> AsyncGenerator[StreamItem, None]:
        body = self._body(spec, prompt, options, history)
        async for item in self._stream("/chat/completions", body, spec):
            yield item

    def _raw_body(self, spec: ModelSpec, prompt: str, options: Options, n: int) -> dict[str, Any]:
        body = self.effective_options(spec, options)
        body.pop("not_applied", None)
        body.update(model=spec.name, prompt=prompt, max_tokens=n)
        return body

    async def stream_raw(
        self, spec: ModelSpec, prompt: RawPrompt, options: Options
    ) -> AsyncGenerator[StreamItem, None]:
        """``/v1/completions`` streamed, after a priming completion of the context, if any; a chat
        prompt goes to ``/v1/chat/completions`` as the user message instead."""
        if prompt.chat:
            body = self._body(spec, prompt.text, options, ())
            body["max_tokens"] = prompt.max_tokens
            if prompt.ignore_eos:
                body.update(ignore_eos=True, min_tokens=prompt.max_tokens)
            async for item in self._stream("/chat/completions", body, spec):
                if isinstance(item, FinalChunk) and item.prompt_tokens is None:
                    item.prompt_tokens = await self._chat_prompt_tokens(spec, body)
                yield item
            return
        if prompt.context:
            prime = self._raw_body(spec, prompt.context, options, 1)
            await self._post(f"{self._api}/completions", prime, spec)
            yield ContextReady(t_ns=now_ns())
        body = self._raw_body(spec, prompt.text, options, prompt.max_tokens)
        if prompt.ignore_eos:
            body.update(ignore_eos=True, min_tokens=prompt.max_tokens)
        body.update(stream=True, stream_options={"include_usage": True})
        async for item in self._stream("/completions", body, spec):
            yield item

    async def _post(self, url: str, body: dict[str, Any], spec: ModelSpec | None) -> Any:
        try:
            response = await self._client.post(url, json=body)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._http_error(response, spec)
        try:
            return response.json()
        except ValueError as exc:
            raise ProtocolError(f"the server at {self.host} answered {url} without JSON") from exc

    async def _chat_prompt_tokens(self, spec: ModelSpec, body: dict[str, Any]) -> int | None:
        """The server's count of a chat request's prompt (its template applied), for a server
        whose stream carries no usage (llama-cpp-python's): the same messages again, not
        streamed, for one token, once the measured stream has ended (its end instant is already
        taken). Asking before the run would leave the prompt in the server's cache."""
        probe = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        probe.update(max_tokens=1, min_tokens=1)
        try:
            reply = await self._post(f"{self._api}/chat/completions", probe, spec)
        except BackendError:
            return None
        usage = reply.get("usage") if isinstance(reply, dict) else None
        count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return count if isinstance(count, int) else None

    async def probe_prompt_tokens(
        self, spec: ModelSpec, text: str, options: Options
    ) -> int | None:
        """A one-token completion of ``text``; the server's ``usage.prompt_tokens``."""
        reply = await self._post(
            f"{self._api}/completions", self._raw_body(spec, text, options, 1), spec
        )
        usage = reply.get("usage") if isinstance(reply, dict) else None
        count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return count if isinstance(count, int) else None

    async def tokenize(self, spec: ModelSpec, text: str, options: Options) -> list[int] | None:
        """The server's own tokenizer, where it has an endpoint for it (module docstring)."""
        root = self._api[: -len("/v1")]
        candidates = [
            (f"{root}/tokenize", "llama.cpp"),  # llama-server; vLLM's takes "prompt"
            (f"{root}/extras/tokenize", "llama_cpp.server"),
        ]
        if self._tokenizer is None:
            return None
        if self._tokenizer:
            candidates = [self._tokenizer]  # type: ignore[list-item]
        for url, kind in candidates:
            body = {"content": text, "prompt": text, "input": text, "model": spec.name,
                    "add_special": True}  # fmt: skip
            try:
                response = await self._client.post(url, json=body)
                data = response.json() if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                data = None
            tokens = data.get("tokens") if isinstance(data, dict) else None
            if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
                self._tokenizer = (url, kind)
                return tokens
        if self._tokenizer is False:
            self._tokenizer = None  # none of them: calibrate by probes instead
        return None

    async def _stream(
        self, path: str, body: dict[str, Any], spec: ModelSpec
    ) -> AsyncGenerator[StreamItem, None]:
        usage: dict[str, Any] = {}
        timings: dict[str, Any] | None = None
        finish: str | None = None
        try:
            async with self._client.stream("POST", f"{self._api}{path}", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._http_error(response, spec)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": ping" comments, event: names
                    payload = line[len("data:") :].strip()
                    t_ns = now_ns()
                    if payload == "[DONE]":
                        yield self._final(t_ns, usage, timings, finish)
                        return
                    event = self._parse(payload)
                    for choice in event.get("choices") or ():
                        delta = choice.get("delta") or {}
                        text = delta.get("content") or choice.get("text") or ""
                        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
                        if text or thinking:
                            yield TextChunk(t_ns=t_ns, text=text, thinking=thinking)
                        finish = choice.get("finish_reason") or finish
                    usage = event.get("usage") or usage
                    timings = event.get("timings") or timings
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if finish is None:
            raise ProtocolError(f"the stream from {self.host} ended before the answer was finished")
        # Some servers end the body after the finishing event without ``[DONE]``.
        yield self._final(now_ns(), usage, timings, finish)

    def _parse(self, payload: str) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise ProtocolError(
                f"the server at {self.host} sent a stream line that is not JSON: {payload[:80]!r}"
            ) from exc
        if not isinstance(event, dict):
            raise ProtocolError(
                f"the server at {self.host} sent a stream event that is not an object"
            )
        if "error" in event:  # an error reported mid-stream, after the 200 status
            raise BackendError(
                f"the server at {self.host} failed during generation: "
                f"{error_message(json.dumps(event).encode())}"
            )
        return event

    @staticmethod
    def _final(
        t_ns: int, usage: dict[str, Any], timings: dict[str, Any] | None, finish: str | None
    ) -> FinalChunk:
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if cached is None and timings:
            cached = timings.get("cache_n")
        return FinalChunk(
            t_ns=t_ns,
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            server=_server_stats(timings, finish) if timings else None,
            done_reason=finish,
            cached_tokens=cached if isinstance(cached, int) else None,
        )

    async def unload(self, spec: ModelSpec) -> None:
        raise BackendError(
            "OpenAI-compatible servers have no unload; cold runs are not possible there"
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- errors ------------------------------------------------------------------------------

    async def _request(self, method: str, path: str) -> httpx.Response:
        try:
            response = await self._client.request(method, f"{self._api}{path}")
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._http_error(response, None)
        return response

    def _transport_error(self, exc: httpx.TransportError) -> BackendError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return Unreachable(
                f"cannot connect to the OpenAI-compatible server at {self.host}: is it running?"
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            return BackendError(f"bad OpenAI-compatible server URL {self.host!r}: {exc}")
        return ProtocolError(f"the connection to {self.host} broke during the answer: {exc}")

    def _http_error(self, response: httpx.Response, spec: ModelSpec | None) -> BackendError:
        code, said = response.status_code, error_message(response.content)
        if code == 404:
            what = f"model '{spec.name}'" if spec else "the OpenAI API (/v1)"
            return ModelNotFound(f"{what} not found on {self.host} (HTTP 404: {said})")
        if code in (429, 503):
            return ServerBusy(f"the server at {self.host} is busy (HTTP {code}: {said})")
        if code in (400, 422):
            return BadRequest(
                f"the server at {self.host} rejected the request (HTTP {code}: {said})"
            )
        return BackendError(f"the server at {self.host} failed (HTTP {code}: {said})")
