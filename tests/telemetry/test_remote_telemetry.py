"""Telemetry from other hosts: a real node_exporter started here on a free loopback port, and
recorded DCGM-exporter and `llama-server --metrics` pages served by a tiny local HTTP server whose
counters advance like the real ones; then the engine end to end (remote series in the record, an
unreachable exporter as one warning, Ollama's /api/ps during the run) and `--telemetry-url`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from support.fixtures_llama import free_port
from support.ollama_server import FakeModel

from llmbench_tui.backends.ollama import loaded_model, read_ps
from llmbench_tui.commands.conditions import telemetry_urls
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.schema import ModelSpec, PromptSpec, Suite
from llmbench_tui.store import Store
from llmbench_tui.telemetry.remote_telemetry import (
    RemoteSource,
    RemoteTelemetry,
    filter_exposition,
    parse,
)
from llmbench_tui.telemetry.telemetry import TelemetryHub

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

# -- recorded pages --------------------------------------------------------------------------

# dcgm-exporter 3.3 (default counters, `-c 1000`) on a 2-GPU box, as it formats them; every
# sample carries these labels (``{g0}``/``{g1}`` below).
GPU_LABELS = {
    "g0": 'gpu="0",UUID="GPU-5fd4c5a7-0d2a-6c1c-8f0e-2d9e2c0a9b11",pci_bus_id="00000000:01:00.0",'
    'device="nvidia0",modelName="NVIDIA GeForce RTX 4090",Hostname="gpu-box",'
    'DCGM_FI_DRIVER_VERSION="550.54.15"',
    "g1": 'gpu="1",UUID="GPU-9b2f0e61-3a77-44d1-b0c2-7e51aa3f20c4",pci_bus_id="00000000:02:00.0",'
    'device="nvidia1",modelName="NVIDIA GeForce RTX 4090",Hostname="gpu-box",'
    'DCGM_FI_DRIVER_VERSION="550.54.15"',
}
DCGM_PAGE = """\
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{{{g0}}} 2520
DCGM_FI_DEV_SM_CLOCK{{{g1}}} 210
# HELP DCGM_FI_DEV_MEM_CLOCK Memory clock frequency (in MHz).
# TYPE DCGM_FI_DEV_MEM_CLOCK gauge
DCGM_FI_DEV_MEM_CLOCK{{{g0}}} 10501
# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{{{g0}}} 61
DCGM_FI_DEV_GPU_TEMP{{{g1}}} 34
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{{{g0}}} {power0:.3f}
DCGM_FI_DEV_POWER_USAGE{{{g1}}} 21.412
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{g0}}} {energy0}
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{g1}}} {energy1}
# HELP DCGM_FI_DEV_PCIE_REPLAY_COUNTER Total number of PCIe retries.
# TYPE DCGM_FI_DEV_PCIE_REPLAY_COUNTER counter
DCGM_FI_DEV_PCIE_REPLAY_COUNTER{{{g0}}} 0
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{{{g0}}} 97
DCGM_FI_DEV_GPU_UTIL{{{g1}}} 0
# HELP DCGM_FI_DEV_MEM_COPY_UTIL Memory utilization (in %).
# TYPE DCGM_FI_DEV_MEM_COPY_UTIL gauge
DCGM_FI_DEV_MEM_COPY_UTIL{{{g0}}} 78
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{{{g0}}} 18330
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{{{g0}}} 5706
DCGM_FI_DEV_FB_USED{{{g1}}} 1
"""

# llama-server b4600 with --metrics, one slot, mid-generation.
LLAMA_PAGE = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt_tokens}
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total {prompt_seconds:.3f}
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {predicted}
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total {predicted_seconds:.3f}
# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total {predicted}
# HELP llamacpp:n_busy_slots_per_decode Average number of busy slots per llama_decode() call
# TYPE llamacpp:n_busy_slots_per_decode counter
llamacpp:n_busy_slots_per_decode 1
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 2461.54
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 49.9817
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio {kv:.5f}
# HELP llamacpp:kv_cache_tokens KV-cache tokens.
# TYPE llamacpp:kv_cache_tokens gauge
llamacpp:kv_cache_tokens {kv_tokens}
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing {processing}
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred {deferred}
"""

POWER_W = 300.0  # GPU 0 draws this while "generating"; its energy counter grows accordingly
DECODE_TOK_S = 50.0


