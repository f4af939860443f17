"""The in-process GGUF backend against the real SmolLM2 file (real llama.cpp inference).

Generations are kept short (a few dozen tokens): the machine's cores are shared.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest

from llmbench_tui.backends import embedded
from llmbench_tui.backends.base import (
    BackendError,
    FinalChunk,
    ModelNotFound,
    TextChunk,
)
from llmbench_tui.backends.gguf import GGUFBackend
from llmbench_tui.backends.gguf_meta import read_header
from llmbench_tui.schema import ModelSpec, Options

EMBEDDED = ModelSpec.parse("embedded")
GREEDY = Options(temperature=0, seed=7, max_tokens=24)
PROMPT = "Name three colours."


@pytest.fixture
async def backend():
    b = GGUFBackend(n_threads=1)  # the test machine's cores are shared: one thread each
    yield b
    await b.aclose()


async def collect(backend: GGUFBackend, spec=EMBEDDED, prompt=PROMPT, options=GREEDY):
    items = [item async for item in backend.stream(spec, prompt, options)]
    assert isinstance(items[-1], FinalChunk)
    assert all(isinstance(item, TextChunk) for item in items[:-1])
    return items[:-1], items[-1]


def gguf_threads_alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llmbench-gguf"]


# -- the embedded model file ---------------------------------------------------------------------


def test_embedded_path_is_the_smollm2_gguf(smollm_path: Path) -> None:
    assert smollm_path.is_absolute() and smollm_path.is_file()
    assert smollm_path.suffix == ".gguf"
    assert "SmolLM2-135M-Instruct" in smollm_path.name
    assert smollm_path.read_bytes()[:4] == b"GGUF"


def test_embedded_without_the_package_says_how_to_install(monkeypatch) -> None:
    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded.metadata, "distribution", missing)
    with pytest.raises(BackendError, match=r"pip install 'llmbench-tui\[embedded\]'"):
        embedded.embedded_model_path()


# -- metadata ------------------------------------------------------------------------------------


async def test_describe_reads_the_gguf_header(backend: GGUFBackend, smollm_path: Path) -> None:
    info = await backend.describe(EMBEDDED)
    assert info.name == smollm_path.stem == "SmolLM2-135M-Instruct.Q4_1"
    assert info.size_bytes == smollm_path.stat().st_size
    assert info.quantization == "Q4_1"
    assert info.family == "llama"
    assert info.parameter_size == "135M"
    assert 130e6 < info.parameter_count < 140e6  # summed from the tensor table
    assert info.context_length == 8192
    assert info.digest is None
    assert info.loaded is False


def s(text: str) -> bytes:
    """A GGUF string: u64 length, then UTF-8 bytes."""
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _write_gguf(path: Path, kvs: list[tuple[str, int, bytes]], tensors: list[list[int]]) -> None:
    """A GGUF v3 file with F32 tensors of zeros (the data must be there: a file whose tensor
    data is cut short is refused as truncated)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, vtype, payload in kvs:
        out += s(key) + struct.pack("<I", vtype) + payload
    offset = 0
    for i, dims in enumerate(tensors):
        out += s(f"t{i}") + struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
        out += struct.pack("<IQ", 0, offset)
        count = 1
        for dim in dims:
            count *= dim
        offset += -(-count * 4 // 32) * 32
    out += b"\0" * (-len(out) % 32) + b"\0" * offset
    path.write_bytes(out)


def test_header_reader_on_a_handmade_file(tmp_path: Path) -> None:
    tokens = struct.pack("<IQ", 8, 3) + s("a") + s("bb") + s("ccc")  # array of strings, skipped
    path = tmp_path / "tiny.gguf"
    _write_gguf(
        path,
        [
            ("general.architecture", 8, s("qwen2")),
            ("qwen2.context_length", 4, struct.pack("<I", 32768)),
            ("general.file_type", 4, struct.pack("<I", 15)),
            ("tokenizer.ggml.tokens", 9, tokens),
            ("general.tags", 9, struct.pack("<IQ", 8, 1) + s("x")),
            ("qwen2.rope.freq_base", 6, struct.pack("<f", 1e6)),
        ],
        [[1000, 2000], [3000], [5, 5, 4]],
    )
    header = read_header(path)
    assert header.architecture == "qwen2"
    assert header.context_length == 32768
    assert header.quantization == "Q4_K_M"
    assert header.parameter_count == 1000 * 2000 + 3000 + 100
    assert header.size_label == "2M"  # no general.size_label: derived from the tensor table
    assert header.metadata["general.tags"] == ["x"]
    assert "tokenizer.ggml.tokens" not in header.metadata


async def test_list_models_offers_embedded_and_configured_files(
    backend: GGUFBackend,
    tmp_path: Path,
    monkeypatch,
    smollm_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    _write_gguf(tmp_path / "sub" / "tiny.gguf", [("general.architecture", 8, s("llama"))], [])
    (tmp_path / "broken.gguf").write_bytes(b"not a model at all")
    (tmp_path / "same.gguf").symlink_to(smollm_path)  # the embedded file again: listed once
    monkeypatch.setenv("LLMBENCH_GGUF_PATHS", f"{tmp_path}:/nonexistent/dir")
    models = await backend.list_models()
    names = [m.name for m in models]
    assert names == ["SmolLM2-135M-Instruct.Q4_1", "tiny"]
    assert models[0].spec == EMBEDDED
    assert models[1].spec == ModelSpec(backend="gguf", name=str(tmp_path / "sub" / "tiny.gguf"))


async def test_missing_and_non_gguf_files_are_clear_errors(
    backend: GGUFBackend, tmp_path: Path
) -> None:
    missing = ModelSpec.parse(f"gguf:{tmp_path}/nope.gguf")
    with pytest.raises(ModelNotFound, match=r"^GGUF file not found: .*nope\.gguf$"):
        await backend.describe(missing)
    with pytest.raises(ModelNotFound, match="GGUF file not found"):
        await collect(backend, missing)

    text_file = tmp_path / "notes.gguf"
    text_file.write_text("hello")
    bad = ModelSpec.parse(f"gguf:{text_file}")
    with pytest.raises(BackendError, match="is not a GGUF model file"):
        await backend.describe(bad)
    with pytest.raises(BackendError, match="is not a GGUF model file"):
        await collect(backend, bad)

    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF\x03\x00")
    with pytest.raises(BackendError, match="header is damaged"):
        await backend.describe(ModelSpec.parse(f"gguf:{truncated}"))


def test_effective_options_report_what_is_applied(backend: GGUFBackend) -> None:
    opts = Options(temperature=0.5, max_tokens=10, num_ctx=1000, think=True, keep_alive="5m")
    eff = backend.effective_options(EMBEDDED, opts)
    assert eff["temperature"] == 0.5 and eff["max_tokens"] == 10
    assert eff["top_k"] == 40 and eff["top_p"] == 0.95  # llama-cpp-python's defaults
    assert eff["n_ctx"] == 1024 and eff["n_threads"] == backend.n_threads == 1
    assert eff["chat_template"] == "gguf"
    assert eff["not_applied"] == ["think", "keep_alive"]
    assert backend.effective_options(EMBEDDED, Options())["n_ctx"] == 4096  # capped default


# -- generation ----------------------------------------------------------------------------------


async def test_generation_chunks_counts_and_perf_counters(backend: GGUFBackend) -> None:
    chunks, final = await collect(backend)
    assert chunks, "no text generated"
    stamps = [c.t_ns for c in chunks]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert final.t_ns >= stamps[-1]
    assert all(c.text and c.n_tokens and c.n_tokens >= 1 for c in chunks)
    # Output tokens are llama.cpp's own count: every sampled token, spread over the chunks.
    assert final.output_tokens == sum(c.n_tokens for c in chunks)
    assert 1 < final.output_tokens <= 24
    assert final.done_reason in ("stop", "length")
    server = final.server
    # The whole prompt is evaluated (no KV reuse) and counted by llama.cpp.
    assert server.prompt_eval_count == final.prompt_tokens > 10
    # n_eval counts decode calls: every produced token but the last, unless an EOG followed it.
    assert server.eval_count in (final.output_tokens - 1, final.output_tokens)
    assert server.decode_tok_s == pytest.approx(server.eval_count / server.eval_s, rel=1e-9)
    assert server.prompt_tok_s == pytest.approx(
        server.prompt_eval_count / server.prompt_eval_s, rel=1e-9
    )
    # The perf counters time only llama_decode: they fit inside the client-side window.
    client_window_s = (final.t_ns - stamps[0]) / 1e9
    assert 0 < server.eval_s <= client_window_s * 1.05 + 0.01
    assert server.load_s is not None and server.load_s > 0  # this run loaded the model
    assert server.total_s >= server.load_s + server.eval_s


async def test_repeated_runs_do_the_same_work(backend: GGUFBackend) -> None:
    first_chunks, first = await collect(backend)
    second_chunks, second = await collect(backend)
    assert "".join(c.text for c in first_chunks) == "".join(c.text for c in second_chunks)
    assert second.server.prompt_eval_count == first.server.prompt_eval_count == first.prompt_tokens
    assert second.server.load_s is None  # warm: nothing loaded


async def test_unload_makes_the_next_run_cold(backend: GGUFBackend) -> None:
    await collect(backend, options=Options(temperature=0, max_tokens=2))
    assert (await backend.describe(EMBEDDED)).loaded is True
    await backend.unload(EMBEDDED)
    assert (await backend.describe(EMBEDDED)).loaded is False
    _, final = await collect(backend, options=Options(temperature=0, max_tokens=2))
    assert final.server.load_s is not None and final.server.load_s > 0
    assert final.server.total_s >= final.server.load_s


async def test_system_prompt_is_rendered_by_the_chat_template(backend: GGUFBackend) -> None:
    opts = Options(temperature=0, max_tokens=1)
    _, plain = await collect(backend, options=opts)
    # Longer than the template's built-in default system prompt, which it replaces.
    system = "You answer in French, briefly, and always politely. " * 4
    _, with_system = await collect(backend, options=opts.merged(Options(system=system)))
    assert with_system.prompt_tokens > plain.prompt_tokens + 20
    assert with_system.output_tokens == plain.output_tokens == 1
    assert with_system.done_reason == "length"
    # One token is sampled straight after the prompt: nothing decoded, so no decode rate.
    assert with_system.server.eval_count == 0 and with_system.server.decode_tok_s is None


async def test_prompt_longer_than_the_context_is_refused(backend: GGUFBackend) -> None:
    # num_ctx 64 is rounded up to llama.cpp's real minimum of 256.
    assert backend.effective_options(EMBEDDED, Options(num_ctx=64))["n_ctx"] == 256
    with pytest.raises(BackendError, match=r"does not fit the context of 256; raise num_ctx"):
        await collect(backend, prompt="word " * 300, options=Options(num_ctx=64, max_tokens=4))


async def test_closing_the_stream_stops_generation(backend: GGUFBackend) -> None:
    await collect(backend, options=Options(temperature=0, max_tokens=2))  # load first
    long_run = Options(temperature=0.8, seed=3, max_tokens=1500)
    agen = backend.stream(EMBEDDED, "Write a very long story about a dragon.", long_run)
    got = [await agen.__anext__() for _ in range(3)]
    assert all(isinstance(c, TextChunk) for c in got)
    t0 = time.perf_counter()
    await agen.aclose()
    assert time.perf_counter() - t0 < 5.0  # one token's decode, not 1500
    assert gguf_threads_alive() == []
    # The model is free again: a new run works at once.
    _, final = await collect(backend, options=Options(temperature=0, max_tokens=3))
    assert final.output_tokens == 3


async def test_cancelling_the_consumer_stops_generation(backend: GGUFBackend) -> None:
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(EMBEDDED, "Count to one thousand.", Options(max_tokens=1500)):
            first_chunk.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_chunk.wait(), timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gguf_threads_alive() == []  # the cancelled stream waited for its worker


async def test_concurrent_streams_take_turns_on_one_model(backend: GGUFBackend) -> None:
    opts = Options(temperature=0, max_tokens=8)
    (a_chunks, a), (b_chunks, b) = await asyncio.gather(
        collect(backend, options=opts), collect(backend, options=opts)
    )
    assert "".join(c.text for c in a_chunks) == "".join(c.text for c in b_chunks)
    # Serialized at the model's lock: one run's window ends before the other's begins.
    assert a.t_ns < b_chunks[0].t_ns or b.t_ns < a_chunks[0].t_ns


def test_thread_count_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LLMBENCH_GGUF_THREADS", "3")
    assert GGUFBackend().n_threads == 3
    monkeypatch.setenv("LLMBENCH_GGUF_THREADS", "many")
    with pytest.raises(BackendError, match="LLMBENCH_GGUF_THREADS must be a whole number"):
        GGUFBackend()
    monkeypatch.delenv("LLMBENCH_GGUF_THREADS")
    assert GGUFBackend().n_threads >= 1
