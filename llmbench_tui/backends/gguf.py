"""GGUF files run in this process through llama-cpp-python.

Generation is a token loop over ``Llama.generate`` rather than ``create_chat_completion``:
the high-level call holds text back for stop-string matching and UTF-8 completion, so its chunks
are neither one per token nor emitted when the token is produced. Here each sampled token is
timestamped with ``now_ns()`` on the worker thread the moment llama.cpp yields it, counted, and
detokenized; the prompt is rendered with the model's own chat template (GGUF
``tokenizer.chat_template``, via llama-cpp-python's ``Jinja2ChatFormatter``) and generation ends
at an end-of-generation token, at ``max_tokens`` or when the context is full.

Choices a reader of the figures should know:

- Every run starts from an empty KV cache (``Llama.reset``): llama-cpp-python would otherwise
  reuse the longest cached prompt prefix and a repeated run would evaluate almost no prompt, so
  repetitions would not measure the same work.
- Server figures come from llama.cpp's own perf counters (``llama_perf_context``), reset before
  each run: ``decode_tok_s = n_eval / t_eval``, ``prompt_tok_s = n_p_eval / t_p_eval``. ``load_s``
  is the ``Llama()`` construction time when this run had to load the model (cold), else ``None``.
- One ``Llama`` per (file, context size) is kept loaded; a lock serializes its use, so N
  concurrent streams against one in-process model run one after another (llama-cpp-python's
  ``Llama`` is single-sequence). Concurrency figures for GGUF therefore show queueing, not
  batching.
- ``think`` and ``keep_alive`` do not apply in-process and are reported as not applied.
- Raw prompts (``stream_raw``, the synthetic prompts of size grids) skip the chat template and
  are evaluated as the exact token ids the caller fitted with ``tokenize``; earlier context
  (``RawPrompt.context_ids``) is evaluated first, then the perf counters are reset and
  ``ContextReady`` is sent, so the prefill figure covers the ``pp`` tokens alone at that depth —
  llama-bench's ``-d``. End-of-generation tokens do not stop a raw run that asks for exactly
  ``max_tokens`` (``ignore_eos``); they are counted like any other token.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import llama_cpp
import psutil
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_types import ChatCompletionRequestMessage

from .. import config
from ..schema import ModelSpec, Options, ServerStats
from . import llama_log
from .base import (
    BackendError,
    ContextReady,
    FinalChunk,
    Message,
    ModelInfo,
    RawPrompt,
    StreamItem,
    TextChunk,
    chat_messages,
    now_ns,
)
from .embedded import embedded_model_path
from .gguf_meta import GGUFHeader, read_header

THREADS_ENV = "LLMBENCH_GGUF_THREADS"

# llama-cpp-python's chat-completion defaults, so an in-process run samples like the same model
# served by ``llama_cpp.server`` when the user leaves an option unset.
DEFAULTS = {"temperature": 0.2, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1}
# Context size when none is asked for: enough for long prompts, capped at what the model was
# trained for, and small enough that the KV cache of a large model still fits in RAM.
DEFAULT_N_CTX = 4096
# llama.cpp rounds the context up to a multiple of 256, while llama-cpp-python sizes its token
# buffer by the number asked for: asking for the rounded size keeps the two in step (and is the
# context size that is really in effect, so it is what gets recorded).
CTX_PAD = 256


def default_threads() -> int:
    """``LLMBENCH_GGUF_THREADS``, else the physical cores.

    llama.cpp's decode is memory-bound and hyperthreads only add contention; its threads also
    spin while waiting, so on a machine shared with other work fewer threads can be much faster —
    hence the override.
    """
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            if (threads := int(raw)) >= 1:
                return threads
        except ValueError:
            pass
        raise BackendError(f"{THREADS_ENV} must be a whole number of threads, not {raw!r}")
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass(slots=True)
class _Loaded:
    """A loaded model, the lock that gives one run at a time its use, and its chat formatter."""

    llm: llama_cpp.Llama
    load_s: float
    formatter: Jinja2ChatFormatter | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # llama.cpp's logged buffer sizes and this process's memory before the load (llama_report).
    report: dict[str, Any] = field(default_factory=dict)


class GGUFBackend:
    """Every GGUF file on this machine, run in-process (``host`` is ``None``)."""

    kind = "gguf"
    host: str | None = None

    def __init__(self, *, n_threads: int | None = None) -> None:
        self.n_threads = n_threads or default_threads()
        self._models: dict[tuple[Path, int], _Loaded] = {}
        self._headers: dict[Path, tuple[float, GGUFHeader]] = {}
        self._load_lock = threading.Lock()

    # -- discovery ---------------------------------------------------------------------------

    @staticmethod
    def model_path(spec: ModelSpec) -> Path:
        """The file a spec names: the embedded SmolLM2 file, or the path given."""
        if spec.embedded:
            return embedded_model_path()
        return Path(spec.name).expanduser().resolve()

    async def list_models(self) -> list[ModelInfo]:
        """The embedded model (when installed) and every ``.gguf`` under ``LLMBENCH_GGUF_PATHS``."""
        return await asyncio.to_thread(self._list_models)

    def _list_models(self) -> list[ModelInfo]:
        found: list[ModelInfo] = []
        with contextlib.suppress(BackendError):
            embedded = ModelSpec(backend="gguf", name="embedded", embedded=True)
            found.append(self._describe(embedded))
        seen = {info.extra["path"] for info in found}
        for path in config.gguf_files():
            if str(path) in seen:
                continue
            seen.add(str(path))
            with contextlib.suppress(BackendError):  # unreadable files are not offered
                found.append(self._describe(ModelSpec(backend="gguf", name=str(path))))
        return found

    async def describe(self, spec: ModelSpec) -> ModelInfo:
        return await asyncio.to_thread(self._describe, spec)

    def _describe(self, spec: ModelSpec) -> ModelInfo:
        path = self.model_path(spec)
        header = self._header(path)
        return ModelInfo(
            spec=spec,
            name=path.stem,
            size_bytes=path.stat().st_size,
            family=header.architecture,
            parameter_size=header.size_label,
            parameter_count=header.parameter_count or None,
            quantization=header.quantization,
            context_length=header.context_length,
            loaded=any(key[0] == path for key in self._models),
            extra={"path": str(path), "gguf_version": header.version},
        )

    def _header(self, path: Path) -> GGUFHeader:
        """``read_header`` cached per file modification time (options need it on every run)."""
        mtime = path.stat().st_mtime if path.is_file() else -1.0
        cached = self._headers.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, read_header(path))
            self._headers[path] = cached
        return cached[1]

    async def version(self) -> str | None:
        return f"llama-cpp-python {llama_cpp.__version__}"

    # -- options -----------------------------------------------------------------------------

    def _n_ctx(self, path: Path, options: Options) -> int:
        wanted = options.num_ctx
        if not wanted:
            trained = self._header(path).context_length
            wanted = min(DEFAULT_N_CTX, trained) if trained else DEFAULT_N_CTX
        return -(-wanted // CTX_PAD) * CTX_PAD

    def effective_options(self, spec: ModelSpec, options: Options) -> dict[str, Any]:
        """The sampling settings and load parameters actually used (defaults filled in)."""
        path = self.model_path(spec)
        effective: dict[str, Any] = {
            key: value if (value := getattr(options, key, None)) is not None else default
            for key, default in DEFAULTS.items()
        }
        effective.update(
            seed=options.seed,  # None: llama.cpp draws a random seed
            max_tokens=options.max_tokens,  # None: until end of generation or a full context
            n_ctx=self._n_ctx(path, options),
            n_threads=self.n_threads,
            gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
            chat_template="gguf"
            if self._header(path).metadata.get("tokenizer.chat_template")
            else "none (raw completion)",
        )
        not_applied = [key for key in ("think", "keep_alive") if getattr(options, key) is not None]
        if not_applied:
            effective["not_applied"] = not_applied
        return effective

    # -- loading -----------------------------------------------------------------------------

    def _load(self, path: Path, n_ctx: int) -> tuple[_Loaded, float | None]:
        """The loaded model for (path, n_ctx) and, if this call loaded it, the load seconds."""
        self._header(path)  # a missing or non-GGUF file fails here, with a clear message
        key = (path, n_ctx)
        with self._load_lock:
            loaded = self._models.get(key)
            if loaded is not None:
                return loaded, None
            rss_before = psutil.Process().memory_info().rss
            t0 = time.perf_counter()
            try:
                with llama_log.capture() as log_lines:
                    llm = llama_cpp.Llama(
                        model_path=str(path),
                        n_ctx=n_ctx,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,  # prompt evaluation: same budget
                        n_gpu_layers=-1,  # everything on the GPU when llama.cpp was built for one
                        verbose=False,
                    )
            except (ValueError, RuntimeError, OSError) as exc:
                raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
            loaded = _Loaded(llm, time.perf_counter() - t0, _formatter(llm))
            loaded.report = llama_log.buffers("".join(log_lines))
            loaded.report["rss_before_load_bytes"] = rss_before
            self._models[key] = loaded
            return loaded, loaded.load_s

    def llama_report(self, spec: ModelSpec, n_ctx: int) -> dict[str, Any] | None:
        """What llama.cpp reported allocating when it loaded ``spec`` at ``n_ctx`` (KV cache,
        compute and model buffers) and the process's memory before that load; ``None`` when
        that model is not loaded (``fit.check`` sets it next to the prediction)."""
        loaded = self._models.get((self.model_path(spec), n_ctx))
        return dict(loaded.report) if loaded is not None else None

    async def unload(self, spec: ModelSpec) -> None:
        """Free every loaded instance of the file (waiting for a running generation to stop)."""
        path = self.model_path(spec)
        await asyncio.to_thread(self._unload, lambda key: key[0] == path)

    def _unload(self, which: Callable[[tuple[Path, int]], bool]) -> None:
        with self._load_lock:
            for key in [key for key in self._models if which(key)]:
                loaded = self._models.pop(key)
                with loaded.lock:
                    loaded.llm.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self._unload, lambda key: True)

    # -- generation --------------------------------------------------------------------------

    async def stream(
        self,
        spec: ModelSpec,
        prompt: str,
        options: Options,
        *,
        history: Sequence[Message] = (),
    ) -> AsyncGenerator[StreamItem, None]:
        def job(loaded: _Loaded, settings: dict[str, Any], load_s: float | None, stop, emit):
            messages = chat_messages(prompt, options, history)
            _generate(loaded, _prompt_tokens(loaded, messages), settings, load_s, stop, emit)

        async with contextlib.aclosing(self._run(spec, options, job)) as items:
            async for item in items:  # closed with this stream: the worker stops at once
                yield item

    async def stream_raw(
        self, spec: ModelSpec, prompt: RawPrompt, options: Options
    ) -> AsyncGenerator[StreamItem, None]:
        """A raw prompt as exact tokens (module docstring); ``max_tokens`` from the prompt. A chat
        prompt is the user message rendered by the model's own chat template, in-process."""
        options = options.merged(Options(max_tokens=prompt.max_tokens))

        def job(loaded: _Loaded, settings: dict[str, Any], load_s: float | None, stop, emit):
            llm = loaded.llm
            if prompt.chat:
                tokens = _prompt_tokens(loaded, chat_messages(prompt.text, options))
            else:
                tokens = prompt.token_ids or _raw_tokens(llm, prompt.text)
            context = prompt.context_ids
            if context is None and prompt.context:
                context = _raw_tokens(llm, prompt.context)
                if tokens[: len(context)] != context:
                    context = None  # cannot prime a prefix that is not one
            _generate(
                loaded,
                tokens,
                settings,
                load_s,
                stop,
                emit,
                context=context or None,
                ignore_eos=prompt.ignore_eos,
                reset=not prompt.reuse_cache,
            )

        async with contextlib.aclosing(self._run(spec, options, job)) as items:
            async for item in items:  # closed with this stream: the worker stops at once
                yield item

    async def tokenize(self, spec: ModelSpec, text: str, options: Options) -> list[int] | None:
        """``text`` as a raw prompt: the GGUF's own vocabulary, BOS included when it adds one."""
        path = self.model_path(spec)
        n_ctx = await asyncio.to_thread(self._n_ctx, path, options)
        loaded, _ = await asyncio.to_thread(self._load, path, n_ctx)
        return await asyncio.to_thread(_raw_tokens, loaded.llm, text)

    async def probe_prompt_tokens(
        self, spec: ModelSpec, text: str, options: Options
    ) -> int | None:
        """In-process the tokenizer is exact; nothing needs generating to count."""
        tokens = await self.tokenize(spec, text, options)
        return None if tokens is None else len(tokens)

    async def _run(
        self, spec: ModelSpec, options: Options, job: Callable[..., None]
    ) -> AsyncGenerator[StreamItem, None]:
        """Run ``job`` on a worker thread holding the model's lock; yield what it emits."""
        path = self.model_path(spec)
        n_ctx = await asyncio.to_thread(self._n_ctx, path, options)
        loaded, load_s = await asyncio.to_thread(self._load, path, n_ctx)
        settings = self.effective_options(spec, options)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StreamItem | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: StreamItem | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                with loaded.lock:
                    if not stop.is_set():
                        job(loaded, settings, load_s, stop, emit)
            except BackendError as exc:
                emit(exc)
            except Exception as exc:  # llama.cpp failures surface as plain exceptions
                emit(BackendError(f"llama.cpp failed during generation: {exc}"))
            finally:
                emit(None)

        worker = threading.Thread(target=work, name="llmbench-gguf", daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # Closed early or cancelled: stop at the next token and wait for the worker, so the
            # model is free (and the CPU quiet) once the stream is closed.
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.to_thread(worker.join)


def _formatter(llm: llama_cpp.Llama) -> Jinja2ChatFormatter | None:
    """The model's own chat template, or ``None`` for base models that have none."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos, bos = llm.token_eos(), llm.token_bos()

    def text(token: int) -> str:
        return (
            llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""
        )

    return Jinja2ChatFormatter(
        template=template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos]
    )


def _raw_tokens(llm: llama_cpp.Llama, text: str) -> list[int]:
    """A raw prompt's tokens: no template, BOS when the model adds one, special text as text."""
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)


