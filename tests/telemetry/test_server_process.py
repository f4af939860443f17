"""A server on this machine is the benchmark's own load (issue 22, item 1).

Without ``--server-pid``, the process listening on a loopback URL's port is taken as the server:
its CPU is the benchmark's, never "other processes", and the record says which process it took
and how it found it. A CPU burner beside it is still other work: the warning appears once per
model, with the range of shares, and names the burner, not the server.

Each test runs against both servers, each in its own process on a loopback port: llama.cpp's
own ``llama-server`` (the ``llama_cpp_server`` fixture: built from the sources vendored in the
installed llama-cpp-python's sdist on first use, then cached) and llama-cpp-python's
``python -m llama_cpp.server`` (``llama_server``: a Python process, the server's name is in its
command line, not its process name).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from support.fixtures_llama import BUILDS_LLAMA_SERVER

from llmbench_tui.engine.report import footnotes
from llmbench_tui.engine.stats import summarize
from llmbench_tui.telemetry.efficiency import BUSY_OTHER_CPU_PCT, busy_warning
from llmbench_tui.telemetry.sampler import ProcessTarget, listener, local_port, serving_pids

CPUS = psutil.cpu_count() or 1


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


# The fixture of each server, and how its process is recognised.
SERVERS = {
    "llama_cpp_server": lambda p: p.name() == "llama-server",
    "llama_server": lambda p: "llama_cpp.server" in p.cmdline(),
}


@pytest.fixture(params=sorted(SERVERS))
def server_url(request: pytest.FixtureRequest) -> str:
    """The base URL of each real server in turn."""
    return str(request.getfixturevalue(request.param))


@BUILDS_LLAMA_SERVER
def test_a_local_url_is_served_by_the_process_on_its_port(server_url, request):
    port = _port(server_url)
    assert local_port(server_url) == port and local_port("http://gpu-box.example:8080") is None
    target = ProcessTarget.for_backend("openai", server_url, None)
    assert target == ProcessTarget("port", port)
    server = listener(port)
    assert server is not None and SERVERS[request.node.callspec.params["server_url"]](server)
    assert serving_pids(target) == {server.pid, *(c.pid for c in server.children(True))}
    # --server-pid stays the override; a remote host has no local process.
    assert ProcessTarget.for_backend("openai", server_url, "4242") == ProcessTarget("pid", 4242)
    assert ProcessTarget.for_backend("openai", "http://10.255.255.1:8080", None).kind == "none"


def _batch(url: str, tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, list]:
    """A batch of 1 + 3 runs (``-n`` in ``flags`` overrides), sampled every 0.1 s: llama-server
    answers in about 0.5 s."""
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("LLMBENCH_SERVER_PID", None)
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m", f"openai:smollm@{url}",
         "-p", "Count from one to twenty.", "--max-tokens", "48", "-n", "3", "--warmup", "1",
         "--sample-interval", "0.1", "--json", str(out), *flags],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


def _busy_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "other processes used" in ln]


@pytest.mark.slow
@BUILDS_LLAMA_SERVER
def test_the_local_server_is_not_other_load(server_url, tmp_path):
    server = listener(_port(server_url))
    assert server is not None
    done, records = _batch(server_url, tmp_path)
    for record in records:
        taken = record["telemetry"]["server_process"]
        assert taken["pid"] == server.pid
        assert taken["found_by"] == f"listening port {_port(server_url)}"
        # The server's CPU was watched (it decoded: how fast depends on this shared machine) ...
        assert record["telemetry"]["proc_cpu_pct"]["max"] > 0, record["telemetry"]
        assert all(p["pid"] != server.pid for p in record["telemetry"]["other_processes"])
    # ... and is not "other": on this shared machine the warning must appear exactly when the
    # others' measured share crosses the threshold (on an idle machine: never).
    measured = [r for r in records if not r["warmup"]]
    busy = [r for r in measured if r["telemetry"]["other_cpu_pct"]["mean"] > BUSY_OTHER_CPU_PCT]
    lines = _busy_lines(done.stdout)
    assert len(lines) == (1 if busy else 0), (lines, [r["telemetry"] for r in measured])


# A burner named "llmb-burner" (prctl), spinning 2 threads per CPU outside the GIL.
BURNER = """
import ctypes, hashlib, threading
ctypes.CDLL(None).prctl(15, b"llmb-burner", 0, 0, 0)
data = bytes(1 << 20)
def spin():
    while True:
        hashlib.sha256(data).digest()
