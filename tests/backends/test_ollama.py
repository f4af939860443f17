"""The Ollama backend against the Ollama-protocol test server, over real HTTP on 127.0.0.1.

Also checks the server's own protocol details with plain httpx, because the engine and TUI tests
rely on it behaving like Ollama.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import httpx
import pytest
from support.ollama_server import BUSY_MESSAGE, FakeModel, OllamaTestServer

from llmbench_tui.backends.base import (
    Backend,
    BackendError,
    BadRequest,
    FinalChunk,
    ModelNotFound,
    ProtocolError,
    ServerBusy,
    TextChunk,
    Unreachable,
)
from llmbench_tui.backends.ollama import OllamaBackend, resolve_host
from llmbench_tui.schema import ModelSpec, Options

SMOL = ModelSpec(backend="ollama", name="smollm-fake:135m")
THINKER = ModelSpec(backend="ollama", name="thinker:1b")


def spec(name: str) -> ModelSpec:
    return ModelSpec(backend="ollama", name=name)


async def collect(backend: OllamaBackend, model: ModelSpec, options: Options | None = None):
    items = [
        item async for item in backend.stream(model, "why is the sky blue?", options or Options())
    ]
    texts = [i for i in items if isinstance(i, TextChunk)]
    finals = [i for i in items if isinstance(i, FinalChunk)]
    assert len(finals) == 1 and items[-1] is finals[0]
    return texts, finals[0]


async def wait_until(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- host resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("gpu-box", "http://gpu-box:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        (":9999", "http://127.0.0.1:9999"),
        ("http://gpu-box", "http://gpu-box:11434"),  # not port 80 as the ollama client does
        ("http://gpu-box:80", "http://gpu-box:80"),
        ("https://gpu-box", "https://gpu-box:443"),
        ("http://10.0.0.5:11500/", "http://10.0.0.5:11500"),
        ("proxy.lan/ollama", "http://proxy.lan:11434/ollama"),
        ("[::1]", "http://[::1]:11434"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("  HTTP://Box:1234  ", "http://box:1234"),
    ],
)
def test_resolve_host_forms(given: str, expected: str) -> None:
    assert resolve_host(given) == expected


def test_resolve_host_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host(None) == "http://127.0.0.1:11434"
    monkeypatch.setenv("OLLAMA_HOST", "envhost:7777")
    assert resolve_host(None) == "http://envhost:7777"
    assert resolve_host("explicit") == "http://explicit:11434"


@pytest.mark.parametrize("bad", ["ftp://box", "box:notaport"])
def test_resolve_host_rejects_nonsense(bad: str) -> None:
    with pytest.raises(BackendError, match="bad Ollama host"):
        resolve_host(bad)


# -- queries --------------------------------------------------------------------------------


async def test_is_a_backend(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    assert isinstance(ollama_backend, Backend)
    assert ollama_backend.kind == "ollama"
    assert ollama_backend.host == ollama_server.url


async def test_version(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    ollama_server.version = "0.99.1"
    assert await ollama_backend.version() == "0.99.1"


async def test_list_models_and_loaded_flag(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    models = {m.name: m for m in await ollama_backend.list_models()}
    assert set(models) == {"smollm-fake:135m", "thinker:1b"}
    smol = models["smollm-fake:135m"]
    fake = ollama_server.models["smollm-fake:135m"]
    assert (smol.size_bytes, smol.family, smol.parameter_size, smol.quantization, smol.digest) == (
        fake.size,
        "llama",
        "135M",
        "Q4_1",
        fake.digest,
    )
    assert smol.loaded is False
    assert smol.spec.backend == "ollama" and smol.spec.host == ollama_server.url
    await collect(ollama_backend, SMOL)
    models = {m.name: m for m in await ollama_backend.list_models()}
    assert models["smollm-fake:135m"].loaded is True
    assert models["thinker:1b"].loaded is False


async def test_describe(ollama_backend: OllamaBackend):
    info = await ollama_backend.describe(THINKER)
    assert info.name == "thinker:1b"
    assert info.context_length == 40960
    assert info.parameter_count == 1_003_000_000
    assert info.size_bytes == 650_000_000
    assert info.family == "qwen3" and info.quantization == "Q4_K_M"
    assert "thinking" in info.capabilities and "completion" in info.capabilities
    assert info.loaded is False
    assert "thinking" not in (await ollama_backend.describe(SMOL)).capabilities


async def test_describe_missing_names_what_exists(ollama_backend: OllamaBackend):
    with pytest.raises(ModelNotFound) as err:
        await ollama_backend.describe(spec("llama9:70b"))
    assert str(err.value) == (
        f"model 'llama9:70b' not found on {ollama_backend.host} — "
        "available: smollm-fake:135m, thinker:1b"
    )


async def test_unload(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    ollama_server.models["smollm-fake:135m"].size_vram = 60_000_000  # partly on the CPU
    await collect(ollama_backend, SMOL, Options(num_ctx=2048))
    assert ollama_server.loaded_models() == ["smollm-fake:135m"]
    info = await ollama_backend.describe(SMOL)
    assert info.loaded is True
    assert info.extra["size_vram"] == 60_000_000
    assert info.extra["loaded_context_length"] == 2048
    await ollama_backend.unload(SMOL)
    assert (await ollama_backend.describe(SMOL)).loaded is False
    assert ollama_server.loaded_models() == []
    last = ollama_server.generations()[-1]
    assert last.body["messages"] == [] and last.body["keep_alive"] == 0
    assert last.final is not None and last.final["done_reason"] == "unload"


# -- streaming ------------------------------------------------------------------------------


async def test_stream_text_and_server_figures(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    tokens = ["Hello", ",", " world", " from", " a", " fake", " model", "."]
    ollama_server.add_model(
        FakeModel(
            "timed:1b",
            tokens=tokens,
            token_delay_s=0.02,
            prompt_delay_s=0.05,
            load_delay_s=0.1,
            empty_first_chunk=True,
        )
    )
    texts, final = await collect(ollama_backend, spec("timed:1b"))
    # the role-only empty first chunk is not a text chunk
    assert [c.text for c in texts] == tokens
    assert all(c.thinking == "" and c.n_tokens is None for c in texts)
    assert [c.t_ns for c in texts] == sorted(c.t_ns for c in texts)
    assert final.t_ns >= texts[-1].t_ns

    sent = ollama_server.generations("timed:1b")[-1].final
    assert sent is not None
    assert final.output_tokens == sent["eval_count"] == len(tokens)
    assert final.prompt_tokens == sent["prompt_eval_count"]
    assert final.done_reason == "stop"
    server = final.server
    assert server is not None
    assert server.decode_tok_s == pytest.approx(sent["eval_count"] / sent["eval_duration"] * 1e9)
    assert server.prompt_tok_s == pytest.approx(
        sent["prompt_eval_count"] / sent["prompt_eval_duration"] * 1e9
    )
    assert server.eval_s == pytest.approx(sent["eval_duration"] / 1e9)
    assert server.load_s == pytest.approx(sent["load_duration"] / 1e9)
    assert server.total_s == pytest.approx(sent["total_duration"] / 1e9)
    assert server.eval_count == len(tokens) and server.done_reason == "stop"
    # the server reports what it did: 8 tokens 20 ms apart, 50 ms prompt, 100 ms load
    assert 0.95 * 0.16 <= server.eval_s < 0.16 + 1.0
    assert 0.95 * 0.05 <= server.prompt_eval_s < 0.05 + 1.0
    assert server.load_s >= 0.95 * 0.1
    assert server.total_s + 1e-9 >= server.load_s + server.prompt_eval_s + server.eval_s
    assert server.decode_tok_s <= len(tokens) / (0.95 * 0.16)

    # warm now: no load delay the second time
    _, again = await collect(ollama_backend, spec("timed:1b"))
    assert again.server is not None and again.server.load_s < 0.1


async def test_chunk_instants_follow_the_server(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    ollama_server.add_model(
        FakeModel(
            "gappy:1b", tokens=["a", "b", "c", "d"], delays=[0.0, 0.0, 0.3, 0.0], token_delay_s=0.0
        )
    )
    texts, _ = await collect(ollama_backend, spec("gappy:1b"))
    gaps = [(b.t_ns - a.t_ns) / 1e9 for a, b in itertools.pairwise(texts)]
    assert gaps[1] >= 0.28
    assert gaps[0] < 0.2 and gaps[2] < 0.2


async def test_final_fields_are_optional(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    ollama_server.add_model(
        FakeModel(
            "old:1b",
            tokens=["x", "y"],
            omit_fields=frozenset(
                {"eval_count", "eval_duration", "prompt_eval_count", "load_duration"}
            ),
        )
    )
    texts, final = await collect(ollama_backend, spec("old:1b"))
    assert "".join(c.text for c in texts) == "xy"
    assert final.output_tokens is None and final.prompt_tokens is None
    assert final.server is not None
    assert final.server.decode_tok_s is None and final.server.prompt_tok_s is None
    assert final.server.load_s is None and final.server.eval_s is None
    assert final.server.total_s is not None and final.server.prompt_eval_s is not None


async def test_options_as_sent(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    options = Options(
        temperature=0.1,
        top_k=5,
        top_p=0.9,
        seed=42,
        max_tokens=3,
        num_ctx=2048,
        keep_alive="1m",
        system="Answer briefly.",
    )
    texts, final = await collect(ollama_backend, SMOL, options)
    body = ollama_server.generations()[-1].body
    assert body["options"] == {
        "temperature": 0.1,
        "top_k": 5,
        "top_p": 0.9,
        "seed": 42,
        "num_predict": 3,
        "num_ctx": 2048,
    }
    assert body["keep_alive"] == "1m"
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "why is the sky blue?"},
    ]
    assert "think" not in body
    assert len(texts) == 3 and final.done_reason == "length"
    assert ollama_backend.effective_options(SMOL, options) == {
        **body["options"],
        "keep_alive": "1m",
    }


async def test_think_sent_explicitly_only_for_thinking_models(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    thinker = ollama_server.models["thinker:1b"]
    # default: a thinking model gets think=false, so the server does not think on its own
    texts, final = await collect(ollama_backend, THINKER)
    body = ollama_server.generations("thinker:1b")[-1].body
    assert body["think"] is False
    assert all(c.thinking == "" for c in texts)
    assert "".join(c.text for c in texts) == "".join(thinker.tokens)
    assert ollama_backend.effective_options(THINKER, Options()) == {"think": False}

    # asked for: thinking chunks first, then the answer
    texts, final = await collect(ollama_backend, THINKER, Options(think=True))
    assert ollama_server.generations("thinker:1b")[-1].body["think"] is True
    thinking = [c for c in texts if c.thinking]
    answer = [c for c in texts if c.text]
    assert "".join(c.thinking for c in thinking) == "".join(thinker.thinking)
    assert "".join(c.text for c in answer) == "".join(thinker.tokens)
    assert texts.index(answer[0]) == len(thinking)
    assert final.output_tokens == len(thinker.thinking) + len(thinker.tokens)

    # a model that cannot think never gets the field, even when the user set it
    await collect(ollama_backend, SMOL, Options(think=True))
    assert "think" not in ollama_server.generations("smollm-fake:135m")[-1].body
    assert ollama_backend.effective_options(SMOL, Options(think=True)) == {}


async def test_capabilities_are_asked_once_per_model(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    for _ in range(3):
        await collect(ollama_backend, THINKER)
    shows = [r for r in ollama_server.requests if r.path == "/api/show"]
    assert len(shows) == 1


# -- failures -------------------------------------------------------------------------------


async def test_unreachable(dead_url: str):
    backend = OllamaBackend(dead_url)
    expected = f"cannot connect to Ollama at {dead_url}: is `ollama serve` running?"
    try:
        for call in (
            backend.list_models(),
            backend.describe(SMOL),
            backend.version(),
            backend.unload(SMOL),
        ):
            with pytest.raises(Unreachable) as err:
                await call
            assert str(err.value) == expected
        with pytest.raises(Unreachable) as err:
            await collect(backend, SMOL)
        assert str(err.value) == expected
        # the streaming path once capabilities are known goes straight to /api/chat
        backend._capabilities["smollm-fake:135m"] = ["completion"]
        with pytest.raises(Unreachable) as err:
            await collect(backend, SMOL)
        assert str(err.value) == expected
    finally:
        await backend.aclose()


async def test_stream_unknown_model_lists_available(ollama_backend: OllamaBackend):
    with pytest.raises(ModelNotFound, match=r"available: smollm-fake:135m, thinker:1b$"):
        await collect(ollama_backend, spec("nope:7b"))


async def test_stream_404_on_chat_itself(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    """The model vanished between ``describe`` and the run (``ollama rm``)."""
    await ollama_backend.describe(SMOL)
    del ollama_server.models["smollm-fake:135m"]
    with pytest.raises(ModelNotFound) as err:
        await collect(ollama_backend, SMOL)
    assert str(err.value) == (
        f"model 'smollm-fake:135m' not found on {ollama_server.url} — available: thinker:1b"
    )


async def test_busy(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    ollama_server.add_model(FakeModel("busy:1b", fault="busy"))
    with pytest.raises(ServerBusy) as err:
        await collect(ollama_backend, spec("busy:1b"))
    assert str(err.value) == f"Ollama at {ollama_server.url} is busy (HTTP 503): {BUSY_MESSAGE}"


async def test_bad_request_when_capabilities_changed(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    """``think`` is decided from cached capabilities; the server's 400 is still reported."""
    await ollama_backend.describe(THINKER)
    ollama_server.models["thinker:1b"].capabilities = ["completion"]
    with pytest.raises(BadRequest) as err:
        await collect(ollama_backend, THINKER, Options(think=True))
    assert str(err.value) == (
        f'Ollama at {ollama_server.url} rejected the request: "thinker:1b" does not support '
        "thinking"
    )


