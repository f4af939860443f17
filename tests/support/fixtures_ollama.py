"""Pytest fixtures around the Ollama-protocol test server (``tests/support/ollama_server.py``).

``tests/conftest.py`` imports these fixtures by name for the whole suite (``tests/`` is on
``sys.path`` because it has no ``__init__.py``).

- ``ollama_server``: a started ``OllamaTestServer`` with ``fast_models()``, stopped afterwards.
  Add or change models on it while it runs: ``ollama_server.add_model(FakeModel(...))``.
- ``ollama_backend``: an ``OllamaBackend`` talking to that server, closed afterwards.
- ``dead_url``: an ``http://127.0.0.1:PORT`` where nothing listens (refused connections).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from llmbench_tui.backends.ollama import OllamaBackend
from support.ollama_server import FakeModel, OllamaTestServer, default_models


def fast_models() -> list[FakeModel]:
    """The default models (``smollm-fake:135m``, ``thinker:1b``) without their load and prompt
    delays and with 2 ms between tokens, so a test stream takes a few tens of milliseconds."""
    models = default_models()
    for model in models:
        model.load_delay_s = 0.0
        model.prompt_delay_s = 0.0
        model.token_delay_s = 0.002
    return models


@pytest.fixture
def ollama_server() -> Iterator[OllamaTestServer]:
    server = OllamaTestServer(fast_models()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def ollama_backend(ollama_server: OllamaTestServer) -> AsyncIterator[OllamaBackend]:
    backend = OllamaBackend(ollama_server.url)
    try:
        yield backend
    finally:
        await backend.aclose()


@pytest.fixture
def dead_url() -> str:
    """A local port that was just free; connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
