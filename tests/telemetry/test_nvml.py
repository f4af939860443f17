"""The NVML seam: no GPU here, recorded NVML answers for the GPU path, the real NVML when present.

``Recorded`` answers like ``pynvml`` does on a real driver — same function names, same return
shapes, and the real ``pynvml.NVMLError`` subclasses for NotSupported / NoPermission — so the
seam's handling is exercised exactly as on a GPU machine.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest
from support.hub_window import measure_window, running

from llmbench_tui.telemetry.efficiency import Rapl
from llmbench_tui.telemetry.nvml import MIB, Nvml
from llmbench_tui.telemetry.telemetry import TelemetryHub

NOT_SUPPORTED = pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
NO_PERMISSION = pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION)


class Recorded:
    """Answers recorded from two GPUs: an H100 SXM (all supported) and a consumer card whose
    power, energy counter and bus width are NotSupported / NoPermission."""

    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU

    def __init__(self, *, watts: float = 350.0) -> None:
        self.watts = watts
        self.t_start = time.perf_counter()
        self.shutdowns = 0
        self.gpus: list[dict[str, Any]] = [
            {
                "name": b"NVIDIA H100 80GB HBM3",
                "mem": SimpleNamespace(total=80 * 1024 * MIB, used=30 * 1024 * MIB),
                "util": SimpleNamespace(gpu=97, memory=60),
                "power": None,  # live: follows self.watts
                "energy": None,  # live: integral of self.watts
                "temp": 61,
                "clock": {pynvml.NVML_CLOCK_SM: 1980, pynvml.NVML_CLOCK_MEM: 2619},
                "max_mem_clock": 2619,
                "bus": 5120,
            },
            {
                "name": "GeForce GTX 1050",
                "mem": SimpleNamespace(total=2 * 1024 * MIB, used=512 * MIB),
                "util": SimpleNamespace(gpu=12, memory=3),
                "power": NOT_SUPPORTED,
                "energy": NOT_SUPPORTED,
                "temp": 44,
                "clock": {pynvml.NVML_CLOCK_SM: 1354, pynvml.NVML_CLOCK_MEM: NO_PERMISSION},
                "max_mem_clock": 3504,
                "bus": NO_PERMISSION,
            },
        ]

    @staticmethod
    def _answer(value: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> dict[str, Any]:
        return self.gpus[i]

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> Any:
        return self._answer(h["name"])

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any]) -> Any:
        return self._answer(h["mem"])

    def nvmlDeviceGetUtilizationRates(self, h: dict[str, Any]) -> Any:
        return self._answer(h["util"])

    def nvmlDeviceGetPowerUsage(self, h: dict[str, Any]) -> int:
        return int(self.watts * 1000) if h["power"] is None else self._answer(h["power"])

    def nvmlDeviceGetTotalEnergyConsumption(self, h: dict[str, Any]) -> int:
        if h["energy"] is None:  # mJ since driver load, 5 J at start
            return int(5000 + self.watts * 1000 * (time.perf_counter() - self.t_start))
        return self._answer(h["energy"])

    def nvmlDeviceGetTemperature(self, h: dict[str, Any], sensor: int) -> int:
        return self._answer(h["temp"])

    def nvmlDeviceGetClockInfo(self, h: dict[str, Any], clock: int) -> int:
        return self._answer(h["clock"][clock])

    def nvmlDeviceGetMaxClockInfo(self, h: dict[str, Any], clock: int) -> int:
        return self._answer(h["max_mem_clock"])

    def nvmlDeviceGetMemoryBusWidth(self, h: dict[str, Any]) -> int:
        return self._answer(h["bus"])


class Missing:
    """pynvml on a machine without libnvidia-ml (what ``pynvml.nvmlInit`` raises there)."""

    def nvmlInit(self) -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def test_no_library_gives_no_gpus_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llmbench_tui.telemetry.nvml")
    nvml = Nvml(lib=Missing())
    assert nvml.open() == []
    assert nvml.read() == []
    assert nvml.open() == []
    assert nvml.driver_version is None
    lines = [r for r in caplog.records if r.name == "llmbench_tui.telemetry.nvml"]
    assert len(lines) == 1
    assert "no NVIDIA GPU telemetry" in lines[0].getMessage()


def test_this_machine_without_nvidia_has_no_gpu_section() -> None:
    nvml = Nvml()
    if nvml.open():
        pytest.skip("this machine has an NVIDIA GPU; the no-GPU path is covered by Missing")
    hub = TelemetryHub(0.05, nvml=nvml, rapl=Rapl())
    hub.start()
    try:
        t0 = time.perf_counter_ns()
        time.sleep(0.2)
        summary, series = hub.run_window(t0, time.perf_counter_ns())
    finally:
        hub.stop()
    assert summary["samples"] >= 1
    assert summary["gpus"] == [] and series["gpus"] == []
    assert all(s.gpus == () for s in hub.sampler.history(10))


def test_recorded_gpus_info_and_unsupported_values() -> None:
    lib = Recorded()
    nvml = Nvml(lib=lib)
    h100, gtx = nvml.open()
    assert nvml.driver_version == "550.54.15"
    assert h100.name == "NVIDIA H100 80GB HBM3"  # bytes (old pynvml) decoded
    assert h100.mem_total_mb == 80 * 1024
    assert h100.peak_gb_s == pytest.approx(2619e6 * 5120 * 2 / 8 / 1e9)  # ~3352 GB/s
    assert gtx.name == "GeForce GTX 1050"
    assert gtx.bus_width_bits is None and gtx.peak_gb_s is None  # NoPermission

    first, second = nvml.read()
    assert first.util_pct == 97 and first.temp_c == 61
    assert first.power_w == pytest.approx(350.0)  # mW -> W
    assert first.mem_used_mb == 30 * 1024 and first.sm_clock_mhz == 1980
    assert first.energy_mj is not None and first.energy_mj >= 5000
    assert second.power_w is None and second.energy_mj is None  # NotSupported: missing value
    assert second.mem_clock_mhz is None  # NoPermission: missing value
    assert second.util_pct == 12 and second.sm_clock_mhz == 1354  # the rest stays
    nvml.close()
    assert lib.shutdowns == 1


def test_run_window_energy_from_counter_and_missing_power() -> None:
    lib = Recorded(watts=200.0)
    with running(TelemetryHub(0.05, nvml=Nvml(lib=lib), rapl=Rapl())) as hub:
        summary, series, seconds = measure_window(hub, settle_s=0.2, length_s=0.5)
    h100, gtx = summary["gpus"]
    # the counter's growth over exactly [t0, t1] at 200 W (interpolated at both edges); the
    # old [sample before, last sample] span was up to one interval (10 %) longer; a mJ/J slip
    # would be off by 1000×
    assert h100["energy_source"] == "counter"
    assert h100["energy_j"] == pytest.approx(200.0 * seconds, rel=0.02)
    assert h100["power_w"] == {"mean": 200.0, "max": 200.0}
    assert h100["util_pct"]["mean"] == 97
    assert h100["name"] == "NVIDIA H100 80GB HBM3"
    assert gtx["power_w"] is None and gtx["energy_j"] is None  # NotSupported all along
    assert gtx["temp_c"] == {"mean": 44.0, "max": 44.0}
    assert len(series["gpus"]) == 2
    assert len(series["gpus"][0]["power_w"]) == len(series["t_s"]) == summary["samples"]


def test_energy_falls_back_to_integrating_power() -> None:
    lib = Recorded(watts=100.0)
    lib.gpus[0]["energy"] = NOT_SUPPORTED  # old GPU: power yes, energy counter no
    with running(TelemetryHub(0.05, nvml=Nvml(lib=lib), rapl=Rapl())) as hub:
        summary, _, seconds = measure_window(hub, settle_s=0.2, length_s=0.4)
    gpu = summary["gpus"][0]
    assert gpu["energy_source"] == "power"
    # power integrated over exactly the window: 100 W × its length (40 J over 0.4 s)
    assert gpu["energy_j"] == pytest.approx(100.0 * seconds, rel=0.01)


@pytest.mark.gpu
def test_real_nvml() -> None:
    nvml = Nvml()
    gpus = nvml.open()
    if not gpus:
        pytest.skip("no NVIDIA GPU/NVML on this machine")
    readings = nvml.read()
    assert len(readings) == len(gpus)
    for info, reading in zip(gpus, readings, strict=True):
        assert info.name
        assert reading.mem_total_mb and reading.mem_used_mb is not None
        assert reading.util_pct is not None and 0 <= reading.util_pct <= 100
        if reading.power_w is not None:
            assert 0 < reading.power_w < 2000  # W, not mW
        if info.peak_gb_s is not None:
            assert 50 < info.peak_gb_s < 20_000
    assert nvml.driver_version
    nvml.close()
