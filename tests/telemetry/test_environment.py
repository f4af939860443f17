"""The session environment snapshot against the real backends, files and this checkout."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import sys
from pathlib import Path

import psutil
import pytest
from support.paths import REPO

from llmbench_tui.backends import BackendPool
from llmbench_tui.backends.base import ModelInfo
from llmbench_tui.schema import ModelSpec
from llmbench_tui.telemetry.efficiency import Rapl
from llmbench_tui.telemetry.environment import (
    HASH_CACHE_FILE,
    _vram,
    embedded_path,
    file_sha256,
    git_revision,
    machine_block,
)
from llmbench_tui.telemetry.nvml import MIB, Nvml
from llmbench_tui.telemetry.telemetry import TelemetryHub


def _rapl_packages_here() -> list[str]:
    """The RAPL package zones this user can read, straight from sysfs (not via ``Rapl``)."""
    names = []
    for zone in sorted(Path("/sys/class/powercap").glob("intel-rapl:*")):
        if zone.name.count(":") != 1:  # intel-rapl:0:0 etc. are sub-domains of a package
            continue
        try:
            int((zone / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        names.append((zone / "name").read_text().strip())
    return names


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_snapshot_machine_software_and_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    (tmp_path / "calibration.json").write_text(json.dumps({"peak_gb_s": 12.5}))
    monkeypatch.delenv("LLMBENCH_CPU_PEAK_GB_S", raising=False)
    missing = tmp_path / "nope.gguf"
    dead = f"http://127.0.0.1:{_closed_port()}"
    specs = [
        ModelSpec.parse("embedded"),
        ModelSpec.parse(f"gguf:{missing}"),
        ModelSpec.parse(f"ollama:llama3@{dead}"),
    ]
    hub = TelemetryHub(data_dir=tmp_path, nvml=Nvml(), rapl=Rapl())
    pool = BackendPool()
    try:
        env = await hub.session_environment(pool, specs)
    finally:
        await pool.aclose()

    assert env["os"]["system"] == platform.system() and env["os"]["kernel"] == platform.release()
    assert env["os"]["machine"] == platform.machine() and env["os"]["hostname"] == platform.node()
    assert env["cpu"]["threads"] == os.cpu_count() == psutil.cpu_count(logical=True)
    assert env["cpu"]["cores"] == psutil.cpu_count(logical=False)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), None
    )
    if model:
        assert env["cpu"]["model"] == model
    assert env["ram_mb"] == round(psutil.virtual_memory().total / MIB)
    assert env["swap_mb"] == round(psutil.swap_memory().total / MIB)
    assert env["python"] == {
        "version": platform.python_version(),
        "implementation": sys.implementation.name,
    }
    assert env["packages"]["llmbench_tui"] and env["packages"]["textual"]
    assert env["packages"]["llama_cpp"]
    assert env["cpu_peak_gb_s"] == 12.5 and env["cpu_peak_source"] == "calibration"
    rapl_here = _rapl_packages_here()
    assert env["rapl"] == {"readable": bool(rapl_here), "domains": rapl_here}
    nvml_here = Nvml()  # this machine's NVML, opened independently of the hub's
    gpus_here = nvml_here.open()
    nvml_here.close()
    if not gpus_here:  # NVML absent (no library, driver or GPU): no GPU section at all
        assert env["gpus"] == [] and env["gpu_driver"] is None
    else:
        assert [(g["index"], g["name"]) for g in env["gpus"]] == [
            (g.index, g.name) for g in gpus_here
        ]
        assert env["gpu_driver"]
    json.dumps(env)  # stored as-is by the store: must be plain JSON
    # How busy the machine was as the session began, and the compact machine block of it.
    assert env["conditions"]["cpus"] == psutil.cpu_count()
    assert 0 <= env["conditions"]["other_cpu_pct"] <= 100
    machine = machine_block(env)
    assert machine["hostname"] == platform.node() and machine["cpu"] == env["cpu"]["model"]
    assert machine["threads"] == os.cpu_count() and machine["ram_mb"] == env["ram_mb"]
    assert machine["gpu_driver"] == env["gpu_driver"] and len(machine["machine_id"]) == 12

    embedded = env["models"]["embedded"]
    path = embedded_path()
    assert embedded["path"] == str(path)
    assert embedded["file_size_bytes"] == path.stat().st_size == embedded["size_bytes"]
    assert embedded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert embedded["quantization"] and embedded["parameter_count"]
    assert "error" not in embedded
    cache = json.loads((tmp_path / HASH_CACHE_FILE).read_text())
    assert cache[str(path.resolve())]["sha256"] == embedded["sha256"]

    assert "nope.gguf" in env["models"][specs[1].label]["error"]
    down = env["models"][specs[2].label]
    assert dead.split("//")[1] in down["error"] and "\n" not in down["error"]
    backend = env["backends"][f"ollama@{dead}"]
    assert backend["version"] is None and backend["error"]
    assert env["backends"]["gguf"]["version"]


def test_hash_is_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 1000)
    real = hashlib.sha256(model.read_bytes()).hexdigest()
    assert file_sha256(model, tmp_path) == real
    # a cache hit returns the stored value without reading the file: prove it by planting one
    cache_file = tmp_path / HASH_CACHE_FILE
    cache = json.loads(cache_file.read_text())
    cache[str(model.resolve())]["sha256"] = "planted"
    cache_file.write_text(json.dumps(cache))
    assert file_sha256(model, tmp_path) == "planted"
    # a changed file (size and mtime) is hashed again
    model.write_bytes(b"GGUF" + b"\1" * 2000)
    assert file_sha256(model, tmp_path) == hashlib.sha256(model.read_bytes()).hexdigest()
    assert file_sha256(model, None) == hashlib.sha256(model.read_bytes()).hexdigest()


def test_git_revision_of_this_checkout_only(tmp_path: Path) -> None:
    here = REPO / "llmbench_tui"
    if not (here.parent / ".git").exists():
        pytest.skip("not run from a git checkout")
    rev = git_revision(here)
    assert rev is not None and re.fullmatch(r"[0-9a-f]{40}", rev["revision"])
    assert rev["dirty"] in (True, False)
    assert git_revision(tmp_path) is None  # no repository: no failure, no revision


def test_vram_share_from_ollama_ps() -> None:
    spec = ModelSpec.parse("ollama:m")
    full = ModelInfo(spec=spec, name="m", extra={"size_vram": 5_000, "ps_size": 5_000})
    half = ModelInfo(spec=spec, name="m", extra={"size_vram": 2_000})
    none = ModelInfo(spec=spec, name="m", extra={"architecture": "llama"})
    assert _vram(full, None) == (5_000, 1.0)
    assert _vram(half, 4_000) == (2_000, 0.5)  # falls back to the model's size
    assert _vram(none, 4_000) == (None, None)
    assert _vram(half, None) == (None, None)