class FakeExporters:
    """DCGM at ``/dcgm`` and llama-server at ``/llama``: the recorded pages with counters that
    advance in real time — GPU 0's energy at POWER_W, predicted tokens at DECODE_TOK_S —
    while ``busy`` (a run is on), flat otherwise. ``/broken`` answers HTTP 500."""

    def __init__(self) -> None:
        self.busy = False
        self.scrapes = 0
        self._energy0, self._predicted, self._predicted_s = 8.8e9, 3469.0, 69.4
        self._last = time.monotonic()
        self._lock = threading.Lock()
        exporters = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in ("/dcgm", "/llama"):
                    self.send_error(500 if self.path == "/broken" else 404)
                    return
                body = exporters.page(self.path).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self.busy:
            self._energy0 += POWER_W * 1000 * dt
            self._predicted += DECODE_TOK_S * dt
            self._predicted_s += dt

    def page(self, path: str) -> str:
        with self._lock:
            self._advance()
            self.scrapes += 1
            if path == "/dcgm":
                return DCGM_PAGE.format(**GPU_LABELS, power0=POWER_W if self.busy else 42.7,
                                        energy0=int(self._energy0), energy1=2_101_553_201)
            return LLAMA_PAGE.format(
                prompt_tokens=6886, prompt_seconds=2.797, predicted=int(self._predicted),
                predicted_seconds=self._predicted_s, kv=0.0625 if self.busy else 0.0,
                kv_tokens=256 if self.busy else 0, processing=int(self.busy),
                deferred=2 if self.busy else 0,
            )  # fmt: skip

    def set_busy(self, busy: bool) -> None:
        with self._lock:
            self._advance()
            self.busy = busy

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporters():
    fake = FakeExporters()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def node_exporter():
    """The Debian package's node_exporter on a free loopback port, stopped afterwards."""
    assert Path(NODE_EXPORTER).exists(), (
        f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter"
    )
    port = free_port()
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.cpu", "--collector.meminfo", "--collector.loadavg", "--collector.uname"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"node_exporter did not start: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# -- the parser --------------------------------------------------------------------------------


def test_parse_keeps_only_what_is_read(exporters):
    dcgm, llama = exporters.page("/dcgm"), exporters.page("/llama")
    filtered = filter_exposition(dcgm)
    assert "PCIE_REPLAY" not in filtered and "MEM_COPY_UTIL" not in filtered
    assert "DCGM_FI_DEV_GPU_UTIL{" in filtered
    values, info = parse(dcgm + llama)
    assert info["kinds"] == ["dcgm", "llamacpp"]
    assert info["gpu_names"] == {0: "NVIDIA GeForce RTX 4090", 1: "NVIDIA GeForce RTX 4090"}
    assert info["gpu_driver"] == "550.54.15" and info["hostname"] == "gpu-box"
    assert values["gpu.0.util"] == 97 and values["gpu.0.fb_used"] == 5706
    assert values["gpu.1.energy_mj"] == 2_101_553_201 and values["gpu.0.sm_clock"] == 2520
    assert values["llama.tokens_predicted"] == 3469 and values["llama.requests_deferred"] == 0
    assert values["llama.kv_cache_usage_ratio"] == 0.0


def test_real_node_exporter_matches_this_machine(node_exporter):
    """node_exporter on this very machine: its CPU and memory figures must agree with psutil's."""
    source = RemoteSource(node_exporter, interval_s=0.2)
    hub = TelemetryHub(0.2)
    source.start()
    hub.start()
    try:
        time.sleep(0.5)
        t0 = time.perf_counter_ns()
        _burn(1.5)  # one core busy (of psutil.cpu_count())
        t1 = time.perf_counter_ns()
        assert source.scrape_after(t1)
        summary, series = source.window(t0, t1)
        local, _ = hub.run_window(t0, t1)
    finally:
        source.stop()
        hub.stop()
    assert summary["url"] == node_exporter and summary["kinds"] == ["node"]
    assert "error" not in summary and summary["scrapes"] >= 5
    node = summary["node"]
    # The same CPU seen by two readers of /proc/stat: close, whatever else the machine does.
    assert abs(node["cpu_pct"]["mean"] - local["cpu_pct"]["mean"]) < 20, (node, local["cpu_pct"])
    assert node["cpu_pct"]["mean"] >= 100 / psutil.cpu_count() * 0.7  # at least our burning core
    vm = psutil.virtual_memory()
    assert node["ram_total_mb"] == pytest.approx(vm.total / 2**20, rel=0.01)
    assert node["ram_used_mb"]["mean"] == pytest.approx((vm.total - vm.available) / 2**20, rel=0.2)
    assert summary["machine"]["hostname"] == platform.node()
    assert summary["machine"]["cpus"] == psutil.cpu_count()
    assert summary["machine"]["arch"] == platform.machine()
    assert len(series["t_s"]) == len(series["cpu_pct"]) == summary["scrapes"]