async def test_error_line_mid_stream(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    ollama_server.add_model(
        FakeModel(
            "crash:1b",
            fault="error_midstream",
            fault_after=2,
            error_message="runner ran out of memory",
        )
    )
    got: list[str] = []
    with pytest.raises(BackendError) as err:
        async for item in ollama_backend.stream(spec("crash:1b"), "hi", Options()):
            assert isinstance(item, TextChunk)
            got.append(item.text)
    assert type(err.value) is BackendError
    assert str(err.value) == "Ollama reported an error mid-stream: runner ran out of memory"
    assert len(got) == 2


async def test_cut_stream(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    ollama_server.add_model(FakeModel("cut:1b", fault="cut", fault_after=3))
    got: list[TextChunk] = []
    with pytest.raises(ProtocolError) as err:
        async for item in ollama_backend.stream(spec("cut:1b"), "hi", Options()):
            got.append(item)
    assert str(err.value) == f"the connection to Ollama at {ollama_server.url} closed mid-stream"
    assert len(got) == 3


async def test_garbage_line(ollama_backend: OllamaBackend, ollama_server: OllamaTestServer):
    ollama_server.add_model(FakeModel("garbage:1b", fault="garbage", fault_after=1))
    with pytest.raises(ProtocolError) as err:
        await collect(ollama_backend, spec("garbage:1b"))
    assert str(err.value) == (
        f"Ollama at {ollama_server.url} sent a line that is not JSON: "
        "'<html>502 Bad Gateway</html>'"
    )


async def test_stall_blocks_until_the_caller_gives_up(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    ollama_server.add_model(FakeModel("stall:1b", fault="stall", fault_after=2))
    stream = ollama_backend.stream(spec("stall:1b"), "hi", Options())
    assert isinstance(await anext(stream), TextChunk)
    assert isinstance(await anext(stream), TextChunk)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), 0.3)
    await stream.aclose()
    rec = ollama_server.generations("stall:1b")[-1]
    await wait_until(lambda: rec.outcome == "stalled")  # it noticed the client leaving
    assert rec.tokens_sent == 2


async def test_early_close_stops_the_server(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    ollama_server.add_model(FakeModel("long:1b", tokens=["t"] * 200, token_delay_s=0.01))
    stream = ollama_backend.stream(spec("long:1b"), "hi", Options())
    for _ in range(3):
        await anext(stream)
    await stream.aclose()
    rec = ollama_server.generations("long:1b")[-1]
    await wait_until(lambda: rec.outcome == "disconnected")
    sent = rec.tokens_sent
    assert sent < 20
    await asyncio.sleep(0.1)
    assert rec.tokens_sent == sent  # no more tokens after the client left


async def test_cancelling_the_consumer_stops_the_server(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    ollama_server.add_model(FakeModel("long:1b", tokens=["t"] * 200, token_delay_s=0.01))

    async def consume() -> None:
        async for _ in ollama_backend.stream(spec("long:1b"), "hi", Options()):
            pass

    task = asyncio.create_task(consume())
    await wait_until(
        lambda: (
            bool(ollama_server.generations("long:1b"))
            and ollama_server.generations("long:1b")[-1].tokens_sent >= 3
        )
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec = ollama_server.generations("long:1b")[-1]
    await wait_until(lambda: rec.outcome == "disconnected")
    assert rec.tokens_sent < 50


async def test_concurrent_streams_queue_when_the_server_serialises(
    ollama_backend: OllamaBackend, ollama_server: OllamaTestServer
):
    """With OLLAMA_NUM_PARALLEL=1 the second request waits, and Ollama counts the wait in
    ``load_duration``."""
    ollama_server.add_model(
        FakeModel("serial:1b", tokens=["a"] * 10, token_delay_s=0.02, parallel=1)
    )
    results = await asyncio.gather(*(collect(ollama_backend, spec("serial:1b")) for _ in range(2)))
    loads = sorted(final.server.load_s for _, final in results)
    assert loads[0] < 0.1
    assert loads[1] >= 0.95 * 0.2


# -- the test server itself speaks Ollama's wire format -------------------------------------


async def test_server_wire_format(ollama_server: OllamaTestServer):
    url = ollama_server.url
    async with httpx.AsyncClient(base_url=url) as http:
        async with http.stream(
            "POST",
            "/api/chat",
            json={"model": "smollm-fake:135m", "messages": [{"role": "user", "content": "hi"}]},
        ) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"] == "application/x-ndjson"
            assert reply.headers["transfer-encoding"] == "chunked"
            lines = [json.loads(line) async for line in reply.aiter_lines() if line]
        assert all(not line["done"] for line in lines[:-1])
        assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
        assert lines[0]["message"]["role"] == "assistant"
        assert isinstance(lines[-1]["eval_duration"], int)

        one = (
            await http.post(
                "/api/generate", json={"model": "smollm-fake:135m", "prompt": "hi", "stream": False}
            )
        ).json()
        assert one["done"] is True and one["response"].startswith("The sky")

        missing = await http.post("/api/chat", json={"model": "x", "messages": []})
        assert missing.status_code == 404
        assert missing.json() == {"error": 'model "x" not found, try pulling it first'}
        show = await http.post("/api/show", json={"model": "x"})
        assert show.status_code == 404

        think = await http.post(
            "/api/chat",
            json={
                "model": "smollm-fake:135m",
                "think": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert think.status_code == 400
        assert "does not support thinking" in think.json()["error"]

        # a thinking model thinks when "think" is absent, as current Ollama does
        thought = (
            await http.post(
                "/api/chat",
                json={
                    "model": "thinker:1b",
                    "stream": False,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
        ).json()
        assert thought["message"]["thinking"]

        assert (await http.get("/api/version")).json() == {"version": ollama_server.version}
        assert (await http.get("/")).text == "Ollama is running"


def test_server_can_be_started_and_stopped_repeatedly() -> None:
    for _ in range(2):
        with OllamaTestServer([FakeModel("m:1b")]) as server:
            reply = httpx.get(f"{server.url}/api/tags")
            assert [m["name"] for m in reply.json()["models"]] == ["m:1b"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/api/tags")