def _prompt_tokens(loaded: _Loaded, messages: list[Message]) -> list[int]:
    """The conversation as the model's own chat template renders it; a base model without a
    template gets the messages' contents joined by blank lines."""
    llm = loaded.llm
    if loaded.formatter is None:
        text = "\n\n".join(m["content"] for m in messages)
        return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    # Our messages are role/content pairs: llama.cpp's request messages of those roles.
    rendered = loaded.formatter(messages=cast(list[ChatCompletionRequestMessage], messages))
    return llm.tokenize(
        rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
    )


def _generate(
    loaded: _Loaded,
    tokens: list[int],
    settings: dict[str, Any],
    load_s: float | None,
    stop: threading.Event,
    emit: Callable[[StreamItem], None],
    *,
    context: list[int] | None = None,
    ignore_eos: bool = False,
    reset: bool = True,
) -> None:
    """The token loop, on the worker thread, holding the model's lock.

    ``context``: a prefix of ``tokens`` evaluated first, untimed (``ContextReady`` marks its end);
    ``ignore_eos``: end-of-generation tokens do not end the run; ``reset=False`` keeps the KV
    cache, so a prompt already evaluated is reused (prefix-cache mode).
    """
    llm = loaded.llm
    t0 = time.perf_counter()
    n_ctx = min(llm.n_ctx(), len(llm.input_ids))  # equal unless llama.cpp pads differently
    if len(tokens) >= n_ctx:
        raise BackendError(
            f"the prompt has {len(tokens)} tokens, which does not fit the context of {n_ctx}; "
            "raise num_ctx"
        )
    room = n_ctx - len(tokens)
    max_tokens = min(settings["max_tokens"] or room, room)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.set_seed(settings["seed"] if settings["seed"] is not None else llama_cpp.LLAMA_DEFAULT_SEED)
    if reset:
        llm.reset()  # an empty KV cache: every run evaluates its whole prompt (module docstring)
    if context and len(context) < len(tokens):
        llm.eval(context)  # generate() below finds it as a cached prefix
        # Wait for the evaluation to finish: llama.cpp books queued tokens in its perf counters
        # at the next synchronization, which would otherwise come after the reset below.
        llama_cpp.llama_synchronize(llm.ctx)
        emit(ContextReady(t_ns=now_ns(), context_tokens=len(context)))
    llama_cpp.llama_perf_context_reset(llm.ctx)

    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    produced, pending, done_reason = 0, 0, "stop"
    for token in llm.generate(
        tokens,
        temp=settings["temperature"],
        top_k=settings["top_k"],
        top_p=settings["top_p"],
        min_p=settings["min_p"],
        repeat_penalty=settings["repeat_penalty"],
    ):
        t_ns = now_ns()
        if stop.is_set():
            done_reason = "cancelled"
            break
        if llama_cpp.llama_vocab_is_eog(vocab, token) and not ignore_eos:
            break
        produced += 1
        pending += 1  # tokens that ended inside a multi-byte character wait for the next text
        if text := decoder.decode(llm.detokenize([token])):
            emit(TextChunk(t_ns=t_ns, text=text, n_tokens=pending))
            pending = 0
        if produced >= max_tokens:
            done_reason = "length"
            break
    if (text := decoder.decode(b"", final=True)) or pending:
        emit(TextChunk(t_ns=now_ns(), text=text, n_tokens=pending or None))

    perf = llama_cpp.llama_perf_context(llm.ctx)
    emit(
        FinalChunk(
            t_ns=now_ns(),
            prompt_tokens=len(tokens),
            output_tokens=produced,
            server=_server_stats(perf, load_s, time.perf_counter() - t0, done_reason),
            done_reason=done_reason,
        )
    )


def _server_stats(perf: Any, load_s: float | None, run_s: float, done_reason: str) -> ServerStats:
    """llama.cpp's perf counters for this run (milliseconds) as ``ServerStats``.

    ``llama_perf_context`` reports ``n_eval`` as at least 1 (a guard against dividing by zero);
    a run that decoded nothing after its prompt (one output token) has ``t_eval_ms == 0`` and is
    reported as 0 evaluations with no decode rate.
    """
    eval_s, prompt_s = perf.t_eval_ms / 1000.0, perf.t_p_eval_ms / 1000.0
    n_eval = perf.n_eval if eval_s > 0 else 0
    return ServerStats(
        decode_tok_s=n_eval / eval_s if n_eval else None,
        prompt_tok_s=perf.n_p_eval / prompt_s if perf.n_p_eval and prompt_s > 0 else None,
        prompt_eval_s=prompt_s,
        eval_s=eval_s,
        prompt_eval_count=perf.n_p_eval,
        eval_count=n_eval,
        load_s=load_s,
        total_s=run_s + (load_s or 0.0),
        done_reason=done_reason,
    )