def test_dcgm_and_llama_server_over_a_run(exporters):
    remote = RemoteTelemetry([f"{exporters.url}/dcgm", f"{exporters.url}/llama"], interval_s=0.2)
    remote.start()
    try:
        time.sleep(0.5)
        exporters.set_busy(True)
        t0 = time.perf_counter_ns()
        remote.poke(None)
        time.sleep(1.2)
        t1 = time.perf_counter_ns()
        exporters.set_busy(False)
        summaries, series = remote.window(None, t0, t1)
    finally:
        remote.stop()
    seconds = (t1 - t0) / 1e9
    dcgm, llama = summaries
    gpu0, gpu1 = dcgm["gpus"]
    assert gpu0["name"] == "NVIDIA GeForce RTX 4090" and gpu0["util_pct"]["mean"] == 97
    assert gpu0["mem_used_mb"]["max"] == 5706 and gpu0["power_w"]["max"] == POWER_W
    # The counter's growth over the run, interpolated at both edges: 300 W for the run's length.
    assert gpu0["energy_j"] == pytest.approx(POWER_W * seconds, rel=0.1)
    assert gpu0["energy_source"] == "counter" and gpu1["energy_j"] == 0
    assert dcgm["machine"] == {"hostname": "gpu-box", "gpu_driver": "550.54.15",
                               "gpus": ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"]}
    lc = llama["llamacpp"]
    assert lc["kv_cache_usage_ratio"]["max"] == 0.0625 and lc["requests_deferred"]["max"] == 2
    assert lc["requests_processing"]["mean"] == pytest.approx(1.0, abs=0.25)
    assert lc["tokens_predicted_delta"] == pytest.approx(DECODE_TOK_S * seconds, abs=3)
    assert lc["decode_tok_s"] == pytest.approx(DECODE_TOK_S, rel=0.15)
    assert lc["prompt_tokens_delta"] == 0
    assert [s["url"] for s in series] == [f"{exporters.url}/dcgm", f"{exporters.url}/llama"]
    assert len(series[0]["gpus"][0]["power_w"]) == len(series[0]["t_s"]) >= 4
    assert "kv_cache_usage_ratio" in series[1]


def test_sources_tied_to_a_host():
    remote = RemoteTelemetry({"http://a:9100/metrics": "gpu-a:11434",
                              "http://b:9100/metrics": "http://GPU-B",
                              "http://all:9400/metrics": None})  # fmt: skip
    assert [s.url for s in remote.for_host("http://gpu-a:11434")] == [
        "http://a:9100/metrics", "http://all:9400/metrics"]  # fmt: skip
    assert [s.url for s in remote.for_host("gpu-b")] == [
        "http://b:9100/metrics", "http://all:9400/metrics"]  # fmt: skip
    assert [s.url for s in remote.for_host(None)] == ["http://all:9400/metrics"]


def test_suite_and_flag_urls(tmp_path):
    import argparse

    suite = tmp_path / "s.toml"
    suite.write_text('models = ["embedded"]\n[telemetry_urls]\n"gpu-box:11434" = '
                     '["http://gpu-box:9100/metrics", "http://gpu-box:9400/metrics"]\n'
                     '[[prompts]]\nid = "a"\ntext = "hi"\n')  # fmt: skip
    args = argparse.Namespace(suite=str(suite), telemetry_url=["http://x:8080/metrics"])
    assert telemetry_urls(args) == {
        "http://gpu-box:9100/metrics": "gpu-box:11434",
        "http://gpu-box:9400/metrics": "gpu-box:11434", "http://x:8080/metrics": None,
    }  # fmt: skip
    assert Suite(telemetry_urls=["https://h/metrics"]).telemetry_urls == ["https://h/metrics"]
    with pytest.raises(ValueError, match="is not an http"):
        Suite(telemetry_urls=["gpu-box:9100"])


# -- the engine end to end ------------------------------------------------------------------


def _plan(server, name: str) -> Plan:
    return Plan(models=[ModelSpec.parse(f"ollama:{name}@{server.url}")],
                prompts=[PromptSpec(id="p", text="Why is the sky blue?")], repetitions=1,
                warmup=0, ttft_timeout_s=10, stall_timeout_s=10)  # fmt: skip


async def test_engine_records_remote_telemetry_and_ollama_ps(
    ollama_server, node_exporter, exporters, tmp_path
):
    ollama_server.add_model(FakeModel("split:8b", tokens=[f" t{i}" for i in range(40)],
                                      token_delay_s=0.02, size=5_000_000_000,
                                      size_vram=3_000_000_000))  # fmt: skip
    urls = [node_exporter, f"{exporters.url}/dcgm", f"{exporters.url}/llama"]
    hub = TelemetryHub(0.1, data_dir=tmp_path, telemetry_urls=urls, scrape_interval_s=0.2)
    store = Store(tmp_path / "history.json")
    hub.start()
    try:
        fin = await Engine(_plan(ollama_server, "split:8b"), store=store, telemetry=hub).run()
    finally:
        hub.stop()
    (rec,) = fin.records
    assert rec.status == "ok", rec.error
    remote = rec.telemetry["remote"]
    assert [r["url"] for r in remote] == urls and not any("error" in r for r in remote)
    assert remote[0]["node"]["cpu_pct"]["mean"] is not None
    assert remote[1]["gpus"][0]["util_pct"]["mean"] == 97
    ps = rec.telemetry["ollama_ps"]
    assert ps["loaded"] and ps["vram_fraction"] == 0.6 and ps["context_length"] == 4096
    assert rec.efficiency.model_extra["conditions"]["context_length"] == 4096
    assert any("Only 60 % of split:8b is in VRAM" in w for w in rec.warnings)
    series = store.series(rec.id)["telemetry"]["remote"]
    assert [s["url"] for s in series] == urls and series[0]["cpu_pct"]
    store.close()


async def test_unreachable_exporter_is_one_warning_not_a_failed_run(
    ollama_server, dead_url, exporters, tmp_path
):
    urls = [f"{dead_url}/metrics", f"{exporters.url}/broken"]
    hub = TelemetryHub(0.1, data_dir=tmp_path, telemetry_urls=urls, scrape_interval_s=0.2)
    hub.start()
    try:
        started = time.monotonic()
        fin = await Engine(_plan(ollama_server, "smollm-fake:135m"), telemetry=hub).run()
        took = time.monotonic() - started
    finally:
        hub.stop()
    (rec,) = fin.records
    assert rec.status == "ok"
    notes = [w for w in rec.warnings if w.startswith("remote telemetry incomplete")]
    assert len(notes) == 2, rec.warnings
    assert f"cannot scrape {dead_url}/metrics: Connection refused" in notes[0]
    assert f"cannot scrape {exporters.url}/broken: HTTP 500" in notes[1]
    assert [r["url"] for r in rec.telemetry["remote"]] == urls
    assert took < 10  # a failing source is not waited for


def test_ollama_ps_parser_on_a_recorded_answer():
    """``GET /api/ps`` of Ollama 0.6.5 with a 14B model split between GPU and CPU."""
    answer = json.loads("""{"models":[{"name":"qwen2.5:14b","model":"qwen2.5:14b",
      "size":11536302080,"digest":"7cdf5a0187d5c58cc5d369b255592f7841d1c4696d45a8c8a9489440385b22f6",
      "details":{"parent_model":"","format":"gguf","family":"qwen2","families":["qwen2"],
      "parameter_size":"14.8B","quantization_level":"Q4_K_M"},
      "expires_at":"2025-04-20T23:49:10.178313427+02:00","size_vram":8010072064,
      "context_length":8192},
      {"name":"llama3.2:latest","model":"llama3.2:latest","size":3019898880,"digest":"a80c4f17",
      "details":{},"expires_at":"2025-04-20T23:45:01.11+02:00","size_vram":3019898880}]}""")
    entry = loaded_model(answer, "qwen2.5:14b")
    assert entry == {"size": 11536302080, "size_vram": 8010072064, "vram_fraction": 0.6943,
                     "context_length": 8192, "expires_at": "2025-04-20T23:49:10.178313427+02:00"}
    full = loaded_model(answer, "llama3.2")  # "x" is "x:latest"
    assert full["vram_fraction"] == 1.0 and full["context_length"] is None
    assert loaded_model(answer, "mistral") is None and loaded_model({"models": 3}, "x") is None


def test_read_ps_never_raises(dead_url):
    assert "cannot read /api/ps" in read_ps(dead_url, "x")["error"]
    assert "bad Ollama host" in read_ps("ftp://nope", "x")["error"]


def test_batch_telemetry_url_flag(ollama_server, node_exporter, tmp_path):
    out = tmp_path / "runs.json"
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m",
         f"ollama:smollm-fake:135m@{ollama_server.url}", "-n", "1", "--warmup", "0",
         "--telemetry-url", node_exporter, "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(out.read_text())
    assert record["telemetry"]["remote"][0]["url"] == node_exporter
    assert record["telemetry"]["remote"][0]["machine"]["hostname"] == platform.node()
    assert record["machine"]["hostname"] == platform.node()
    assert record["session"]["environment"]["conditions"]["cpus"] == psutil.cpu_count()
