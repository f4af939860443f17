"""An Ollama-protocol test server: real HTTP on 127.0.0.1, scriptable per model.

A real Ollama cannot be installed on the build machines, so the Ollama backend, the engine and the
dashboard are tested against this server instead. It follows Ollama's documented API
(its published API documentation) byte for byte where a client can tell: NDJSON over chunked
transfer encoding, a final chunk with nanosecond durations that are left out when zero
(``omitempty``), ``{"error": ...}`` bodies with the documented status codes, an error *line*
inside a 200 stream once the stream has begun, ``keep_alive: 0`` unload requests, and thinking
models that stream ``message.thinking`` before the answer.

Each model is a ``FakeModel``: the tokens it answers with, the time it takes (per-token delays,
prompt-evaluation and load delays), and an optional fault (``busy``, ``error_midstream``, ``cut``,
``stall``, ``garbage``). The durations it reports are measured from what it actually did, so
server figures can be checked against client figures. ``replies`` scripts a different answer for
each request in turn (a judge giving verdicts, a conversation's turns) and ``fault_on`` limits the
fault to some requests (the second turn of a conversation fails).

Token counting (``prompt_eval_count``) follows one documented rule, ``count_tokens``: a text is
split at whitespace and each word counts one token per started 4 characters (``"the"`` 1,
``"people"`` 2, ``"mountains"`` 3). A chat request counts each message's content plus 4 tokens
of template per message; ``/api/generate`` counts the prompt and the system prompt plus 4 tokens
of template, and with ``raw: true`` (no template) the prompt alone. Prompts are never truncated
to ``num_ctx``. Calibration tests rely on this rule holding exactly.

Every request is recorded in ``server.requests`` (``Recorded``) so tests can assert on what the
client sent (``think`` present or not, options) and on what happened (``outcome``, tokens sent).

Pulling and deleting (``/api/pull``, ``/api/delete``) follow Ollama's documentation: a pull streams
``{"status": "pulling manifest"}``, then per layer ``{"status": "pulling <digest12>", "digest",
"total", "completed"}`` lines, then ``verifying sha256 digest``, ``writing manifest`` and
``success``; only then does the model appear in ``/api/tags``. A name the registry does not have
gets ``{"error": "pull model manifest: file does not exist"}`` inside the 200 stream, as Ollama
sends it. ``Pullable.cut_after`` drops the connection after that many progress lines (a network
failure mid-pull); ``Pullable.hold`` keeps the pull waiting before its first layer until the
event is set, so a test can look at the half-done state. ``/api/delete`` answers 200 with an
empty body, or 404 with ``{"error": "model 'NAME' not found"}``.

Use from tests::

    with OllamaTestServer([FakeModel("m:1b", tokens=["a", "b"])]) as server:
        server.url  # "http://127.0.0.1:PORT"

or by hand: ``python tests/support/ollama_server.py --port 11434`` (default models below).

Responses close the connection after each request (``Connection: close``): simpler than
keep-alive and it lets the server notice at once when a client walks away mid-stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Fault = Literal["busy", "error_midstream", "cut", "stall", "garbage"]

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_NUM_CTX = 4096
FINAL_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

DEFAULT_ANSWER = (
    "The sky looks blue because air molecules scatter short blue wavelengths of sunlight "
    "far more than red ones ."
)


TEMPLATE_TOKENS = 4  # what the (pretend) chat template adds per message


def count_tokens(text: str) -> int:
    """The server's tokenizer (module docstring): per whitespace-separated word, one token per
    started 4 characters."""
    return sum(-(-len(word) // 4) for word in text.split())


def words(text: str) -> list[str]:
    """Split a sentence into word tokens that keep their leading space, like a BPE vocabulary."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]]


