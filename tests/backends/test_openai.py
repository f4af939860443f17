"""The OpenAI-compatible backend against real servers.

Two real servers: ``llama_cpp.server`` with SmolLM2 (the ``llama_server`` fixture), and a small
stdlib HTTP server in this file that speaks like llama.cpp's ``llama-server`` (usage, ``timings``,
``reasoning_content``) and can also misbehave on demand (404, 503, bad JSON, cut streams).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.fixtures_llama import free_port

from llmbench_tui.backends.base import (
    BackendError,
    BadRequest,
    FinalChunk,
    ModelNotFound,
    ProtocolError,
    ServerBusy,
    TextChunk,
    Unreachable,
)
from llmbench_tui.backends.gguf import GGUFBackend
from llmbench_tui.backends.openai import OpenAIBackend, api_root, error_message
from llmbench_tui.schema import ModelSpec, Options

GREEDY = Options(temperature=0, seed=7, max_tokens=12)


async def collect(backend: OpenAIBackend, spec: ModelSpec, options: Options = GREEDY):
    items = [item async for item in backend.stream(spec, "Name three colours.", options)]
    assert isinstance(items[-1], FinalChunk)
    assert all(isinstance(item, TextChunk) for item in items[:-1])
    return items[:-1], items[-1]


# -- a llama-server look-alike that can also misbehave ------------------------------------------


def sse(event: dict | str) -> bytes:
    data = event if isinstance(event, str) else json.dumps(event)
    return f"data: {data}\n\n".encode()


def delta(**fields) -> dict:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


LLAMA_SERVER_STREAM = [
    b": keep-alive comment\n\n",
    sse(delta(role="assistant")),  # role only: not text-bearing
    sse(delta(content="")),  # empty: not text-bearing
    sse(delta(reasoning_content="Let me think.")),
    sse(delta(content="Red")),
    sse(delta(content=", green")),
    sse(delta(content=", blue")),
    sse(
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "timings": {
                "prompt_n": 12,
                "prompt_ms": 30.0,
                "prompt_per_second": 400.0,
                "predicted_n": 5,
                "predicted_ms": 50.0,
                "predicted_per_second": 100.0,
                "cache_n": 3,
            },
        }
    ),
    sse({"choices": [], "usage": {"prompt_tokens": 15, "completion_tokens": 5}}),
    sse("[DONE]"),
]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.bodies: list[dict] = []
        self.client_gone = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            meta = {"size": 1234, "n_params": 5678, "n_ctx_train": 4096}
            models = [{"id": "fake", "owned_by": "tests", "meta": meta}, {"id": "other"}]
            self.reply(200, json.dumps({"object": "list", "data": models}).encode())
        elif self.path == "/props":
            self.reply(200, json.dumps({"build_info": "b9999-test"}).encode())
        else:
            self.reply(404, b'{"detail": "Not Found"}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        model = body["model"]
        errors = {
            "missing": (404, b'{"error": {"message": "model \'missing\' not found", "code": 404}}'),
            "busy": (503, b'{"error": {"message": "Loading model", "code": 503}}'),
            "limited": (429, b'{"error": "too many requests"}'),
            "invalid": (400, b'{"error": {"message": "max_tokens must be positive"}}'),
            "boom": (500, b"segfault in\nthe kernel"),
        }
        if model in errors:
            self.reply(*errors[model])
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        lines = {
            "fake": LLAMA_SERVER_STREAM,
            "badjson": [sse(delta(content="ok")), b"data: {not json\n\n"],
            "cut": [sse(delta(content="half an ans"))],
            "midstream": [sse(delta(content="a")), sse({"error": {"message": "out of memory"}})],
            "nodone": [
                sse(delta(content="hi")),
                sse({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
            ],
        }.get(model)
        try:
            if lines is not None:
                for line in lines:
                    self.wfile.write(line)
                    self.wfile.flush()
                return
            for i in range(2000):  # "slow": until the client hangs up
                self.wfile.write(sse(delta(content=f" w{i}")))
                self.wfile.flush()
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            self.server.client_gone.set()


@pytest.fixture
def fake_server() -> Iterator[tuple[FakeServer, str]]:
    server = FakeServer(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def fake(fake_server) -> Iterator[tuple[FakeServer, OpenAIBackend]]:
    server, url = fake_server
    backend = OpenAIBackend(url)
    yield server, backend
    await backend.aclose()


def spec(name: str, host: str = "x") -> ModelSpec:
    return ModelSpec(backend="openai", name=name, host=host)


# -- helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("http://h:8080", "http://h:8080/v1"),
        ("http://h:8080/", "http://h:8080/v1"),
        ("http://h:8080/v1", "http://h:8080/v1"),
        ("http://h:8080/v1/", "http://h:8080/v1"),
        ("h:8080", "http://h:8080/v1"),
    ],
)
def test_api_root_accepts_with_or_without_v1(given: str, root: str) -> None:
    assert api_root(given) == root


def test_api_root_needs_a_url() -> None:
    with pytest.raises(BackendError, match="needs its server URL"):
        api_root("  ")


def test_error_message_reads_the_usual_shapes() -> None:
    assert error_message(b'{"error": {"message": "no such model"}}') == "no such model"
    assert error_message(b'{"error": "busy"}') == "busy"
    assert error_message(b'{"detail": "Not Found"}') == "Not Found"
    assert error_message(b"plain\ntext  body") == "plain text body"
    assert error_message(b"") == "no details given"


# -- against the llama-server look-alike ---------------------------------------------------------


async def test_stream_maps_llama_server_chunks_usage_and_timings(fake) -> None:
    server, backend = fake
    options = Options(
        temperature=0.3, top_k=20, top_p=0.9, seed=1, max_tokens=50, system="Be brief."
    )
    chunks, final = await collect(backend, spec("fake"), options)
    assert [(c.text, c.thinking) for c in chunks] == [
        ("", "Let me think."),
        ("Red", ""),
        (", green", ""),
        (", blue", ""),
    ]
    assert all(c.n_tokens is None for c in chunks)  # the server does not say
    stamps = [c.t_ns for c in chunks] + [final.t_ns]
    assert stamps == sorted(stamps)
    assert (final.prompt_tokens, final.output_tokens, final.done_reason) == (15, 5, "stop")
    stats = final.server
    assert stats.decode_tok_s == 100.0 and stats.prompt_tok_s == 400.0
    assert stats.eval_s == pytest.approx(0.05) and stats.prompt_eval_s == pytest.approx(0.03)
    assert (stats.eval_count, stats.prompt_eval_count) == (5, 12)
    assert stats.load_s is None and stats.total_s is None  # llama.cpp does not report them
    assert stats.model_extra["cache_n"] == 3
    # What was sent: streaming with usage, every option, the system message first.
    body = server.bodies[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_k"], body["top_p"]) == (0.3, 20, 0.9)
    assert (body["seed"], body["max_tokens"], body["model"]) == (1, 50, "fake")
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three colours."},
    ]


async def test_unset_options_are_left_to_the_server(fake) -> None:
    server, backend = fake
    await collect(backend, spec("fake"), Options(think=True, num_ctx=8192))
    body = server.bodies[-1]
    assert not {"temperature", "top_k", "top_p", "seed", "max_tokens", "not_applied"} & set(body)
    assert [m["role"] for m in body["messages"]] == ["user"]
    eff = backend.effective_options(spec("fake"), Options(think=True, num_ctx=8192, seed=3))
    assert eff == {"seed": 3, "not_applied": ["num_ctx", "think"]}


async def test_models_describe_and_version(fake_server) -> None:
    _, url = fake_server
    backend = OpenAIBackend(f"{url}/v1/")
    try:
        models = await backend.list_models()
        assert [m.name for m in models] == ["fake", "other"]
        first = models[0]
        assert (first.size_bytes, first.parameter_count, first.context_length) == (1234, 5678, 4096)
        assert first.spec == ModelSpec(backend="openai", name="fake", host=f"{url}/v1/")
        assert (await backend.describe(spec("other"))).name == "other"
        with pytest.raises(
            ModelNotFound, match=r"model 'nope' not found on .*: available: fake, other"
        ):
            await backend.describe(spec("nope"))
        assert await backend.version() == "b9999-test"
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("model", "error", "words"),
    [
        (
            "missing",
            ModelNotFound,
            r"model 'missing' not found on .* \(HTTP 404: model 'missing' not found\)",
        ),
        ("busy", ServerBusy, r"is busy \(HTTP 503: Loading model\)"),
        ("limited", ServerBusy, r"is busy \(HTTP 429: too many requests\)"),
        ("invalid", BadRequest, r"rejected the request \(HTTP 400: max_tokens must be positive\)"),
        ("boom", BackendError, r"failed \(HTTP 500: segfault in the kernel\)"),
        ("badjson", ProtocolError, r"sent a stream line that is not JSON: '\{not json'"),
        ("cut", ProtocolError, r"ended before the answer was finished"),
        ("midstream", BackendError, r"failed during generation: out of memory"),
    ],
)
async def test_server_failures_become_typed_errors(fake, model, error, words) -> None:
    _, backend = fake
    with pytest.raises(error, match=words) as caught:
        await collect(backend, spec(model))
    assert "\n" not in str(caught.value)


async def test_a_finished_stream_without_done_is_accepted(fake) -> None:
    _, backend = fake
    chunks, final = await collect(backend, spec("nodone"))
    assert [c.text for c in chunks] == ["hi"]
    assert final.done_reason == "stop" and final.output_tokens is None and final.server is None


async def test_closing_the_stream_hangs_up(fake) -> None:
    server, backend = fake
    agen = backend.stream(spec("slow"), "go on", Options())
    first = await agen.__anext__()
    assert first.text == " w0"
    await agen.aclose()
    assert await _wait(server.client_gone)  # the server saw the connection go


async def _wait(event: threading.Event, timeout: float = 5.0) -> bool:
    return await asyncio.to_thread(event.wait, timeout)


async def test_unreachable_server() -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(
            Unreachable,
            match=r"^cannot connect to the OpenAI-compatible server at http://127\.0\.0\.1:\d+: "
            r"is it running\?$",
        ):
            await backend.list_models()
        with pytest.raises(Unreachable, match="is it running"):
            await collect(backend, spec("any"))
        assert await backend.version() is None
    finally:
        await backend.aclose()


async def test_unload_says_cold_runs_are_impossible(fake) -> None:
    _, backend = fake
    with pytest.raises(BackendError, match="no unload; cold runs are not possible there"):
        await backend.unload(spec("fake"))


# -- against the real llama_cpp.server -----------------------------------------------------------


async def test_real_llama_cpp_server(llama_server: str, smollm_path) -> None:
    backend = OpenAIBackend(llama_server)
    try:
        models = await backend.list_models()
        assert [m.name for m in models] == [str(smollm_path)]  # llama_cpp.server's default alias
        model = models[0].spec
        assert await backend.describe(model) == models[0]
        assert await backend.version() is None  # llama_cpp.server has no /props

        chunks, final = await collect(backend, model, Options(temperature=0, max_tokens=6))
        assert chunks and all(c.text for c in chunks)  # the role-only first event was skipped
        stamps = [c.t_ns for c in chunks]
        assert stamps == sorted(stamps) and final.t_ns >= stamps[-1]
        assert final.done_reason == "length"
        # llama_cpp.server 0.3.36 sends neither usage nor timings in a stream: left unknown.
        assert final.output_tokens is None and final.server is None
        answer = "".join(c.text for c in chunks)
    finally:
        await backend.aclose()

    # The same model, template and greedy sampling in-process give the same words.
    gguf = GGUFBackend(n_threads=1)
    try:
        items = [
            item
            async for item in gguf.stream(
                ModelSpec.parse("embedded"),
                "Name three colours.",
                Options(temperature=0, max_tokens=6),
            )
        ]
    finally:
        await gguf.aclose()
    assert "".join(i.text for i in items[:-1]) == answer
