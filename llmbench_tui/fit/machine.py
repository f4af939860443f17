"""What this machine has free for a model right now: RAM, each GPU's memory, and bandwidths.

Free RAM is ``psutil``'s ``available`` (free plus reclaimable page cache: a memory-mapped model
file already in the cache counts as free, which it is). GPU memory comes from NVML
(``telemetry.nvml``): total minus used on each GPU; no NVML, no driver or no GPU gives an empty list
and the estimate is CPU only. Bandwidths: the CPU's is the figure ``llmbench calibrate`` stored
(or ``LLMBENCH_CPU_PEAK_GB_S``), a GPU's the theoretical peak NVML's clocks give.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from ..telemetry.efficiency import cpu_peak_gb_s
from ..telemetry.nvml import MIB, Nvml


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    name: str | None
    free_bytes: int
    total_bytes: int
    peak_gb_s: float | None


@dataclass(frozen=True, slots=True)
class Machine:
    ram_free_bytes: int
    ram_total_bytes: int
    cpu_gb_s: float | None
    cpu_gb_s_source: str | None
    gpus: list[Gpu] = field(default_factory=list)

    @property
    def gpu_free_bytes(self) -> int:
        """Free memory over all GPUs (llama.cpp splits layers across GPUs by default)."""
        return sum(g.free_bytes for g in self.gpus)

    @property
    def gpu_gb_s(self) -> float | None:
        peaks = [g.peak_gb_s for g in self.gpus if g.peak_gb_s]
        return min(peaks) if peaks else None

    def describe(self) -> dict[str, object]:
        return {
            "ram_free_bytes": self.ram_free_bytes,
            "ram_total_bytes": self.ram_total_bytes,
            "cpu_gb_s": self.cpu_gb_s,
            "cpu_gb_s_source": self.cpu_gb_s_source,
            "gpus": [
                {
                    "index": g.index,
                    "name": g.name,
                    "free_bytes": g.free_bytes,
                    "total_bytes": g.total_bytes,
                    "peak_gb_s": g.peak_gb_s,
                }
                for g in self.gpus
            ],
        }


def without_gpus(machine: Machine) -> Machine:
    """The same machine as an engine that cannot offload sees it (CPU only)."""
    return replace(machine, gpus=[])


def in_process_offload() -> bool:
    """Whether the in-process engine (llama-cpp-python) was built to offload to a GPU; a build
    without it runs every GGUF on the CPU whatever NVML sees. False when it is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def this_machine(data_dir: Path | None, nvml: Nvml | None = None) -> Machine:
    """A snapshot now (blocking: NVML calls are driver round trips; call off the event loop)."""
    vm = psutil.virtual_memory()
    cpu_gb_s, source = cpu_peak_gb_s(data_dir)
    nvml = nvml or Nvml()
    infos = {g.index: g for g in nvml.open()}
    gpus = []
    for reading in nvml.read(energy_mj=[]):
        info = infos.get(reading.index)
        if reading.mem_total_mb is None or reading.mem_used_mb is None:
            continue
        gpus.append(
            Gpu(
                index=reading.index,
                name=info.name if info else None,
                free_bytes=int((reading.mem_total_mb - reading.mem_used_mb) * MIB),
                total_bytes=int(reading.mem_total_mb * MIB),
                peak_gb_s=info.peak_gb_s if info else None,
            )
        )
    return Machine(int(vm.available), int(vm.total), cpu_gb_s, source, gpus)