@dataclass
class FakeModel:
    """One model the server offers and how it behaves.

    Timing: before the first token the server waits ``load_delay_s`` when the model is not loaded
    (or was loaded with another ``num_ctx``: a hidden reload, as in Ollama), then
    ``prompt_delay_s`` (prompt evaluation); before emitted token *i* (thinking tokens first,
    then answer tokens) it waits ``delays[i]`` when the list has that index, else
    ``token_delay_s``. ``fault_after`` is how many tokens are sent before the fault.
    """

    name: str
    tokens: list[str] = field(default_factory=lambda: words(DEFAULT_ANSWER))
    thinking: list[str] = field(default_factory=list)
    token_delay_s: float = 0.005
    delays: list[float] = field(default_factory=list)
    prompt_delay_s: float = 0.0
    load_delay_s: float = 0.0
    empty_first_chunk: bool = False
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    family: str = "llama"
    parameter_size: str = "135M"
    parameter_count: int = 134_515_008
    quantization_level: str = "Q4_1"
    context_length: int = 8192
    # The attention layout /api/show's model_info gives (GGUF keys; SmolLM2-135M's by default).
    block_count: int = 30
    embedding_length: int = 576
    head_count: int = 9
    head_count_kv: int = 3
    feed_forward_length: int = 1536
    vocab_size: int = 49152
    size: int = 100_000_000
    size_vram: int | None = None  # what /api/ps reports; None = all of it on the GPU
    fault: Fault | None = None
    fault_after: int = 0
    error_message: str = "llama runner process has terminated: exit status 2"
    omit_fields: frozenset[str] = frozenset()  # final-chunk fields left out (old servers)
    parallel: int = 0  # requests served at once (OLLAMA_NUM_PARALLEL); 0 = no limit
    # Scripted answers, one per generation request in turn (cycling); empty: ``tokens`` always.
    replies: list[str] = field(default_factory=list)
    # Which generation requests (0-based, in arrival order) get ``fault`` (not ``busy``, which
    # refuses every request); empty: every one.
    fault_on: list[int] = field(default_factory=list)
    served: int = 0  # generation requests received so far

    def __post_init__(self) -> None:
        self.name = canonical(self.name)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def delay(self, index: int) -> float:
        return self.delays[index] if index < len(self.delays) else self.token_delay_s

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


@dataclass
class Pullable:
    """A model the (pretend) registry offers to ``/api/pull``, and how the download behaves."""

    model: FakeModel
    layers: list[int] = field(default_factory=lambda: [4_000_000, 1_200, 420])  # blob bytes
    steps: int = 4  # progress lines per layer
    step_delay_s: float = 0.01
    cut_after: int | None = None  # drop the connection after this many progress lines
    hold: threading.Event | None = None  # wait for this before the first layer


@dataclass
class Recorded:
    """One request as the server saw it and what it did with it.

    ``outcome``: ``"ok"`` (answered in full), ``"error"`` (an HTTP error status such as 404, 400
    or the ``busy`` 503), ``"disconnected"`` (the client went away mid-stream),
    ``"error_midstream"``/``"cut"``/``"garbage"`` (that fault happened) or ``"stalled"`` (a
    stall, ended by the client leaving or the server stopping); ``None`` while still running.
    ``final`` is the final chunk exactly as sent, when one was.
    """

    method: str
    path: str
    body: Any
    t_arrival_ns: int
    status: int | None = None
    outcome: str | None = None
    tokens_sent: int = 0
    final: dict[str, Any] | None = None