for _ in range({threads}):
    threading.Thread(target=spin, daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.slow
@BUILDS_LLAMA_SERVER
def test_a_burner_beside_the_server_is_named_once(server_url, tmp_path):
    server = listener(_port(server_url))
    assert server is not None
    burner = subprocess.Popen([sys.executable, "-c", BURNER.format(threads=2 * CPUS)])
    try:
        # Others are named from two process walks 2 s apart during the batch: 8 runs keep it
        # going that long even against llama-server, which answers in about half a second.
        done, records = _batch(server_url, tmp_path, "-n", "8")
    finally:
        burner.kill()
        burner.wait(10)
    measured = [r for r in records if not r["warmup"]]
    assert all(r["telemetry"]["server_process"]["pid"] == server.pid for r in measured)
    shares = [r["efficiency"]["conditions"]["other_cpu_pct"] for r in measured]
    busy = [s for s in shares if s > BUSY_OTHER_CPU_PCT]
    assert busy, shares
    # Named: the burner, never the server.
    named = [p for r in measured for p in r["telemetry"]["other_processes"]]
    assert any(p["pid"] == burner.pid and p["name"] == "llmb-burner" for p in named), named
    assert all(p["pid"] != server.pid for p in named)
    # One line for the model, with the range of shares and the three busiest named (by their
    # highest share in a busy run: on this shared machine other work may be busier still).
    (line,) = _busy_lines(done.stdout)
    low, high = f"{min(busy):.0f}", f"{max(busy):.0f}"
    share = low if low == high else f"{low}–{high}"
    highest: dict[str, float] = {}
    for record in measured:
        if record["efficiency"]["conditions"]["busy"]:
            for p in record["telemetry"]["other_processes"]:
                highest[p["name"]] = max(highest.get(p["name"], 0.0), p["cpu_pct"])
    top = sorted(highest.items(), key=lambda kv: -kv[1])[:3]
    assert line.endswith(
        f"warning: other processes used {share} % of the CPU during {len(busy)} of 8 runs "
        f"(busiest: {', '.join(f'{n} {c:.0f} % of a core' for n, c in top)}); their figures "
        "are not comparable"), line  # fmt: skip


def _run(model: str, prompt: str, level: int, share: float, named: list[tuple[str, float]]):
    busy = share > BUSY_OTHER_CPU_PCT
    return {"id": f"{model}{prompt}{level}{share}", "session_id": "s", "model": model,
            "model_spec": model, "backend": "openai", "host": "http://127.0.0.1:1",
            "prompt_id": prompt, "prompt": "x", "status": "ok", "concurrency": level,
            "started_at": "2026-01-01T00:00:00Z",
            "warnings": [busy_warning(share)] if busy else [],
            "efficiency": {"conditions": {"busy": busy, "other_cpu_pct": share}},
            "telemetry": {"other_processes": [{"pid": 1, "name": n, "cpu_pct": c}
                                              for n, c in named]}}  # fmt: skip


def test_one_busy_line_per_model_over_its_prompts_and_levels():
    """Issue 22: 4 to 14 lines per session, one per distinct share; now one per model."""
    records = [
        _run("openai:a", "p1", 1, 31.4, [("cc1plus", 90.0)]),
        _run("openai:a", "p1", 1, 55.2, [("cc1plus", 99.0), ("postgres", 20.0)]),
        _run("openai:a", "p2", 4, 12.0, []),  # not busy
        _run("openai:a", "p2", 4, 40.0, [("postgres", 35.0), ("make", 5.0), ("ld", 60.0)]),
        _run("openai:b", "p1", 1, 26.0, []),
        _run("openai:b", "p1", 1, 3.0, []),
    ]
    lines = [n for n in footnotes(summarize(records)) if "other processes used" in n]
    assert lines == [
        "openai:a: warning: other processes used 31–55 % of the CPU during 3 of 4 runs "
        "(busiest: cc1plus 99 % of a core, ld 60 % of a core, postgres 35 % of a core); their "
        "figures are not comparable",
        "openai:b: warning: other processes used 26 % of the CPU during 1 of 2 runs; their "
        "figures are not comparable",
    ]
