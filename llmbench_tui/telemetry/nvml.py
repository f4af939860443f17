"""The one seam between llmbench and NVIDIA's management library (``pynvml``).

Everything NVML-specific lives here so the rest of the telemetry code sees plain numbers, and so
tests can hand in a recorded answer sheet instead of a real driver (``Nvml(lib=...)``). The rules
are enforced here once: no library, no driver or no GPU gives an empty GPU list and a
single log line, never an exception; a query a GPU cannot answer (NotSupported, NoPermission, or
any other NVML error) gives ``None`` for that value while the rest of the reading stays.

Calls block (they are ioctl round trips to the driver), so they belong on the sampler thread or in
``asyncio.to_thread`` — never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024  # every "_mb" figure in llmbench is MiB, as nvidia-smi and free(1) show


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """The fixed facts of one GPU, read once when NVML is opened."""

    index: int
    name: str | None
    mem_total_mb: float | None
    max_mem_clock_mhz: float | None
    bus_width_bits: int | None

    @property
    def peak_gb_s(self) -> float | None:
        """Theoretical memory bandwidth: max memory clock × bus width × 2 (double data rate) / 8.

        NVML reports the memory clock such that this gives the vendor's figure for both GDDR and
        HBM parts (e.g. H100 SXM: 2619 MHz × 5120 bit → 3352 GB/s).
        """
        if not self.max_mem_clock_mhz or not self.bus_width_bits:
            return None
        return self.max_mem_clock_mhz * 1e6 * self.bus_width_bits * 2 / 8 / 1e9


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One instantaneous reading of one GPU; any value may be ``None`` (unsupported)."""

    index: int
    util_pct: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    power_w: float | None = None
    energy_mj: float | None = None
    temp_c: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Nvml:
    """NVML opened once per process; ``lib`` defaults to the real ``pynvml`` module."""

    def __init__(self, lib: Any = None) -> None:
        self._lib = lib
        self._lock = threading.Lock()
        self._opened = False
        self._handles: list[Any] = []
        self._gpus: list[GpuInfo] = []
        self._driver: str | None = None

    def open(self) -> list[GpuInfo]:
        """Initialise NVML (first call only) and return the GPUs; ``[]`` when there are none."""
        with self._lock:
            if not self._opened:
                self._opened = True
                self._init()
            return list(self._gpus)

    def _init(self) -> None:
        try:
            if self._lib is None:
                import pynvml

                self._lib = pynvml
            self._lib.nvmlInit()
            count = int(self._lib.nvmlDeviceGetCount())
            self._handles = [self._lib.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # no module, no libnvidia-ml, no driver: all the same to us
            log.info("no NVIDIA GPU telemetry: %s", str(exc) or type(exc).__name__)
            self._handles = []
            return
        self._driver = self._query(lambda: _text(self._lib.nvmlSystemGetDriverVersion()))
        self._gpus = [self._info(i, h) for i, h in enumerate(self._handles)]
        if not self._gpus:
            log.info("no NVIDIA GPU telemetry: NVML found no GPU")

    def _query(self, call: Any) -> Any:
        """One optional NVML value: ``None`` where the GPU cannot or may not answer."""
        try:
            return call()
        except Exception:  # NVMLError_NotSupported / _NoPermission / _GpuIsLost ...
            return None

    def _info(self, index: int, handle: Any) -> GpuInfo:
        lib = self._lib
        mem = self._query(lambda: lib.nvmlDeviceGetMemoryInfo(handle))
        return GpuInfo(
            index=index,
            name=self._query(lambda: _text(lib.nvmlDeviceGetName(handle))),
            mem_total_mb=mem.total / MIB if mem is not None else None,
            max_mem_clock_mhz=self._query(
                lambda: float(lib.nvmlDeviceGetMaxClockInfo(handle, lib.NVML_CLOCK_MEM))
            ),
            bus_width_bits=self._query(lambda: int(lib.nvmlDeviceGetMemoryBusWidth(handle))),
        )

    @property
    def driver_version(self) -> str | None:
        self.open()
        return self._driver

    def read_energy(self) -> list[float | None]:
        """Every GPU's total-energy counter (mJ) now, in index order, and nothing else.

        Read apart from the other values so that the sampler can stamp the counters with the
        instant they were read: a run's energy is interpolated at its edges from these readings,
        and a whole ``read`` of several GPUs spans milliseconds.
        """
        self.open()
        lib = self._lib
        return [
            self._query(lambda h=h: float(lib.nvmlDeviceGetTotalEnergyConsumption(h)))
            for h in self._handles
        ]

    def read(self, energy_mj: list[float | None] | None = None) -> list[GpuReading]:
        """Read every GPU now (one list entry per GPU, in index order).

        ``energy_mj``: counters already read by ``read_energy`` for this same instant.
        """
        self.open()
        energy = energy_mj if energy_mj is not None else self.read_energy()
        return [
            self._read_one(i, h, energy[i] if i < len(energy) else None)
            for i, h in enumerate(self._handles)
        ]

    def _read_one(self, index: int, handle: Any, energy_mj: float | None) -> GpuReading:
        lib = self._lib
        q = self._query
        util = q(lambda: lib.nvmlDeviceGetUtilizationRates(handle))
        mem = q(lambda: lib.nvmlDeviceGetMemoryInfo(handle))
        power_mw = q(lambda: lib.nvmlDeviceGetPowerUsage(handle))
        return GpuReading(
            index=index,
            util_pct=float(util.gpu) if util is not None else None,
            mem_used_mb=mem.used / MIB if mem is not None else None,
            mem_total_mb=mem.total / MIB if mem is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            energy_mj=energy_mj,
            temp_c=q(lambda: float(lib.nvmlDeviceGetTemperature(handle, lib.NVML_TEMPERATURE_GPU))),
            sm_clock_mhz=q(lambda: float(lib.nvmlDeviceGetClockInfo(handle, lib.NVML_CLOCK_SM))),
            mem_clock_mhz=q(lambda: float(lib.nvmlDeviceGetClockInfo(handle, lib.NVML_CLOCK_MEM))),
        )

    def close(self) -> None:
        with self._lock:
            if self._handles:
                self._query(self._lib.nvmlShutdown)
            self._handles, self._gpus, self._opened = [], [], False