def canonical(name: str) -> str:
    """Ollama's own normalisation: a name without a tag means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def default_models() -> list[FakeModel]:
    """What ``python tests/support/ollama_server.py`` offers: a small model and a thinking one."""
    return [
        FakeModel("smollm-fake:135m", token_delay_s=0.02, prompt_delay_s=0.05, load_delay_s=0.5),
        FakeModel(
            "thinker:1b",
            thinking=words("The user asks about the sky . Rayleigh scattering explains it ."),
            tokens=words("Because of Rayleigh scattering ."),
            token_delay_s=0.03,
            prompt_delay_s=0.08,
            load_delay_s=1.0,
            capabilities=["completion", "thinking"],
            family="qwen3",
            parameter_size="1.0B",
            parameter_count=1_003_000_000,
            quantization_level="Q4_K_M",
            context_length=40960,
            size=650_000_000,
        ),
    ]


_DURATION_RE = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def keep_alive_seconds(value: Any) -> float:
    """``keep_alive`` as Ollama reads it: seconds as a number, or a Go duration string."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    with contextlib.suppress(ValueError):
        return float(text)
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"time: invalid duration {text!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class _Request(Exception):
    """An HTTP error answer decided while handling a request (status and ``error`` text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Conn:
    """One accepted connection: writes HTTP/1.1 responses and notices the client leaving."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.headers_sent = False
        self._eof: asyncio.Future[bytes] | None = None

    def watch_eof(self) -> None:
        """Start watching for the client closing its side (nothing more is read after a body)."""
        self._eof = asyncio.ensure_future(self.reader.read(1))

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the client leaves first; True when it left."""
        if self._eof is None:
            await asyncio.sleep(seconds)
            return False
        await asyncio.wait([self._eof], timeout=max(seconds, 0.0))
        return self._eof.done()

    async def wait_forever(self) -> None:
        if self._eof is not None:
            await asyncio.wait([self._eof])
        else:
            await asyncio.Event().wait()

    def close(self) -> None:
        if self._eof is not None and not self._eof.done():
            self._eof.cancel()
        self.writer.close()

    def abort(self) -> None:
        """Drop the connection without finishing the response (a crashed server)."""
        if self._eof is not None and not self._eof.done():
            self._eof.cancel()
        self.writer.transport.abort()

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        headers = {"Date": email.utils.formatdate(usegmt=True), "Connection": "close", **headers}
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, status: int, body: bytes, content_type: str) -> None:
        head = self._head(status, {"Content-Type": content_type, "Content-Length": str(len(body))})
        self.writer.write(head + body)
        self.headers_sent = True
        await self.writer.drain()

    async def send_json(self, status: int, obj: Any) -> None:
        await self.send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    async def send_line(self, obj: Any | bytes) -> None:
        """One NDJSON line as one HTTP chunk; the 200 head goes out with the first line."""
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        data += b"\n"
        out = b""
        if not self.headers_sent:
            out = self._head(
                200, {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"}
            )
            self.headers_sent = True
        self.writer.write(out + f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await self.writer.drain()

    async def end_chunks(self) -> None:
        """The terminating zero-length chunk: the stream ended properly."""
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


class OllamaTestServer:
    """The server; runs its own event loop on a daemon thread so sync and async tests can use it.

    ``models`` is the model table (name -> ``FakeModel``), editable while the server runs
    (``add_model``); ``requests`` lists every request received, oldest first.
    """

    def __init__(
        self,
        models: Iterable[FakeModel] | None = None,
        *,
        version: str = "0.12.6",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.models: dict[str, FakeModel] = {}
        for model in default_models() if models is None else models:
            self.add_model(model)
        self.registry: dict[str, Pullable] = {}  # what /api/pull can fetch (``offer``)
        self.version = version
        self.requests: list[Recorded] = []
        self.loaded: dict[str, tuple[float, int]] = {}  # name -> (expires_at epoch, num_ctx)
        self._bind = (host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._gates: dict[str, asyncio.Semaphore] = {}
        self.port = 0

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._bind[0]}:{self.port}"

    def add_model(self, model: FakeModel) -> FakeModel:
        self.models[model.name] = model
        return model

    def offer(self, pullable: Pullable) -> Pullable:
        """Make a model pullable (it is not listed until a pull completes)."""
        self.registry[pullable.model.name] = pullable
        return pullable

    def start(self) -> OllamaTestServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, *self._bind)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # report a bind failure to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="ollama-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (stalled ones too), then the thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be gone
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for conn in list(self._conns):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> OllamaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read --------------------------------------------------------------------

    def generations(self, model: str | None = None) -> list[Recorded]:
        """The /api/chat and /api/generate requests, optionally for one model only."""
        out = [r for r in self.requests if r.path in ("/api/chat", "/api/generate")]
        if model is not None:
            out = [
                r
                for r in out
                if isinstance(r.body, dict)
                and canonical(str(r.body.get("model", ""))) == canonical(model)
            ]
        return out

    def loaded_models(self) -> list[str]:
        now = time.time()
        return [name for name, (expires, _) in self.loaded.items() if expires > now]

    # -- HTTP -------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(reader, writer)
        self._conns.add(conn)
        try:
            await self._serve_one(conn)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away; the request record says so where it matters
        finally:
            self._conns.discard(conn)
            self._tasks.discard(task)
            conn.close()

    async def _serve_one(self, conn: _Conn) -> None:
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target = [*lines[0].split(" "), "", ""][:2]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        body_bytes = b""
        if "content-length" in headers:
            body_bytes = await conn.reader.readexactly(int(headers["content-length"]))
        elif method == "POST":
            await conn.send_json(411, {"error": "a request body needs Content-Length"})
            return
        body: Any = None
        rec = Recorded(method, path, None, time.perf_counter_ns())
        self.requests.append(rec)
        try:
            if body_bytes:
                try:
                    body = json.loads(body_bytes)
                except json.JSONDecodeError as exc:
                    raise _Request(400, f"invalid character in request body: {exc.msg}") from None
            rec.body = body
            conn.watch_eof()
            await self._route(conn, rec, method, path, body)
        except _Request as err:
            rec.status, rec.outcome = err.status, "error"
            await conn.send_json(err.status, {"error": err.message})

    async def _route(self, conn: _Conn, rec: Recorded, method: str, path: str, body: Any) -> None:
        if path == "/" and method in ("GET", "HEAD"):
            rec.status, rec.outcome = 200, "ok"
            await conn.send(200, b"Ollama is running", "text/plain; charset=utf-8")
            return
        routes = {
            ("GET", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("GET", "/test/arrivals"): self._arrivals,
        }
        if handler := routes.get((method, path)):
            rec.status, rec.outcome = 200, "ok"
            await conn.send_json(200, handler(body))
        elif method == "POST" and path in ("/api/chat", "/api/generate"):
            await self._generate(conn, rec, path == "/api/chat", body)
        elif method == "POST" and path == "/api/pull":
            await self._pull(conn, rec, body)
        elif method == "DELETE" and path == "/api/delete":
            await self._delete(conn, rec, body)
        else:
            rec.status, rec.outcome = 404, "error"
            await conn.send(404, b"404 page not found", "text/plain")

    # -- simple endpoints -------------------------------------------------------------------

    def _version(self, _body: Any) -> dict[str, Any]:
        return {"version": self.version}

    def _arrivals(self, _body: Any) -> dict[str, Any]:
        """Not Ollama's: when each generation request arrived (``perf_counter_ns``, the system's
        CLOCK_MONOTONIC on Linux), for tests that run this server in its own process."""
        return {
            "arrivals": [
                {"model": (r.body or {}).get("model") if isinstance(r.body, dict) else None,
                 "t_arrival_ns": r.t_arrival_ns}
                for r in self.generations()
            ]
        }  # fmt: skip

    def _tags(self, _body: Any) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": m.name,
                    "model": m.name,
                    "modified_at": _iso(time.time() - 86400),
                    "size": m.size,
                    "digest": m.digest,
                    "details": m.details(),
                }
                for m in self.models.values()
            ]
        }

    def _ps(self, _body: Any) -> dict[str, Any]:
        out = []
        for name in self.loaded_models():
            m = self.models.get(name)
            if m is None:
                continue
            expires, num_ctx = self.loaded[name]
            out.append(
                {
                    "name": m.name,
                    "model": m.name,
                    "size": m.size,
                    "digest": m.digest,
                    "details": m.details(),
                    "expires_at": _iso(min(expires, 1e10)),
                    "size_vram": m.size if m.size_vram is None else m.size_vram,
                    "context_length": num_ctx,
                }
            )
        return {"models": out}

    def _find(self, body: Any) -> FakeModel:
        if not isinstance(body, dict):
            raise _Request(400, "missing request body")
        name = body.get("model") or body.get("name")
        if not name:
            raise _Request(400, "model is required")
        model = self.models.get(canonical(str(name)))
        if model is None:
            raise _Request(404, f'model "{name}" not found, try pulling it first')
        return model

    def _show(self, body: Any) -> dict[str, Any]:
        m = self._find(body)
        arch = m.family
        return {
            "license": "",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {m.name}\n',
            "parameters": 'stop "<|im_end|>"',
            "template": "{{ .Prompt }}",
            "details": m.details(),
            "model_info": {
                "general.architecture": arch,
                "general.parameter_count": m.parameter_count,
                f"{arch}.context_length": m.context_length,
                f"{arch}.embedding_length": m.embedding_length,
                f"{arch}.block_count": m.block_count,
                f"{arch}.attention.head_count": m.head_count,
                f"{arch}.attention.head_count_kv": m.head_count_kv,
                f"{arch}.feed_forward_length": m.feed_forward_length,
                f"{arch}.vocab_size": m.vocab_size,
            },
            "capabilities": list(m.capabilities),
            "modified_at": _iso(time.time() - 86400),
        }

    # -- pull and delete --------------------------------------------------------------------

    async def _pull(self, conn: _Conn, rec: Recorded, body: Any) -> None:
        if not isinstance(body, dict) or not (body.get("model") or body.get("name")):
            raise _Request(400, "model is required")
        name = canonical(str(body.get("model") or body.get("name")))
        rec.status = 200
        stream = body.get("stream", True) is not False
        pullable = self.registry.get(name)
        lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if pullable is None:
            error = {"error": "pull model manifest: file does not exist"}
            rec.outcome = "error"
            if stream:
                await conn.send_line(lines[0])
                await conn.send_line(error)
                await conn.end_chunks()
            else:
                rec.status = 500
                await conn.send_json(500, error)
            return
        sent = 0

        async def send(line: dict[str, Any]) -> bool:
            """Send one progress line; False when the connection was dropped (cut_after)."""
            nonlocal sent
            if pullable.cut_after is not None and sent >= pullable.cut_after:
                rec.outcome = "cut"
                conn.abort()
                return False
            if stream:
                await conn.send_line(line)
            sent += 1
            return True

        if not await send(lines[0]):
            return
        if pullable.hold is not None:
            while not pullable.hold.is_set():
                if await conn.wait(0.01):
                    rec.outcome = "disconnected"
                    return
        for i, total in enumerate(pullable.layers):
            digest = "sha256:" + hashlib.sha256(f"{name}/{i}".encode()).hexdigest()
            status = f"pulling {digest[7:19]}"
            for step in range(1, pullable.steps + 1):
                if await conn.wait(pullable.step_delay_s):
                    rec.outcome = "disconnected"
                    return
                line = {"status": status, "digest": digest, "total": total}
                line["completed"] = total * step // pullable.steps
                if not await send(line):
                    return
        for status in ("verifying sha256 digest", "writing manifest"):
            if not await send({"status": status}):
                return
        self.add_model(pullable.model)
        rec.outcome = "ok"
        if stream:
            await conn.send_line({"status": "success"})
            await conn.end_chunks()
        else:
            await conn.send_json(200, {"status": "success"})

    async def _delete(self, conn: _Conn, rec: Recorded, body: Any) -> None:
        if not isinstance(body, dict) or not (body.get("model") or body.get("name")):
            raise _Request(400, "model is required")
        raw = str(body.get("model") or body.get("name"))
        if self.models.pop(canonical(raw), None) is None:
            raise _Request(404, f"model '{raw}' not found")
        self.loaded.pop(canonical(raw), None)
        rec.status, rec.outcome = 200, "ok"
        await conn.send(200, b"", "text/plain; charset=utf-8")

    # -- generation -------------------------------------------------------------------------

    async def _generate(self, conn: _Conn, rec: Recorded, chat: bool, body: Any) -> None:
        model = self._find(body)
        try:
            keep_alive = keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            raise _Request(400, str(exc)) from None
        options = body.get("options") or {}
        stream = body.get("stream", True) is not False
        think_value = body.get("think")
        can_think = "thinking" in model.capabilities
        if think_value not in (None, False) and not can_think:
            raise _Request(400, f'"{body.get("model")}" does not support thinking')
        thinking_on = can_think and think_value is not False  # absent = on for thinking models
        if chat:
            messages = body.get("messages") or []
            empty = not messages
            prompt_tokens = sum(
                count_tokens(str(m.get("content") or "")) + TEMPLATE_TOKENS for m in messages
            )
        else:
            text = str(body.get("prompt") or "")
            empty = not text
            prompt_tokens = count_tokens(text)
            if not body.get("raw"):  # the template wraps the system prompt and the prompt
                prompt_tokens += count_tokens(str(body.get("system") or "")) + TEMPLATE_TOKENS

        if model.fault == "busy":
            raise _Request(503, BUSY_MESSAGE)

        base = {"model": body.get("model")}
        if empty:  # load or unload request: no generation
            if keep_alive == 0:
                self.loaded.pop(model.name, None)
                reason = "unload"
            else:
                await self._load(model, options, keep_alive)
                reason = "load"
            final = {**base, "created_at": _iso(time.time()), "done": True, "done_reason": reason}
            final |= {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
            rec.status, rec.outcome, rec.final = 200, "ok", final
            if stream:
                await conn.send_line(final)
                await conn.end_chunks()
            else:
                await conn.send_json(200, final)
            return

        gate = self._gates.setdefault(model.name, asyncio.Semaphore(model.parallel or 10**6))
        async with gate:
            await self._run(
                conn,
                rec,
                model,
                chat,
                body,
                stream,
                thinking_on,
                prompt_tokens,
                options,
                keep_alive,
            )

    async def _load(self, model: FakeModel, options: dict[str, Any], keep_alive: float) -> None:
        num_ctx = int(options.get("num_ctx") or DEFAULT_NUM_CTX)
        current = self.loaded.get(model.name)
        if current is None or current[0] <= time.time() or current[1] != num_ctx:
            await asyncio.sleep(model.load_delay_s)
        expires = time.time() + keep_alive if keep_alive >= 0 else float("inf")
        self.loaded[model.name] = (expires, num_ctx)

    async def _run(
        self,
        conn: _Conn,
        rec: Recorded,
        model: FakeModel,
        chat: bool,
        body: dict[str, Any],
        stream: bool,
        thinking_on: bool,
        prompt_tokens: int,
        options: dict[str, Any],
        keep_alive: float,
    ) -> None:
        t0 = rec.t_arrival_ns
        rec.status = 200
        base = {"model": body.get("model")}

        def chunk(text: str = "", thinking: str = "") -> dict[str, Any]:
            out: dict[str, Any] = {**base, "created_at": _iso(time.time())}
            if chat:
                msg = {"role": "assistant", "content": text}
                if thinking:
                    msg["thinking"] = thinking
                out["message"] = msg
            else:
                out["response"] = text
                if thinking:
                    out["thinking"] = thinking
            out["done"] = False
            return out

        if stream and model.empty_first_chunk:
            await conn.send_line(chunk())
        await self._load(model, options, keep_alive)
        t_sched = time.perf_counter_ns()
        if await conn.wait(model.prompt_delay_s):
            rec.outcome = "disconnected"
            return
        t_prompt_done = time.perf_counter_ns()

        plan = [("thinking", t) for t in model.thinking] if thinking_on else []
        number, model.served = model.served, model.served + 1
        fault = model.fault if not model.fault_on or number in model.fault_on else None
        tokens = model.tokens
        if model.replies:
            tokens = words(model.replies[number % len(model.replies)])
        plan += [("content", t) for t in tokens]
        limit = options.get("num_predict")
        reason = "stop"
        if isinstance(limit, int) and 0 <= limit < len(plan):
            plan, reason = plan[:limit], "length"

        text_parts: list[str] = []
        think_parts: list[str] = []
        for i, (kind, token) in enumerate(plan):
            if fault and i == model.fault_after:
                await self._fault(conn, rec, model, stream)
                return
            if await conn.wait(model.delay(i)):
                rec.outcome = "disconnected"
                return
            if kind == "thinking":
                think_parts.append(token)
                line = chunk(thinking=token)
            else:
                text_parts.append(token)
                line = chunk(text=token)
            if stream:
                await conn.send_line(line)
            rec.tokens_sent = i + 1
        if fault and model.fault_after >= len(plan):
            await self._fault(conn, rec, model, stream)
            return

        t_end = time.perf_counter_ns()
        stats = {
            "total_duration": t_end - t0,
            "load_duration": t_sched - t0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": t_prompt_done - t_sched,
            "eval_count": len(plan),
            "eval_duration": t_end - t_prompt_done,
        }
        stats = {k: v for k, v in stats.items() if v and k not in model.omit_fields}
        if stream:
            final = {**chunk(), "done": True, "done_reason": reason, **stats}
        else:
            final = {
                **chunk("".join(text_parts), "".join(think_parts)),
                "done": True,
                "done_reason": reason,
                **stats,
            }
        if keep_alive == 0:
            self.loaded.pop(model.name, None)
        rec.final, rec.outcome = final, "ok"
        if stream:
            await conn.send_line(final)
            await conn.end_chunks()
        else:
            await conn.send_json(200, final)

    async def _fault(self, conn: _Conn, rec: Recorded, model: FakeModel, stream: bool) -> None:
        """Misbehave as ``model.fault`` says, after the tokens already sent."""
        rec.outcome = model.fault
        if model.fault == "error_midstream":
            if stream:
                await conn.send_line({"error": model.error_message})
                await conn.end_chunks()
            else:
                rec.status = 500
                await conn.send_json(500, {"error": model.error_message})
        elif model.fault == "garbage":
            line = b"<html>502 Bad Gateway</html>"
            if stream:
                await conn.send_line(line)
                await conn.end_chunks()
            else:
                await conn.send(200, line, "application/json; charset=utf-8")
        elif model.fault == "cut":
            conn.abort()
        elif model.fault == "stall":
            await conn.wait_forever()
            rec.outcome = "stalled"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ollama-protocol test server (fake models).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument(
        "--token-delay",
        type=float,
        default=None,
        help="seconds between tokens for every model (default: per model)",
    )
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="every model answers with this many tokens (long streams for benchmarks)",
    )
    parser.add_argument(
        "--no-delays",
        action="store_true",
        help="no load or prompt-evaluation delay (benchmarks of the client side)",
    )
    args = parser.parse_args(argv)
    models = default_models()
    for m in models:
        if args.token_delay is not None:
            m.token_delay_s = args.token_delay
        if args.tokens is not None:
            m.tokens = [f" w{i}" for i in range(args.tokens)]
        if args.no_delays:
            m.load_delay_s = m.prompt_delay_s = 0.0
    server = OllamaTestServer(models, host=args.host, port=args.port).start()
    print(f"Ollama test server on {server.url}: {', '.join(server.models)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
